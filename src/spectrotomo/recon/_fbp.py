"""Filtered back-projection by Fourier-domain gridding (finufft / cufinufft)."""

from __future__ import annotations

import numpy as np

from ._filters import angular_weights, ramp_window
from ._operator import ParallelBeamOperator, _fast_len

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
    out : array, shape (n_rows, ny, nx), float32, optional

    Returns
    -------
    array, shape (n_rows, ny, nx), float32, values per voxel.
    """
    # Filter on a 2x zero/edge-padded detector (no circular wrap of the ramp's
    # long tails), then grid only the operator's periodic window (~1.25x the
    # detector): it holds every s the slice sees and the filtered tails that
    # balance the DC, and gives the NUFFT ~40 % fewer polar samples than
    # gridding the 2x-padded spectrum. One batch of rows at a time: the
    # filtered window never exists for the whole stack.
    xp = op.xp
    n_filter = max(op.n_pad, _fast_len(2 * op.n_cols))
    if padding not in ("zero", "edge"):
        raise ValueError(f"fbp: 'padding' must be 'zero' or 'edge'; got {padding!r}")
    ramp = xp.asarray(ramp_window(n_filter, filter).astype(np.float32))
    factor = (op._adj_phase * xp.asarray(angular_weights(op.angles)[:, None].astype(
        np.float32)))[:, None, :]
    n_angles, n_rows = projections.shape[:2]
    if out is None:
        out = xp.empty((n_rows, *op.shape), dtype=xp.float32)

    def rows(s, e):
        window = xp.empty((n_angles, e - s, op.n_pad), dtype=xp.float32)
        op._filter_block(projections[:, s:e], ramp, n_filter, padding, True, window)
        op._adjoint_block(window, out[s:e], factor)

    op._run(rows, n_rows)
    return out
