"""Particle masks from any volume and splitting of touching particles."""

from __future__ import annotations

import numpy as np

from .._backend import to_numpy
from .._model import ValidationError
from ._util import as_mask, resolve_spacing, rewrap, unwrap

__all__ = ["particle_mask", "split_particles"]

_METHODS = ("otsu", "li", "triangle", "yen")


def particle_mask(volume, *, method="otsu", smooth: float = 1.0, fill_holes: bool = True,
                  min_size: int = 64, opening: int = 0, bright: bool = True):
    """Particle mask from a reconstructed volume (or 2D map).

    The volume is Gaussian-smoothed (``smooth`` voxels), thresholded
    (automatic method on the finite values, or a given number), cleaned by an
    optional binary opening, components smaller than ``min_size`` voxels
    removed, and holes (internal pores and cracks not reaching the surface)
    filled so that the mask is the particle *envelope*.

    Parameters
    ----------
    volume : array or xarray.DataArray, shape (nz, ny, nx) or (ny, nx), float
        E.g. attenuation (1/nm) or phase; NaN allowed (ignored for the
        threshold, outside in the mask).
    method : {"otsu", "li", "triangle", "yen"} or float
        Threshold rule (scikit-image) or the threshold value itself (units of
        ``volume``).
    smooth : float
        Gaussian sigma in voxels before thresholding (0: none).
    fill_holes : bool
        Fill enclosed background (pores) so the mask is the envelope.
    min_size : int
        Remove connected components with fewer voxels.
    opening : int
        Radius (voxels) of a binary opening to detach thin bridges/noise (0: none).
    bright : bool
        Particle brighter than background (True for attenuation/phase).

    Returns
    -------
    ndarray or xarray.DataArray, same shape, bool
        Attribute ``threshold`` (value used) on a DataArray result.

    Notes
    -----
    Whole-volume operation on the host (scipy/scikit-image); under dask run it
    on a particle crop or a downsampled volume.
    """
    from scipy import ndimage

    data, template = unwrap(volume)
    vol = np.asarray(to_numpy(data), dtype=np.float32)
    if vol.ndim not in (2, 3):
        raise ValidationError(f"volume must be 2-D or 3-D; got shape {vol.shape}")
    finite = np.isfinite(vol)
    if not finite.any():
        raise ValidationError("volume has no finite value")
    filled = np.where(finite, vol, np.nanmin(np.where(finite, vol, np.inf)) if bright
                      else np.nanmax(np.where(finite, vol, -np.inf)))
    if smooth > 0:
        filled = ndimage.gaussian_filter(filled, smooth)
    threshold = _threshold(filled[finite], method)
    mask = (filled > threshold) if bright else (filled < threshold)
    mask &= finite
    if opening > 0:
        mask = ndimage.binary_opening(mask, structure=_ball(opening, mask.ndim))
    mask = _remove_small(mask, min_size)
    if fill_holes:
        mask = ndimage.binary_fill_holes(mask)
    return rewrap(mask, template, name="particle", units="1",
                  attrs={"threshold": float(threshold),
                         "method": method if isinstance(method, str) else "value"})


def split_particles(mask, *, spacing=None, min_distance: float | None = None,
                    min_size: int = 64):
    """Label particles, splitting touching ones by a distance-transform watershed.

    Markers are the maxima of the Euclidean distance to the background that
    are at least ``min_distance`` apart; the watershed of the negated distance
    from those markers, inside the mask, gives one label per particle.

    Parameters
    ----------
    mask : array or xarray.DataArray, shape (nz, ny, nx) or (ny, nx), bool
    spacing : float or sequence, optional
        Voxel size in nm per axis (default from attrs, else 1).
    min_distance : float, optional
        Minimum separation of particle centres in nm (default: the smallest
        dimension's spacing times 5 voxels). Set it near the smallest particle
        radius: smaller values over-split elongated particles.
    min_size : int
        Regions with fewer voxels are merged into background.

    Returns
    -------
    ndarray or xarray.DataArray, same shape, int32
        0 outside, 1..N particle labels (one per distance maximum kept).
    """
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    data, template = unwrap(mask)
    arr = as_mask(data).astype(bool)
    sp = resolve_spacing(spacing, arr.ndim, template)
    dist = ndimage.distance_transform_edt(np.pad(arr, 1), sampling=sp)
    dist = dist[tuple(slice(1, -1) for _ in range(arr.ndim))]
    sep_nm = 5.0 * sp.min() if min_distance is None else float(min_distance)
    sep_vox = max(1, int(round(sep_nm / sp.min())))
    components, _ = ndimage.label(arr)
    # Plateaus of equal distance (e.g. a cylinder's axis) give many equal
    # peaks; a tiny smoothing breaks the ties without moving real maxima.
    smooth = ndimage.gaussian_filter(dist, 0.5)
    peaks = peak_local_max(smooth, min_distance=sep_vox, labels=components,
                           exclude_border=False)
    markers = np.zeros(arr.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-smooth, markers, mask=arr).astype(np.int32)
    labels = _relabel(labels, min_size)
    return rewrap(labels, template, name="particle_label", units="1",
                  attrs={"spacing": sp.tolist()})


def _threshold(values: np.ndarray, method) -> float:
    if not isinstance(method, str):
        value = float(method)
        if not np.isfinite(value):
            raise ValidationError(f"method (threshold value) must be finite; got {method!r}")
        return value
    if method not in _METHODS:
        raise ValidationError(f"method must be one of {_METHODS} or a number; got {method!r}")
    from skimage import filters

    if values.min() == values.max():
        raise ValidationError("volume is constant: no threshold separates particle and "
                              "background")
    return float(getattr(filters, f"threshold_{method}")(values))


def _ball(radius: int, ndim: int) -> np.ndarray:
    grid = np.indices((2 * radius + 1,) * ndim) - radius
    return (grid ** 2).sum(axis=0) <= radius ** 2


def _remove_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    from scipy import ndimage

    if min_size <= 1:
        return mask
    lab, _ = ndimage.label(mask)
    sizes = np.bincount(lab.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[lab]


def _relabel(labels: np.ndarray, min_size: int) -> np.ndarray:
    sizes = np.bincount(labels.ravel())
    keep = sizes >= max(min_size, 1)
    keep[0] = False
    new_ids = np.zeros(sizes.size, dtype=np.int32)
    new_ids[keep] = np.arange(1, keep.sum() + 1)
    return new_ids[labels]
