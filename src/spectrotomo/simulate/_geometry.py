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
    """
    shape = tuple(int(n) for n in shape)
    center = [(n - 1) / 2 for n in shape] if center is None else list(center)
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    r2 = np.zeros(shape)
    occupancy = np.zeros(shape)
    grids = [np.arange(n, dtype=float) - c for n, c in zip(shape, center)]
    # Sum over sub-sample offsets per axis; separable squared distances keep it vectorised.
    sub = [(g[:, None] + offsets[None, :]) ** 2 for g in grids]  # (n_i, s)
    if len(shape) == 2:
        d2 = sub[0][:, None, :, None] + sub[1][None, :, None, :]
        occupancy = (d2 <= radius ** 2).mean(axis=(2, 3))
    elif len(shape) == 3:
        d2 = (sub[0][:, None, None, :, None, None] + sub[1][None, :, None, None, :, None]
              + sub[2][None, None, :, None, None, :])
        occupancy = (d2 <= radius ** 2).mean(axis=(3, 4, 5))
    else:
        raise ValueError(f"ball: shape must be 2-D or 3-D, got {shape}")
    del r2
    return occupancy
