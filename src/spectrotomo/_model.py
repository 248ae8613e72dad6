"""The data model every stage shares: named dims, units and validators.

One declared axis order lives here. Tilt series are ``xarray.Dataset`` objects
with a ``projections`` variable shaped ``(energy, angle, y, x)`` (optionally
``(energy, distance, angle, y, x)`` for holotomography), plus ``flats`` shaped
``(energy, flat, y, x)`` and ``darks`` shaped ``(energy, dark, y, x)``.
Volumes are ``xarray.DataArray`` objects shaped ``(energy, z, y, x)``; maps are
``(z, y, x)`` (3D) or ``(y, x)`` (2D).

Units: angles in degrees (``deg``), energies in electronvolts (``eV``), lengths
in nanometres (``nm``), propagation distances in metres (``m``). Every
coordinate carries ``attrs["units"]``.

Pixel size: ``attrs["pixel_size"]`` (nm) is the series' reference pixel size in
the sample plane (the ``y``/``x`` coordinates use it). Zone-plate optics change
the magnification with energy; where the instrument recorded a different
pixel size per energy, the optional coordinate ``pixel_size_energy``
(``energy``,) in nm holds them (readers set ``attrs["pixel_size"]`` to the
first energy's), and ``pixel_size_energy[ref] / pixel_size_energy[e]`` is the
magnification of energy ``e`` relative to ``ref``
(``recon.prep.register_energies(pixel_sizes=...)``).

Provenance (:mod:`._provenance`, re-exported here) is a JSON list in
``attrs["provenance"]``: one entry per step with
the toolkit version, the step name, its parameters and inputs.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import xarray as xr

from ._provenance import add_provenance, provenance

__all__ = [
    "DIMS",
    "UNITS",
    "ValidationError",
    "tilt_series",
    "volume",
    "spatial_map",
    "validate_tilt_series",
    "validate_volume",
    "validate_map",
    "energy_pixel_sizes",
    "PIXEL_SIZE_ENERGY",
    "add_provenance",
    "provenance",
]

#: Dimension names and the unit of their coordinate.
DIMS = ("energy", "distance", "angle", "z", "y", "x", "state", "element")
UNITS = {
    "energy": "eV",
    "distance": "m",
    "angle": "deg",
    "z": "nm",
    "y": "nm",
    "x": "nm",
}
PROJECTION_DIMS = ("energy", "angle", "y", "x")
HOLO_PROJECTION_DIMS = ("energy", "distance", "angle", "y", "x")
VOLUME_DIMS = ("energy", "z", "y", "x")
#: Optional coordinate (energy,) of a tilt series: pixel size per energy, nm.
PIXEL_SIZE_ENERGY = "pixel_size_energy"


class ValidationError(ValueError):
    """Input does not follow the data model; the message names field and expectation."""


# --------------------------------------------------------------------------- #
# validation helpers
# --------------------------------------------------------------------------- #
def _fail(where: str, field: str, expected: str, got: Any) -> None:
    raise ValidationError(f"{where}: field {field!r} must be {expected}; got {got}")


def _check_dims(where: str, field: str, arr: xr.DataArray, allowed: tuple[tuple[str, ...], ...]):
    if arr.dims not in allowed:
        _fail(where, field, " or ".join(str(a) for a in allowed) + " dims", arr.dims)


def _check_float(where: str, field: str, arr: xr.DataArray):
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        _fail(where, field, "a real numeric dtype (float or unsigned int counts)", arr.dtype)


def _check_coord(
    where: str, obj, dim: str, *, monotonic: bool = False, positive: bool = False
) -> np.ndarray:
    if dim not in obj.coords:
        _fail(where, f"coords[{dim!r}]", f"present (values in {UNITS[dim]})", "missing")
    coord = obj.coords[dim]
    if coord.attrs.get("units") != UNITS[dim]:
        _fail(where, f"coords[{dim!r}].attrs['units']", repr(UNITS[dim]), coord.attrs.get("units"))
    values = np.asarray(coord.values, dtype=float)
    if not np.all(np.isfinite(values)):
        _fail(where, f"coords[{dim!r}]", "finite", f"{int((~np.isfinite(values)).sum())} non-finite")
    if np.unique(values).size != values.size:
        _fail(where, f"coords[{dim!r}]", "free of duplicates", "duplicate values")
    if monotonic and values.size > 1 and not np.all(np.diff(values) > 0):
        _fail(where, f"coords[{dim!r}]", "strictly increasing", values.tolist()[:8])
    if positive and np.any(values <= 0):
        _fail(where, f"coords[{dim!r}]", "> 0", values.tolist()[:8])
    return values


def _check_pixel_size(where: str, obj) -> None:
    size = obj.attrs.get("pixel_size")
    if size is None:
        _fail(where, "attrs['pixel_size']", "present (nm)", "missing")
    if not np.isfinite(size) or size <= 0:
        _fail(where, "attrs['pixel_size']", "a positive number of nm", size)


def _check_energy_pixel_sizes(where: str, ds) -> None:
    if PIXEL_SIZE_ENERGY not in ds.coords:
        return
    field = f"coords[{PIXEL_SIZE_ENERGY!r}]"
    coord = ds.coords[PIXEL_SIZE_ENERGY]
    if coord.dims != ("energy",):
        _fail(where, field, "1-D along ('energy',)", coord.dims)
    if coord.attrs.get("units") != "nm":
        _fail(where, f"{field}.attrs['units']", "'nm'", coord.attrs.get("units"))
    values = np.asarray(coord.values, dtype=float)
    if not np.all(np.isfinite(values) & (values > 0)):
        _fail(where, field, "positive finite numbers of nm", values.tolist()[:8])


def energy_pixel_sizes(ds) -> np.ndarray | None:
    """Per-energy pixel sizes of a tilt series, nm, shape (n_energies,), or None.

    None when ``ds`` carries no ``pixel_size_energy`` coordinate (the
    instrument recorded one pixel size for every energy, or none per energy).
    """
    if PIXEL_SIZE_ENERGY not in ds.coords:
        return None
    return np.asarray(ds.coords[PIXEL_SIZE_ENERGY].values, dtype=float)


def validate_tilt_series(ds: xr.Dataset, *, where: str = "tilt series") -> xr.Dataset:
    """Check a tilt series against the data model and return it unchanged.

    Raises
    ------
    ValidationError
        Naming the field and the expected value when dims, dtypes, coords,
        units, shapes or the pixel size are wrong.
    """
    if not isinstance(ds, xr.Dataset):
        _fail(where, "<object>", "an xarray.Dataset", type(ds).__name__)
    if "projections" not in ds:
        _fail(where, "projections", "a data variable", "missing")
    proj = ds["projections"]
    _check_dims(where, "projections", proj, (PROJECTION_DIMS, HOLO_PROJECTION_DIMS))
    _check_float(where, "projections", proj)
    if 0 in proj.shape:
        _fail(where, "projections", "non-empty", proj.shape)
    _check_coord(where, ds, "angle")
    _check_coord(where, ds, "energy", monotonic=True, positive=True)
    if "distance" in proj.dims:
        _check_coord(where, ds, "distance", monotonic=True, positive=True)
    _check_pixel_size(where, ds)
    _check_energy_pixel_sizes(where, ds)
    ny, nx = proj.sizes["y"], proj.sizes["x"]
    for name, extra in (("flats", "flat"), ("darks", "dark")):
        if name not in ds:
            continue
        ref = ds[name]
        allowed = (("energy", extra, "y", "x"), ("energy", "distance", extra, "y", "x"))
        _check_dims(where, name, ref, allowed)
        _check_float(where, name, ref)
        if ref.sizes["y"] != ny or ref.sizes["x"] != nx:
            _fail(where, name, f"frames of shape ({ny}, {nx}) like projections",
                  (ref.sizes["y"], ref.sizes["x"]))
        if ref.sizes[extra] == 0:
            _fail(where, name, "at least one frame", 0)
    return ds


def validate_volume(da: xr.DataArray, *, where: str = "volume") -> xr.DataArray:
    """Check a volume ``(energy, z, y, x)`` against the data model."""
    if not isinstance(da, xr.DataArray):
        _fail(where, "<object>", "an xarray.DataArray", type(da).__name__)
    _check_dims(where, da.name or "volume", da, (VOLUME_DIMS,))
    _check_float(where, da.name or "volume", da)
    _check_coord(where, da, "energy", monotonic=True, positive=True)
    _check_pixel_size(where, da)
    if "units" not in da.attrs:
        _fail(where, "attrs['units']", "present (e.g. '1/nm')", "missing")
    return da


def validate_map(da: xr.DataArray, *, where: str = "map") -> xr.DataArray:
    """Check a map shaped ``(z, y, x)`` or ``(y, x)`` (optionally with a leading
    ``element`` or ``state`` dim)."""
    if not isinstance(da, xr.DataArray):
        _fail(where, "<object>", "an xarray.DataArray", type(da).__name__)
    spatial = tuple(d for d in da.dims if d in ("z", "y", "x"))
    if spatial not in (("z", "y", "x"), ("y", "x")):
        _fail(where, "dims", "ending in (z, y, x) or (y, x)", da.dims)
    _check_pixel_size(where, da)
    if "units" not in da.attrs:
        _fail(where, "attrs['units']", "present ('1' for dimensionless)", "missing")
    return da


# --------------------------------------------------------------------------- #
# constructors
# --------------------------------------------------------------------------- #
def _spatial_coord(dim: str, n: int, pixel_size: float) -> xr.DataArray:
    # Pixel i's centre sits at i * pixel_size (nm): the same column-index
    # convention as the rotation centre in recon.
    return xr.DataArray(np.arange(n) * float(pixel_size), dims=dim, attrs={"units": "nm"})


def _as_1d(name: str, values, where: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1:
        _fail(where, name, "a 1-D sequence", arr.shape)
    return arr


def _energy_pixel_coord(pixel_sizes, n_energies: int, where: str) -> xr.DataArray:
    values = _as_1d(PIXEL_SIZE_ENERGY, pixel_sizes, where)
    if values.size != n_energies:
        _fail(where, PIXEL_SIZE_ENERGY, f"{n_energies} pixel sizes (one per energy, nm)",
              values.size)
    return xr.DataArray(values, dims="energy", attrs={
        "units": "nm", "long_name": "sample-plane pixel size recorded at each energy"})


def _reference_frames(name: str, ref, *, holo: bool, n_energies: int, frame: tuple,
                      where: str) -> tuple:
    """(dims, frames) of the ``flats`` or ``darks`` of a tilt series, checked; frames
    without the energy axis are shared by every energy."""
    extra = name[:-1]  # "flat" | "dark"
    ref_dims = ("energy", "distance", extra, "y", "x") if holo else ("energy", extra, "y", "x")
    if ref.ndim == len(ref_dims) - 1:  # shared by every energy
        ref = np.broadcast_to(np.asarray(ref)[None], (n_energies, *ref.shape))
    if ref.ndim != len(ref_dims):
        _fail(where, name, f"{len(ref_dims)}-D {ref_dims}", f"{ref.ndim}-D")
    if ref.shape[0] != n_energies:
        _fail(where, name, f"{n_energies} energies along axis 0", ref.shape[0])
    if ref.shape[-2:] != frame:
        _fail(where, name, f"frames of shape {frame} like projections", tuple(ref.shape[-2:]))
    return ref_dims, ref


def tilt_series(
    projections,
    *,
    angles,
    energies,
    pixel_size: float,
    flats=None,
    darks=None,
    distances=None,
    pixel_sizes=None,
    attrs: Mapping[str, Any] | None = None,
    where: str = "tilt series",
) -> xr.Dataset:
    """Build a validated tilt series.

    Parameters
    ----------
    projections : array, shape (n_energies, n_angles, ny, nx) or
        (n_energies, n_distances, n_angles, ny, nx)
        Raw counts or normalized transmission (numpy or dask).
    angles : sequence of float, length n_angles
        Tilt angles in degrees.
    energies : sequence of float, length n_energies
        Photon energies in eV, strictly increasing.
    pixel_size : float
        Detector pixel size in the sample plane, nm (the reference one).
    flats, darks : array, shape (n_energies, n_frames, ny, nx), optional
        A 3-D array (n_frames, ny, nx) is shared by every energy.
    distances : sequence of float, optional
        Propagation distances in metres for holotomography.
    pixel_sizes : sequence of float, length n_energies, optional
        Sample-plane pixel size recorded at each energy, nm; stored as the
        coordinate ``pixel_size_energy`` (energy,).
    attrs : mapping, optional
        Extra attributes (e.g. ``{"sample": "P1"}``).
    """
    angles = _as_1d("angles", angles, where)
    energies = _as_1d("energies", energies, where)
    holo = distances is not None
    dims = HOLO_PROJECTION_DIMS if holo else PROJECTION_DIMS
    ndim = getattr(projections, "ndim", np.ndim(projections))
    if ndim != len(dims):
        _fail(where, "projections", f"{len(dims)}-D {dims}", f"{ndim}-D")
    shape = projections.shape
    if shape[0] != energies.size:
        _fail(where, "projections", f"{energies.size} energies along axis 0 (len(energies))", shape[0])
    if shape[-3] != angles.size:
        _fail(where, "projections", f"{angles.size} angles along axis -3 (len(angles))", shape[-3])
    coords = {
        "energy": xr.DataArray(energies, dims="energy", attrs={"units": "eV"}),
        "angle": xr.DataArray(angles, dims="angle", attrs={"units": "deg"}),
        "y": _spatial_coord("y", shape[-2], pixel_size),
        "x": _spatial_coord("x", shape[-1], pixel_size),
    }
    if holo:
        distances = _as_1d("distances", distances, where)
        if shape[1] != distances.size:
            _fail(where, "projections", f"{distances.size} distances along axis 1", shape[1])
        coords["distance"] = xr.DataArray(distances, dims="distance", attrs={"units": "m"})
    if pixel_sizes is not None:
        coords[PIXEL_SIZE_ENERGY] = _energy_pixel_coord(pixel_sizes, energies.size, where)
    data_vars = {"projections": (dims, projections)}
    for name, ref in (("flats", flats), ("darks", darks)):
        if ref is not None:
            data_vars[name] = _reference_frames(name, ref, holo=holo, n_energies=energies.size,
                                                frame=tuple(shape[-2:]), where=where)
    ds = xr.Dataset(data_vars, coords=coords, attrs={"pixel_size": float(pixel_size),
                                                     "pixel_size_units": "nm",
                                                     **dict(attrs or {})})
    return validate_tilt_series(ds, where=where)


def volume(
    data,
    *,
    energies,
    voxel_size: float,
    units: str = "1/nm",
    name: str = "volume",
    attrs: Mapping[str, Any] | None = None,
) -> xr.DataArray:
    """Build a validated volume shaped (n_energies, nz, ny, nx).

    ``voxel_size`` is in nm and stored as ``attrs["pixel_size"]``; ``units``
    is the unit of the values (``"1/nm"`` for linear attenuation).
    """
    energies = _as_1d("energies", energies, "volume")
    if data.ndim == 3:
        data = data[None]
    if data.ndim != 4:
        _fail("volume", name, "3-D (z, y, x) or 4-D (energy, z, y, x)", f"{data.ndim}-D")
    if data.shape[0] != energies.size:
        _fail("volume", name, f"{energies.size} energies along axis 0", data.shape[0])
    coords = {"energy": xr.DataArray(energies, dims="energy", attrs={"units": "eV"})}
    for dim, n in zip(("z", "y", "x"), data.shape[1:]):
        coords[dim] = _spatial_coord(dim, n, voxel_size)
    da = xr.DataArray(data, dims=VOLUME_DIMS, coords=coords, name=name,
                      attrs={"pixel_size": float(voxel_size), "pixel_size_units": "nm",
                             "units": units, **dict(attrs or {})})
    return validate_volume(da)


def spatial_map(
    data,
    *,
    voxel_size: float,
    units: str,
    name: str,
    leading: Mapping[str, Iterable] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.DataArray:
    """Build a validated map shaped ``(z, y, x)`` or ``(y, x)``.

    ``leading`` optionally names one leading dim and its coordinate values,
    e.g. ``{"element": ["Mn", "Co", "Ni", "O"]}``.
    """
    leading = dict(leading or {})
    n_spatial = data.ndim - len(leading)
    if n_spatial not in (2, 3):
        _fail("map", name, "2-D (y, x) or 3-D (z, y, x) after leading dims", data.shape)
    spatial = ("z", "y", "x")[3 - n_spatial:]
    coords = {dim: _spatial_coord(dim, n, voxel_size)
              for dim, n in zip(spatial, data.shape[len(leading):])}
    for dim, values in leading.items():
        coords[dim] = list(values)
    da = xr.DataArray(data, dims=(*leading, *spatial), coords=coords, name=name,
                      attrs={"pixel_size": float(voxel_size), "pixel_size_units": "nm",
                             "units": units, **dict(attrs or {})})
    return validate_map(da)
