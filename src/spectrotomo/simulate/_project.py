"""Ground-truth parallel-beam forward projection (independent of ``recon``).

Geometry convention (shared with ``spectrotomo.recon``; tested there):
a volume ``f[z, y, x]`` rotates about the ``z`` axis; detector rows are ``z``
and detector columns are ``x``. With centred coordinates
``X = x - (nx - 1) / 2`` and ``Y = y - (ny - 1) / 2`` (pixels), the projection
at tilt angle ``theta`` (degrees) and detector column ``u`` is the line
integral over ``X cos(theta) + Y sin(theta) = u - c``, where ``c`` is the
rotation-centre column (default ``(nx - 1) / 2``: column ``i``'s centre is at
``i``). At ``theta = 0`` the rays run along ``y``, so the projection of
``f`` is ``f.sum(axis=-2)``.

Line integrals are in units of voxels (multiply by the voxel size to get
lengths). This projector samples each ray at half-voxel steps with trilinear
interpolation; it is deliberately a different algorithm from the
reconstruction engine's projectors so that tests are not circular.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["project"]

_MAX_POINTS = 6_000_000  # interpolation points per batch: bounds memory to ~200 MB


def project(
    vol: np.ndarray,
    angles_deg,
    *,
    center: float | None = None,
    n_cols: int | None = None,
    step: float = 0.5,
) -> np.ndarray:
    """Parallel-beam line integrals of ``vol``.

    Parameters
    ----------
    vol : ndarray, shape (nz, ny, nx) or (ny, nx)
        Values per voxel (e.g. attenuation in 1/voxel).
    angles_deg : array_like, shape (n_angles,)
        Tilt angles in degrees.
    center : float, optional
        Detector column of the rotation axis, default ``(n_cols - 1) / 2``.
    n_cols : int, optional
        Detector width in pixels, default ``nx``.
    step : float
        Ray sampling step in voxels.

    Returns
    -------
    ndarray, shape (n_angles, nz, n_cols) or (n_angles, n_cols), float64
        Line integrals in voxel units.
    """
    vol = np.asarray(vol, dtype=float)
    squeeze = vol.ndim == 2
    if squeeze:
        vol = vol[None]
    if vol.ndim != 3:
        raise ValueError(f"project: vol must be 2-D or 3-D, got shape {vol.shape}")
    nz, ny, nx = vol.shape
    n_cols = nx if n_cols is None else int(n_cols)
    center = (n_cols - 1) / 2 if center is None else float(center)
    theta = np.deg2rad(np.atleast_1d(np.asarray(angles_deg, dtype=float)))
    half = 0.5 * np.hypot(ny, nx) + 1
    t = np.arange(-half, half + step / 2, step)
    u = np.arange(n_cols) - center
    out = np.empty((theta.size, nz, n_cols))
    per_angle = nz * n_cols * t.size
    batch = max(1, _MAX_POINTS // per_angle)
    cz = np.arange(nz, dtype=float)[:, None, None, None]
    for start in range(0, theta.size, batch):  # batches bound memory, not a per-angle loop
        th = theta[start:start + batch]
        c, s = np.cos(th)[None, :, None, None], np.sin(th)[None, :, None, None]
        uu, tt = u[None, None, :, None], t[None, None, None, :]
        X = uu * c - tt * s + (nx - 1) / 2
        Y = uu * s + tt * c + (ny - 1) / 2
        shape = (nz, th.size, n_cols, t.size)
        coords = np.stack([np.broadcast_to(cz, shape), np.broadcast_to(Y, shape),
                           np.broadcast_to(X, shape)])
        samples = ndimage.map_coordinates(vol, coords.reshape(3, -1), order=1,
                                          mode="constant", cval=0.0)
        out[start:start + th.size] = samples.reshape(shape).sum(-1).transpose(1, 0, 2) * step
    return out[:, 0] if squeeze else out
