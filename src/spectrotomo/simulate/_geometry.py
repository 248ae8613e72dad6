"""Simple analytic shapes on voxel grids (occupancy in [0, 1])."""

from __future__ import annotations

import numpy as np

__all__ = ["ball"]


def ball(shape, radius: float, center=None, *, supersample: int = 4) -> np.ndarray:
    """Fractional occupancy of a ball (3-D) or disc (2-D) of ``radius`` voxels.

    Parameters
    ----------
    shape : tuple of int
        (nz, ny, nx) or (ny, nx).
    radius : float
        Radius in voxels.
    center : sequence of float, optional
        Centre in index coordinates, default the grid centre ``(n - 1) / 2``.
    supersample : int
        Sub-samples per voxel edge for anti-aliased edges.

    Returns
    -------
    ndarray of float64, values in [0, 1]

    Notes
    -----
    Memory stays ~ (supersample + 2) x the output size: the sub-samples of the
    leading axes are accumulated in a loop of ``supersample**(ndim - 1)``
    vectorised passes, the last axis' sub-samples are broadcast.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"ball: shape must be 2-D or 3-D, got {shape}")
    center = [(n - 1) / 2 for n in shape] if center is None else list(center)
    if len(center) != len(shape):
        raise ValueError(f"ball: center must have {len(shape)} values, got {center}")
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    grids = [np.arange(n, dtype=float) - c for n, c in zip(shape, center)]
    sub = [(g[:, None] + offsets[None, :]) ** 2 for g in grids]  # (n_i, s) squared offsets
    r2 = radius ** 2
    last = sub[-1][None, None, :, :] if len(shape) == 3 else sub[-1][None, :, :]
    occupancy = np.zeros(shape)
    lead = [np.arange(supersample)] * (len(shape) - 1)
    for idx in np.stack(np.meshgrid(*lead, indexing="ij"), -1).reshape(-1, len(shape) - 1):
        if len(shape) == 3:
            d2 = sub[0][:, idx[0], None, None, None] + sub[1][None, :, idx[1], None, None] + last
        else:
            d2 = sub[0][:, idx[0], None, None] + last
        occupancy += np.count_nonzero(d2 <= r2, axis=-1)
    return occupancy / supersample ** len(shape)
