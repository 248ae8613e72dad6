"""Noise reduction of per-voxel amounts inside a mask, before ratios are formed.

Why: a TM/O ratio of two noisy edge-jump amounts is far noisier than either
(the demo's per-voxel ratio noise is ~50 % against a +-5 % class band), so
classes must be formed from locally averaged amounts. Two rules keep the
average physical:

* normalized convolution (Knutsson & Westin 1993): only voxels inside the mask
  are averaged, ``sum(w g x) / sum(w g)``, so pores and the outside never dilute
  the particle and the ratio of two smoothed amounts is the amount-weighted
  mean ratio of the neighbourhood;
* iso-depth layers near the surface: within ``surface_nm`` of the mask's
  surface, voxels are averaged only with voxels of the same one-voxel depth
  layer (along the surface, not across it), so a surface layer thinner than
  the smoothing length (e.g. a 30 nm reduced skin) keeps its own composition.
"""

from __future__ import annotations

import numpy as np

from .._model import ValidationError
from ._util import as_mask, unwrap

__all__ = ["masked_smooth"]


def _spacing3(spacing, ndim: int) -> np.ndarray:
    s = np.broadcast_to(np.asarray(spacing, dtype=float), (ndim,)).copy()
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValidationError(f"masked_smooth: spacing must be > 0 nm per axis; got {spacing!r}")
    return s


def _layers(mask: np.ndarray, spacing: np.ndarray, surface_nm: float) -> tuple[np.ndarray, int]:
    """One-voxel-thick depth layers: 1 outermost ... n, then n + 1 for everything deeper."""
    from scipy import ndimage

    step = float(spacing.min())
    n = int(round(surface_nm / step))
    if n == 0:
        return mask.astype(np.int32), 0
    dist = ndimage.distance_transform_edt(mask, sampling=spacing)  # to the nearest outside centre
    layer = np.minimum(np.ceil(dist / step - 1e-6), n + 1).astype(np.int32)
    return np.where(mask, np.maximum(layer, 1), 0), n


def masked_smooth(data, mask, *, sigma_nm: float, spacing=1.0, surface_nm: float = 0.0):
    """Gaussian average of ``data`` over the voxels of ``mask`` only.

    Parameters
    ----------
    data : array, shape (..., nz, ny, nx) (or (..., ny, nx)), float
        Maps to smooth, e.g. element amounts in atoms/nm^3; leading axes (such
        as ``element``) are smoothed independently. NaN voxels count as missing.
    mask : array, shape (nz, ny, nx), bool
        Voxels to average over (e.g. the particle's solid: envelope minus pores
        and cracks). Outside it the result is NaN.
    sigma_nm : float
        Gaussian standard deviation in nm (>= 0; 0 returns ``data`` masked).
    spacing : float or sequence of float
        Voxel size in nm per spatial axis (anisotropic voxels honoured).
    surface_nm : float
        Depth below the mask surface (nm, >= 0) within which voxels are
        averaged only inside their own one-voxel depth layer (layers of the
        smallest spacing, from the Euclidean distance to the nearest outside
        voxel). 0: isotropic averaging everywhere.

    Returns
    -------
    numpy.ndarray, same shape as ``data``, float32
        Smoothed maps; NaN outside ``mask`` and where no finite neighbour lies
        within the kernel.

    Notes
    -----
    One ``scipy.ndimage.gaussian_filter`` pair per depth layer (a few), each
    over every leading map at once; runs on the host.
    """
    from scipy import ndimage

    arr = np.asarray(unwrap(data)[0], dtype=np.float32)
    m = as_mask(np.asarray(unwrap(mask)[0]), name="mask", ndim_ok=(2, 3)) > 0
    if arr.shape[arr.ndim - m.ndim:] != m.shape:
        raise ValidationError(f"masked_smooth: data {arr.shape} must end with the mask's shape "
                              f"{m.shape}")
    if not np.isfinite(sigma_nm) or sigma_nm < 0:
        raise ValidationError(f"masked_smooth: sigma_nm must be >= 0 nm; got {sigma_nm!r}")
    if not np.isfinite(surface_nm) or surface_nm < 0:
        raise ValidationError(f"masked_smooth: surface_nm must be >= 0 nm; got {surface_nm!r}")
    spacing = _spacing3(spacing, m.ndim)
    lead = arr.ndim - m.ndim
    finite = np.isfinite(arr)
    out = np.full(arr.shape, np.nan, np.float32)
    if sigma_nm == 0:
        np.copyto(out, arr, where=m & finite)
        return out
    sigma = (0.0,) * lead + tuple(sigma_nm / spacing)
    values = np.where(finite, arr, 0.0).astype(np.float32)
    layers, n = _layers(m, spacing, surface_nm)
    for k in range(1, n + 2):  # depth layers: a handful
        region = layers == k
        if not region.any():
            continue
        w = (region & finite).astype(np.float32)
        num = ndimage.gaussian_filter(values * w, sigma, mode="constant")
        den = ndimage.gaussian_filter(w, sigma, mode="constant")
        with np.errstate(invalid="ignore", divide="ignore"):
            smooth = np.where(den > 1e-6, num / den, np.nan)
        np.copyto(out, smooth.astype(np.float32), where=np.broadcast_to(region, arr.shape))
    return out
