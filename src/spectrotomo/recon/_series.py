"""xarray wrapper: every energy of an optical-density tilt series -> a volume."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .._model import ValidationError, add_provenance, volume
from ._reconstruct import reconstruct

__all__ = ["reconstruct_series"]


def _projection_array(ts, variable: str | None) -> xr.DataArray:
    if isinstance(ts, xr.DataArray):
        return ts
    if not isinstance(ts, xr.Dataset):
        raise ValidationError("reconstruct_series: 'ts' must be an xarray Dataset or "
                              f"DataArray (energy, angle, y, x); got {type(ts).__name__}")
    if variable is None:
        variable = "od" if "od" in ts else "projections"
        if variable == "projections" and ("flats" in ts or "darks" in ts):
            raise ValidationError("reconstruct_series: 'ts' holds raw counts with flats/darks;"
                                  " normalize to optical density first (recon.normalize) or "
                                  "name the OD variable with variable=...")
    if variable not in ts:
        raise ValidationError(f"reconstruct_series: variable {variable!r} not in the dataset "
                              f"(has {sorted(ts.data_vars)})")
    da = ts[variable]
    for key in ("pixel_size", "provenance"):
        if key in ts.attrs and key not in da.attrs:
            da.attrs[key] = ts.attrs[key]
    return da


def reconstruct_series(ts, *, algorithm: str = "fbp", center=None, variable: str | None = None,
                       iterations: int | None = None, name: str = "attenuation", **options):
    """Reconstruct every energy of an optical-density tilt series.

    Parameters
    ----------
    ts : xarray.Dataset or xarray.DataArray
        Optical density ``(energy, angle, y, x)`` (a Dataset's ``od`` variable,
        else ``projections``), ``angle`` coord in degrees, ``attrs["pixel_size"]``
        in nm. numpy-, cupy- or dask-backed (dask: lazy, chunked along ``y``).
    algorithm : {"fbp", "sirt", "cgls", "tv"}
    center : float or sequence of float, optional
        Rotation-axis column, one for all energies or one per energy.
    variable : str, optional
        Data variable holding the optical density.
    iterations, **options
        Passed to :func:`spectrotomo.recon.reconstruct`.

    Returns
    -------
    xarray.DataArray, dims (energy, z, y, x), float32, linear attenuation in
    1/nm, built by ``spectrotomo.volume`` (``z`` is the detector row ``y``);
    provenance of the input plus a ``recon.reconstruct_series`` entry.
    """
    da_in = _projection_array(ts, variable)
    if da_in.dims != ("energy", "angle", "y", "x"):
        raise ValidationError("reconstruct_series: projections must have dims "
                              f"('energy', 'angle', 'y', 'x'); got {da_in.dims}")
    if da_in.coords["angle"].attrs.get("units", "deg") != "deg":
        raise ValidationError("reconstruct_series: coords['angle'] must be in 'deg'; got "
                              f"{da_in.coords['angle'].attrs.get('units')!r}")
    pixel_size = da_in.attrs.get("pixel_size")
    if pixel_size is None or not np.isfinite(pixel_size) or pixel_size <= 0:
        raise ValidationError("reconstruct_series: attrs['pixel_size'] must be a positive "
                              f"number of nm; got {pixel_size}")
    energies = np.asarray(da_in.coords["energy"].values, dtype=float)
    centers = np.broadcast_to(np.asarray(np.nan if center is None else center, dtype=float),
                              energies.shape)
    angles = np.asarray(da_in.coords["angle"].values, dtype=float)
    data = da_in.data
    vols = [reconstruct(data[k], angles, algorithm=algorithm,
                        center=None if np.isnan(centers[k]) else float(centers[k]),
                        iterations=iterations, pixel_size=float(pixel_size), **options)
            for k in range(energies.size)]  # a few energies: each call is batched over rows
    stacked = _stack(vols)
    out = volume(stacked, energies=energies, voxel_size=float(pixel_size), units="1/nm",
                 name=name)
    if "provenance" in da_in.attrs:
        out.attrs["provenance"] = da_in.attrs["provenance"]
    return add_provenance(out, "recon.reconstruct_series", algorithm=algorithm,
                          center=None if center is None else centers.tolist(),
                          iterations=iterations, variable=variable, **options)


def _stack(vols):
    first = vols[0]
    kind = type(first).__module__.split(".")[0]
    if kind == "dask":
        import dask.array as da

        return da.stack(vols)
    if kind == "cupy":
        import cupy

        return cupy.stack(vols)
    return np.stack(vols)
