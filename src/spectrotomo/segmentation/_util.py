"""Input handling shared by the segmentation functions.

Every public function accepts numpy arrays, cupy arrays (where stated) or
``xarray.DataArray`` maps shaped ``(z, y, x)`` / ``(y, x)``. A DataArray
carries its voxel size in ``attrs["pixel_size"]`` (nm, isotropic) or
``attrs["spacing"]`` (nm per axis); results come back as DataArrays on the
same coordinates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._backend import to_numpy
from .._model import ValidationError


def unwrap(obj) -> tuple[Any, Any]:
    """Return ``(array, template)``; ``template`` is the DataArray or None."""
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - xarray is a hard dependency
        return obj, None
    if isinstance(obj, xr.DataArray):
        return obj.data, obj
    return obj, None


def rewrap(data, template, *, name: str, units: str, attrs: dict | None = None):
    """Put ``data`` back on the coordinates of ``template`` (if any)."""
    if template is None:
        return data
    import xarray as xr

    keep = {k: template.attrs[k] for k in ("pixel_size", "pixel_size_units", "spacing")
            if k in template.attrs}
    return xr.DataArray(data, dims=template.dims, coords=template.coords, name=name,
                        attrs={**keep, "units": units, **dict(attrs or {})})


def resolve_spacing(spacing, ndim: int, *templates) -> np.ndarray:
    """Voxel spacing in nm per axis (length ``ndim``).

    ``spacing`` may be None (then taken from a DataArray's ``attrs['spacing']``
    or ``attrs['pixel_size']``, else from the steps of its last ``ndim``
    coordinates when they are in nm, e.g. a variable taken out of a Dataset;
    plain arrays: 1 nm per voxel), a scalar or a sequence.
    """
    if spacing is None:
        for t in templates:
            if t is None:
                continue
            if "spacing" in t.attrs:
                spacing = t.attrs["spacing"]
                break
            if "pixel_size" in t.attrs:
                spacing = t.attrs["pixel_size"]
                break
            spacing = _spacing_from_coords(t, ndim)
            if spacing is not None:
                break
    if spacing is None:
        spacing = 1.0
    arr = np.asarray(spacing, dtype=float)
    if arr.ndim == 0:
        arr = np.full(ndim, float(arr))
    if arr.shape != (ndim,):
        raise ValidationError(
            f"spacing must be a scalar or {ndim} values (nm per axis, order of the array "
            f"axes); got {spacing!r}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValidationError(f"spacing must be positive finite nm; got {arr.tolist()}")
    return arr


def _spacing_from_coords(template, ndim: int):
    dims = template.dims[-ndim:]
    steps = []
    for dim in dims:
        coord = template.coords.get(dim)
        if coord is None or coord.attrs.get("units") != "nm" or coord.size < 2:
            return None
        diffs = np.diff(np.asarray(coord.values, dtype=float))
        if not np.allclose(diffs, diffs[0], rtol=1e-6):
            return None
        steps.append(abs(float(diffs[0])))
    return steps


def as_mask(mask, *, name: str = "mask", ndim_ok=(2, 3), allow_empty: bool = False) -> np.ndarray:
    """Host boolean (or integer label) array, validated."""
    arr = to_numpy(mask)
    if arr.ndim not in ndim_ok:
        raise ValidationError(f"{name} must be {' or '.join(map(str, ndim_ok))}-D; got "
                              f"shape {arr.shape}")
    if arr.dtype != bool and not np.issubdtype(arr.dtype, np.integer):
        raise ValidationError(f"{name} must be bool or integer labels; got dtype {arr.dtype}")
    if arr.dtype != bool and arr.size and arr.min() < 0:
        raise ValidationError(f"{name} labels must be >= 0 (0 outside); got min {arr.min()}")
    if not allow_empty and not arr.any():
        raise ValidationError(f"{name} is empty (no voxel inside any particle)")
    return arr


def check_same_shape(**arrays) -> None:
    """Raise if the named arrays do not share one shape (None entries skipped)."""
    shapes = {k: tuple(np.shape(v)) for k, v in arrays.items() if v is not None}
    if len(set(shapes.values())) > 1:
        desc = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise ValidationError(f"arrays must have the same shape; got {desc}")


def label_ids(labels: np.ndarray) -> np.ndarray:
    """Sorted non-zero label values present in ``labels`` (bool -> [1])."""
    if labels.dtype == bool:
        return np.array([1]) if labels.any() else np.array([], dtype=int)
    ids = np.unique(labels)
    return ids[ids != 0]
