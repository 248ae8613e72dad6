"""The energies' spectral basis of the joint solver (:mod:`._joint`): channel mixing,
the noise-whitened eigenbasis and its device copies, the projections it defines."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._backend import to_numpy
from ._regularize import support_mask

__all__ = ["mix", "spectral_basis", "Basis"]


def mix(xp, m, a):
    """Channel mixing ``m`` (K, C) along axis 0 of ``a`` (C, ...) -> (K, ...): one matrix
    product on the flattened rest (tensordot's transposes cost 2x on the host)."""
    return (m @ a.reshape(a.shape[0], -1)).reshape(m.shape[0], *a.shape[1:])


def spectral_basis(od, noise):
    """Orthonormal energy basis (C, C), columns by decreasing energy, of the
    noise-whitened sinograms ``od / noise`` (C, A, R, n)."""
    b = od.reshape(od.shape[0], -1)
    gram = to_numpy(b @ b.T).astype(float) / np.outer(noise, noise)
    _, U = np.linalg.eigh(gram)
    return np.ascontiguousarray(U[:, ::-1])


class Basis(NamedTuple):
    """The energies' spectral basis ``U`` (C, K) on the host (float64) and, cast and
    transposed once per solve, on the solver's device (float32); ``sign`` makes the
    leading component (the structure) positive."""

    U: np.ndarray
    Ud: object
    UTd: object
    sign: float

    @classmethod
    def of(cls, xp, U):
        Ud = xp.asarray(U.astype(np.float32))
        return cls(U, Ud, xp.ascontiguousarray(Ud.T), float(np.sign(U[:, 0].sum()) or 1.0))

    def nonneg(self, xp, y):
        """Projection of components y (K, ...) onto ``U y >= 0`` (U orthonormal)."""
        return mix(xp, self.UTd, xp.maximum(mix(xp, self.Ud, y), 0))

    def support(self, xp, y, fraction: float, out=None):
        """Shrink-wrap support (1, R, ny, nx) float32 of components y (K, R, ny, nx)
        from the structure y[0] (:func:`~._regularize.support_mask`); ``out`` in place."""
        s = y[0] if self.sign > 0 else -y[0]
        return support_mask(xp, s, fraction, out=None if out is None else out[0])[None]
