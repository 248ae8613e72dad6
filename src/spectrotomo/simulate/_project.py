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
lengths). Two methods, both deliberately different from the reconstruction
engine's projectors so that tests are not circular:

- ``"joseph"`` (default): Joseph's method as an explicit sparse system matrix of
  one slice, built vectorised once per geometry (cached) and applied to every
  slice at once with a sparse x dense product;
- ``"sampled"``: samples each ray at ``step``-voxel steps with trilinear
  interpolation (slow; the reference the other is tested against).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage, sparse

__all__ = ["project", "system_matrix"]

_MAX_POINTS = 6_000_000  # interpolation points per batch: bounds memory to ~200 MB


def project(
    vol: np.ndarray,
    angles_deg,
    *,
    center: float | None = None,
    n_cols: int | None = None,
    step: float = 0.5,
    method: str = "joseph",
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
        Ray sampling step in voxels (``method="sampled"`` only).
    method : {"joseph", "sampled"}
        Sparse Joseph system matrix (fast) or trilinear ray sampling (slow).

    Returns
    -------
    ndarray, shape (n_angles, nz, n_cols) or (n_angles, n_cols)
        Line integrals in voxel units; float32 for float32 input with
        ``method="joseph"``, else float64.
    """
    if method not in ("joseph", "sampled"):
        raise ValueError(f"project: method must be 'joseph' or 'sampled', got {method!r}")
    if method == "joseph":
        return _project_joseph(vol, angles_deg, center=center, n_cols=n_cols)
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


def _project_joseph(vol, angles_deg, *, center, n_cols):
    vol = np.asarray(vol)
    if vol.dtype != np.float32:
        vol = vol.astype(float)
    squeeze = vol.ndim == 2
    if squeeze:
        vol = vol[None]
    if vol.ndim != 3:
        raise ValueError(f"project: vol must be 2-D or 3-D, got shape {vol.shape}")
    nz, ny, nx = vol.shape
    n_cols = nx if n_cols is None else int(n_cols)
    center = (n_cols - 1) / 2 if center is None else float(center)
    angles = np.atleast_1d(np.asarray(angles_deg, dtype=float))
    A = system_matrix((ny, nx), angles, center=center, n_cols=n_cols, dtype=vol.dtype)
    # (rays, pixels) @ (pixels, slices): every slice in one sparse x dense product,
    # split over the host's threads by slices (scipy's sparsetools release the GIL).
    from .._backend import host_threads

    flat = vol.reshape(nz, ny * nx)
    threads = min(host_threads(), nz // 8)  # a slab's 16 slices (512^2) in two threads
    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        halves = np.array_split(np.arange(nz), threads)
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(lambda idx: A @ np.ascontiguousarray(flat[idx].T), halves))
        sino = np.concatenate(parts, axis=1)
    else:
        sino = A @ np.ascontiguousarray(flat.T)
    out = sino.reshape(angles.size, n_cols, nz).transpose(0, 2, 1)
    return np.ascontiguousarray(out[:, 0] if squeeze else out)


def system_matrix(shape, angles_deg, *, center=None, n_cols=None, dtype=np.float64):
    """Joseph-method system matrix of one slice.

    Parameters
    ----------
    shape : (ny, nx)
        Slice shape in voxels.
    angles_deg : array_like, shape (n_angles,)
        Tilt angles, degrees.
    center, n_cols
        As in :func:`project`.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n_angles * n_cols, ny * nx)
        Row ``a * n_cols + u`` holds the weights of ray (angle a, column u).
    """
    ny, nx = (int(n) for n in shape)
    n_cols = nx if n_cols is None else int(n_cols)
    center = (n_cols - 1) / 2 if center is None else float(center)
    angles = tuple(float(a) for a in np.atleast_1d(np.asarray(angles_deg, dtype=float)))
    return _cached_matrix(ny, nx, angles, center, n_cols, np.dtype(dtype).str)


#: (angle, ray, step) entries per block of :func:`_cached_matrix`: its float64 and int64
#: temporaries (~10 of this size, and the COO triplets) were ~1.2 GiB for 131 angles at
#: 256^2, 4x that at 512^2, in one block
_BLOCK_ENTRIES = 2**21


@functools.lru_cache(maxsize=8)
def _cached_matrix(ny, nx, angles, center, n_cols, dtype):
    """The matrix of :func:`system_matrix`, built in blocks of angles (rows): a row's
    entries and their order are those of one block of all angles, so the stacked
    blocks are the same matrix (values, indices and duplicate sums)."""
    per = max(1, _BLOCK_ENTRIES // (n_cols * max(ny, nx)))
    blocks = [_matrix_rows(ny, nx, angles[a:a + per], center, n_cols, dtype)
              for a in range(0, len(angles), per)]  # a few blocks: memory, not a hot loop
    A = blocks[0] if len(blocks) == 1 else sparse.vstack(blocks, format="csr")
    A.sum_duplicates()  # canonical already: a check
    return A


def _matrix_rows(ny, nx, angles, center, n_cols, dtype):
    """Rows ``a * n_cols + u`` of the Joseph matrix for the ``angles`` (a tuple, deg)."""
    theta = np.deg2rad(np.asarray(angles))
    u = np.arange(n_cols) - center  # u' = X cos + Y sin on each ray
    rows, cols, vals = [], [], []
    # Rays closer to the y axis step one row at a time and interpolate along x;
    # the others step along x and interpolate along y (Joseph 1982).
    along_y = np.abs(np.cos(theta)) >= np.abs(np.sin(theta))
    for major in (True, False):  # two branches, each vectorised over angles, rays, steps
        a_idx = np.nonzero(along_y == major)[0]
        if a_idx.size == 0:
            continue
        c, s = np.cos(theta[a_idx]), np.sin(theta[a_idx])
        n_major, n_minor = (ny, nx) if major else (nx, ny)
        lead, trail = (c, s) if major else (s, c)  # X c + Y s = u'
        m = np.arange(n_major) - (n_major - 1) / 2
        # minor coordinate on every (angle, ray, step): (u' - m * trail) / lead
        minor = (u[None, :, None] - m[None, None, :] * trail[:, None, None]) / lead[:, None, None]
        minor = minor + (n_minor - 1) / 2
        weight = np.broadcast_to(1.0 / np.abs(lead)[:, None, None], minor.shape)
        lo = np.floor(minor)
        frac = minor - lo
        ray = (a_idx[:, None, None] * n_cols + np.arange(n_cols)[None, :, None])
        ray = np.broadcast_to(ray, minor.shape)
        mm = np.broadcast_to(np.arange(n_major)[None, None, :], minor.shape)
        for offset, w in ((0, 1.0 - frac), (1, frac)):
            k = lo + offset
            ok = (k >= 0) & (k < n_minor) & (w > 0)
            kk = k[ok].astype(np.int64)
            pix = mm[ok] * nx + kk if major else kk * nx + mm[ok]
            rows.append(ray[ok])
            cols.append(pix)
            vals.append((w * weight)[ok])
    A = sparse.coo_matrix(
        (np.concatenate(vals).astype(dtype), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(angles) * n_cols, ny * nx),
    ).tocsr()
    A.sum_duplicates()
    return A
