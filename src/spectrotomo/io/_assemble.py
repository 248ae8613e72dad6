"""Assemble several tilt series (one per energy or per propagation distance)
into one, with ``energy`` (eV) or ``distance`` (m) coordinates."""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from .._model import (PIXEL_SIZE_ENERGY, ValidationError, add_provenance, energy_pixel_sizes,
                      provenance, tilt_series)
from ._common import fail, split_pixel_sizes

__all__ = ["combine", "read_series"]


def _is_dask(arr) -> bool:
    return type(arr).__module__.split(".")[0] == "dask"


def _join(arrays, axis: int, *, new: bool):
    if any(_is_dask(a) for a in arrays):
        import dask.array as da

        arrays = [a if _is_dask(a) else da.from_array(np.asarray(a), chunks=-1) for a in arrays]
        return da.stack(arrays, axis=axis) if new else da.concatenate(arrays, axis=axis)
    return np.stack(arrays, axis=axis) if new else np.concatenate(arrays, axis=axis)


def _source(ds) -> str:
    return str(ds.attrs.get("source_file", "<in-memory tilt series>"))


def _auto_dim(series, source) -> str:
    distances = [ds.attrs.get("propagation_distance") for ds in series]
    if all(d is not None for d in distances) and len(set(distances)) == len(series):
        return "distance"
    energies = np.concatenate([ds["energy"].values for ds in series])
    if np.unique(energies).size == energies.size:
        return "energy"
    fail(source, "entries", "distinct energies or distinct propagation distances",
         f"energies {energies.tolist()}, distances {distances}")


def _common_angles(series, tolerance: float) -> np.ndarray:
    ref = series[0]["angle"].values
    for ds in series[1:]:
        angles = ds["angle"].values
        if angles.size != ref.size:
            fail(_source(ds), "angles", f"{ref.size} angles like {_source(series[0])}",
                 angles.size)
        worst = float(np.max(np.abs(angles - ref)))
        if worst > tolerance:
            fail(_source(ds), "angles", f"within {tolerance} deg of {_source(series[0])} "
                 "(angle_tolerance)", f"a deviation of {worst:.4g} deg")
    return ref


def _refs(series, name: str, frame_axis: int):
    present = [name in ds for ds in series]
    if not any(present):
        return None, None
    if not all(present):
        missing = series[present.index(False)]
        fail(_source(missing), name, f"present like in {_source(series[present.index(True)])}")
    n = min(ds[name].shape[frame_axis] for ds in series)
    sl = [slice(None)] * series[0][name].ndim
    sl[frame_axis] = slice(0, n)
    return [ds[name].data[tuple(sl)] for ds in series], n


def _member_pixel_sizes(ds) -> np.ndarray:
    """Pixel size of each of a member's energies, nm (its coordinate, else its attribute)."""
    per_energy = energy_pixel_sizes(ds)
    if per_energy is not None:
        return per_energy
    return np.full(ds.sizes["energy"], float(ds.attrs["pixel_size"]))


def combine(series: Sequence, *, dim: str | None = "energy", source=None,
            angle_tolerance: float = 0.1):
    """Combine tilt series along ``energy`` or ``distance`` into one.

    Parameters
    ----------
    series : sequence of xarray.Dataset
        Tilt series with equal frame shapes and angle counts. For
        ``dim="distance"`` each needs ``attrs["propagation_distance"]`` (m).
    dim : {"energy", "distance", None}
        None picks ``distance`` when every member has a distinct propagation
        distance, else ``energy``.
    angle_tolerance : float
        Largest allowed difference (deg) between members' angles; the first
        member's angles are used.

    Returns
    -------
    xarray.Dataset
        Energies sorted ascending; distances sorted ascending (holotomography
        layout ``(energy, distance, angle, y, x)``). Flats/darks are cut to the
        smallest count among members (recorded in provenance). Along energy,
        members whose pixel sizes differ (zone-plate magnification recorded
        per energy) give the coordinate ``pixel_size_energy`` (energy,) nm and
        ``attrs["pixel_size"]`` = the lowest energy's; equal sizes give the
        attribute only. Along distance, every member's pixel size is kept in
        ``attrs["distance_pixel_sizes"]`` (cone-beam magnification differs
        per distance), ``attrs["pixel_size"]`` = the nearest distance's.
    """
    source = os.fspath(source) if source is not None else _source(series[0])
    dim = _auto_dim(series, source) if dim is None else dim
    if dim not in ("energy", "distance"):
        raise ValueError(f"read_series: dim must be 'energy' or 'distance'; got {dim!r}")
    angles = _common_angles(series, angle_tolerance)
    if dim == "energy":
        energies = np.concatenate([ds["energy"].values for ds in series])
        order = np.argsort(energies, kind="stable")
        if np.unique(energies).size != energies.size:
            fail(source, "energy", "distinct energies across files", energies.tolist())
        reference, per_energy = split_pixel_sizes(
            np.concatenate([_member_pixel_sizes(ds) for ds in series])[order])
        take = (lambda arr: arr[order]) if np.any(order != np.arange(order.size)) else (lambda a: a)
        proj = take(_join([ds["projections"].data for ds in series], 0, new=False))
        extra = {}
        for name in ("flats", "darks"):
            arrays, _ = _refs(series, name, 1)
            if arrays is not None:
                extra[name] = take(_join(arrays, 0, new=False))
        kwargs = {"energies": energies[order], "pixel_sizes": per_energy}
        attrs = {}
    else:
        with_coord = [ds for ds in series if PIXEL_SIZE_ENERGY in ds.coords]
        if with_coord:
            fail(_source(with_coord[0]), PIXEL_SIZE_ENERGY, "absent for dim='distance' "
                 "(per-energy pixel sizes across distances are not supported)", "present")
        distances = [ds.attrs.get("propagation_distance") for ds in series]
        if any(d is None for d in distances):
            fail(_source(series[distances.index(None)]), "propagation_distance",
                 "present (m); pass values=[...] to read_series")
        distances = np.asarray(distances, dtype=float)
        order = np.argsort(distances, kind="stable")
        series = [series[i] for i in order]
        energies = series[0]["energy"].values
        for ds in series[1:]:
            if not np.allclose(ds["energy"].values, energies):
                fail(_source(ds), "energy", f"{energies.tolist()} eV like the other distances",
                     ds["energy"].values.tolist())
        proj = _join([ds["projections"].data for ds in series], 1, new=True)
        extra = {}
        for name in ("flats", "darks"):
            arrays, _ = _refs(series, name, 1)
            if arrays is not None:
                extra[name] = _join(arrays, 1, new=True)
        kwargs = {"energies": energies, "distances": distances[order]}
        # Each distance has its own (cone-beam) magnification, so differing pixel
        # sizes are physical here: keep every one, the reference is the nearest's.
        pixel_sizes = [float(ds.attrs["pixel_size"]) for ds in series]
        attrs = {"distance_pixel_sizes": pixel_sizes}
        reference = pixel_sizes[0]
    attrs["source_files"] = [_source(ds) for ds in series]
    try:
        out = tilt_series(proj, angles=angles, pixel_size=reference, attrs=attrs,
                          where=source, **kwargs, **extra)
    except ValidationError as exc:
        raise type(exc)(str(exc)) from None
    history = [entry for ds in series for entry in provenance(ds)]
    out.attrs["provenance"] = json.dumps(history)
    counts = {name: int(out[name].shape[-3]) for name in ("flats", "darks") if name in out}
    return add_provenance(out, "io.read_series", inputs=attrs["source_files"], dim=dim,
                          angle_tolerance=angle_tolerance, reference_counts=counts)


def read_series(paths, *, dim: str = "energy", values=None, engine: str | None = None,
                angle_tolerance: float = 0.1, **overrides):
    """Read several files (one per energy or per distance) into one tilt series.

    Parameters
    ----------
    paths : sequence of path-like
        One file per energy (``dim="energy"``) or per propagation distance.
    dim : {"energy", "distance"}
    values : sequence of float, optional
        Per-file energies in eV (passed to each reader as ``energy=``) or
        distances in m; default: read from the files.
    engine : str, optional
        Force a reader (``"dxchange"``, ``"nxtomo"``, ``"xradia"``, ``"tiff"``,
        ``"fxi"``); default: detect per file.
    angle_tolerance : float
        Largest allowed angle difference between files, deg.
    **overrides
        Passed to every reader (e.g. ``pixel_size=``, ``lazy=``).

    Returns
    -------
    xarray.Dataset
        ``(energy, angle, y, x)`` or ``(energy, distance, angle, y, x)``.
        Files at different energies may have different pixel sizes (the
        optics' magnification changes with energy): they are kept as the
        coordinate ``pixel_size_energy`` (see :func:`combine`).
    """
    from ._read import read

    paths = list(paths)
    if not paths:
        raise ValueError("read_series: paths must name at least one file; got none")
    if values is not None and len(values) != len(paths):
        raise ValueError(f"read_series: values must have one entry per path ({len(paths)}); "
                         f"got {len(values)}")
    if dim not in ("energy", "distance"):
        raise ValueError(f"read_series: dim must be 'energy' or 'distance'; got {dim!r}")
    series = []
    for i, path in enumerate(paths):
        kw = dict(overrides)
        if values is not None and dim == "energy":
            kw["energy"] = float(values[i])
        ds = read(path, engine=engine, **kw)
        if values is not None and dim == "distance":
            ds.attrs["propagation_distance"] = float(values[i])
        series.append(ds)
    return combine(series, dim=dim, source=paths[0], angle_tolerance=angle_tolerance)
