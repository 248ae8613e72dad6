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
    noise-whitened sinograms ``od / noise`` (C, A, R, n). The leading column (the
    structure every energy shares) is signed to sum >= 0, so that its component is
    the non-negative structure (eigh's signs are arbitrary)."""
    b = od.reshape(od.shape[0], -1)
    gram = to_numpy(b @ b.T).astype(float) / np.outer(noise, noise)
    _, U = np.linalg.eigh(gram)
    U = np.ascontiguousarray(U[:, ::-1])
    if U[:, 0].sum() < 0:
        U[:, 0] *= -1
    return U


class Basis(NamedTuple):
    """The energies' spectral basis ``U`` (C, K) on the host (float64) and, cast and
    transposed once per solve, on the solver's device (float32); the leading column
    sums to >= 0 (:func:`spectral_basis`): component 0 is the positive structure."""

    U: np.ndarray
    Ud: object
    UTd: object

    @classmethod
    def of(cls, xp, U):
        Ud = xp.asarray(U.astype(np.float32))
        return cls(U, Ud, xp.ascontiguousarray(Ud.T))

    def nonneg(self, xp, y):
        """Projection of components y (K, ...) onto ``U y >= 0`` (U orthonormal)."""
        x = mix(xp, self.Ud, y)
        return mix(xp, self.UTd, xp.maximum(x, 0, out=x))

    def support(self, xp, y, fraction: float, out=None):
        """Shrink-wrap support (1, R, ny, nx) float32 of components y (K, R, ny, nx)
        from the structure y[0] (:func:`~._regularize.support_mask`); ``out`` in place."""
        return support_mask(xp, y[0], fraction, out=None if out is None else out[0])[None]
