"""Filtered back-projection by Fourier-domain gridding (finufft / cufinufft)."""

from __future__ import annotations

import numpy as np

from ._filters import angular_weights, ramp_window
from ._operator import ParallelBeamOperator

__all__ = ["fbp"]


def fbp(projections, op: ParallelBeamOperator, *, filter: str = "ram-lak",
        padding: str = "zero", out=None):
    """Filtered back-projection of ``projections`` with operator ``op``.

    Parameters
    ----------
    projections : array, shape (n_angles, n_rows, n_cols), float32
        Line integrals (optical density) in voxel units; numpy or cupy like ``op.xp``.
    op : ParallelBeamOperator
        Geometry; its ``eps`` sets the gridding accuracy (1e-4 is plenty for FBP).
    filter : str
        One of ``ram-lak``, ``shepp-logan``, ``cosine``, ``hamming``, ``hann``, ``parzen``.
    padding : {"zero", "edge"}
        Detector extension before filtering.

    Returns
    -------
    array, shape (n_rows, ny, nx), float32, values per voxel.
    """
    weights = angular_weights(op.angles)[:, None] * ramp_window(op.n_pad, filter)[None, :]
    return op.adjoint(projections, out=out, weights=weights.astype(np.float32), padding=padding)
