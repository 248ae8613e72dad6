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

__all__ = ["combine"]


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


def _check_frames(series) -> None:
    """Every member's frames have the first member's (y, x) shape."""
    shape = series[0]["projections"].shape[-2:]
    for ds in series[1:]:
        if ds["projections"].shape[-2:] != shape:
            fail(_source(ds), "projections", f"frames of {tuple(shape)} pixels like "
                 f"{_source(series[0])}", tuple(ds["projections"].shape[-2:]))


def _same_angles(series, tolerance: float):
    ref = series[0]["angle"].values
    for ds in series[1:]:
        angles = ds["angle"].values
        if angles.size != ref.size:
            fail(_source(ds), "angles", f"{ref.size} angles like {_source(series[0])} "
                 "(angles='common' keeps the angles every file has)", angles.size)
        worst = float(np.max(np.abs(angles - ref)))
        if worst > tolerance:
            fail(_source(ds), "angles", f"within {tolerance} deg of {_source(series[0])} "
                 "(angle_tolerance)", f"a deviation of {worst:.4g} deg")
    return ref, [None] * len(series)


def _shared_angles(series, tolerance: float):
    """The first member's angles that every member has (within ``tolerance``), and
    each member's frame indices of them."""
    ref = series[0]["angle"].values
    keep = np.ones(ref.size, bool)
    nearest = []
    for ds in series:
        angles = ds["angle"].values
        idx = np.abs(angles[None, :] - ref[:, None]).argmin(axis=1)
        keep &= np.abs(angles[idx] - ref) <= tolerance
        nearest.append(idx)
    if keep.sum() < 1:
        fail(_source(series[0]), "angles", f"angles shared by every file (within "
             f"{tolerance} deg)", "none in common")
    picks = [idx[keep] for idx in nearest]
    for ds, idx in zip(series, picks):
        if np.unique(idx).size != idx.size:
            fail(_source(ds), "angles", f"one frame per angle within {tolerance} deg",
                 "several frames matching one angle of the first file")
    return ref[keep], picks


def _refs(series, name: str, frame_axis: int):
    present = [name in ds for ds in series]
    if not any(present):
        return None, None
    if not all(present):
        missing = series[present.index(False)]
        fail(_source(missing), missing.attrs.get(f"{name}_field", name),
             f"{name} present like in {_source(series[present.index(True)])}")
    n = min(ds[name].shape[frame_axis] for ds in series)
    sl = [slice(None)] * series[0][name].ndim
    sl[frame_axis] = slice(0, n)
    return [ds[name].data[tuple(sl)] for ds in series], n


def _distinct_energies(series, source) -> np.ndarray:
    energies = np.concatenate([ds["energy"].values for ds in series])
    owners = [_source(ds) for ds in series for _ in range(ds.sizes["energy"])]
    values, first, counts = np.unique(energies, return_index=True, return_counts=True)
    if np.any(counts > 1):
        e = values[counts > 1][0]
        files = sorted({owners[i] for i in np.flatnonzero(energies == e)})
        fail(files[-1] if len(files) > 1 else source, "energy",
             "distinct energies across files (one file per energy)",
             f"{e} eV also in {files[0]}" if len(files) > 1 else f"{e} eV twice")
    return energies


def _nonfinite_total(series) -> dict:
    """Members' NaN/Inf counts summed per array (None where any member was not counted)."""
    total: dict = {}
    for ds in series:
        for name, n in dict(ds.attrs.get("nonfinite_counts", {})).items():
            prev = total.get(name, 0)
            total[name] = None if prev is None or n is None else prev + n
    return total


def _member_pixel_sizes(ds) -> np.ndarray:
    """Pixel size of each of a member's energies, nm (its coordinate, else its attribute)."""
    per_energy = energy_pixel_sizes(ds)
    if per_energy is not None:
        return per_energy
    return np.full(ds.sizes["energy"], float(ds.attrs["pixel_size"]))


def _frames(ds, picks):
    """A member's projections, at the frames ``picks`` (angle axis) when given."""
    data = ds["projections"].data
    return data if picks is None else data[..., picks, :, :]


def _along_energy(series, picks, source):
    energies = _distinct_energies(series, source)
    order = np.argsort(energies, kind="stable")
    reference, per_energy = split_pixel_sizes(
        np.concatenate([_member_pixel_sizes(ds) for ds in series])[order])
    take = (lambda arr: arr[order]) if np.any(order != np.arange(order.size)) else (lambda a: a)
    proj = take(_join([_frames(ds, p) for ds, p in zip(series, picks)], 0, new=False))
    extra = {}
    for name in ("flats", "darks"):
        arrays, _ = _refs(series, name, 1)
        if arrays is not None:
            extra[name] = take(_join(arrays, 0, new=False))
    kwargs = {"energies": energies[order], "pixel_sizes": per_energy}
    return series, proj, extra, kwargs, reference, {}


def _along_distance(series, picks):
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
    series, picks = [series[i] for i in order], [picks[i] for i in order]
    energies = series[0]["energy"].values
    for ds in series[1:]:
        if not np.allclose(ds["energy"].values, energies):
            fail(_source(ds), "energy", f"{energies.tolist()} eV like the other distances",
                 ds["energy"].values.tolist())
    proj = _join([_frames(ds, p) for ds, p in zip(series, picks)], 1, new=True)
    extra = {}
    for name in ("flats", "darks"):
        arrays, _ = _refs(series, name, 1)
        if arrays is not None:
            extra[name] = _join(arrays, 1, new=True)
    # Each distance has its own (cone-beam) magnification, so differing pixel
    # sizes are physical here: keep every one, the reference is the nearest's.
    pixel_sizes = [float(ds.attrs["pixel_size"]) for ds in series]
    kwargs = {"energies": energies, "distances": distances[order]}
    return series, proj, extra, kwargs, pixel_sizes[0], {"distance_pixel_sizes": pixel_sizes}


def combine(series: Sequence, *, dim: str | None = "energy", source=None,
            angle_tolerance: float = 0.1, angles: str = "same"):
    """Combine tilt series along ``energy`` or ``distance`` into one.

    Parameters
    ----------
    series : sequence of xarray.Dataset
        Tilt series with equal frame shapes. For ``dim="distance"`` each
        needs ``attrs["propagation_distance"]`` (m).
    dim : {"energy", "distance", None}
        None picks ``distance`` when every member has a distinct propagation
        distance, else ``energy``.
    angle_tolerance : float
        Largest allowed difference (deg) between members' angles; the first
        member's angles are used.
    angles : {"same", "common"}
        ``"same"``: every member has the first member's angles (count and
        values within ``angle_tolerance``), else a ReaderError naming the
        file. ``"common"``: keep the first member's angles that every member
        has within ``angle_tolerance`` (files whose scans differ in range or
        lost frames); the frames dropped per file are recorded in provenance.

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
        ``attrs["nonfinite_counts"]`` sums the members' NaN/Inf counts.
    """
    source = os.fspath(source) if source is not None else _source(series[0])
    dim = _auto_dim(series, source) if dim is None else dim
    if dim not in ("energy", "distance"):
        raise ValueError(f"read_series: dim must be 'energy' or 'distance'; got {dim!r}")
    if angles not in ("same", "common"):
        raise ValueError(f"read_series: angles must be 'same' or 'common'; got {angles!r}")
    _check_frames(series)
    shared, picks = (_same_angles if angles == "same" else _shared_angles)(series,
                                                                          angle_tolerance)
    series, proj, extra, kwargs, reference, attrs = (_along_energy(series, picks, source)
                                                     if dim == "energy" else
                                                     _along_distance(series, picks))
    attrs.update({"source_files": [_source(ds) for ds in series],
                  "flats_field": series[0].attrs.get("flats_field", "flats"),
                  "nonfinite_counts": _nonfinite_total(series)})
    try:
        out = tilt_series(proj, angles=shared, pixel_size=reference, attrs=attrs,
                          where=source, **kwargs, **extra)
    except ValidationError as exc:
        raise type(exc)(str(exc)) from None
    history = [entry for ds in series for entry in provenance(ds)]
    out.attrs["provenance"] = json.dumps(history)
    counts = {name: int(out[name].shape[-3]) for name in ("flats", "darks") if name in out}
    dropped = {_source(ds): int(ds.sizes["angle"] - shared.size) for ds in series}
    return add_provenance(out, "io.read_series", inputs=attrs["source_files"], dim=dim,
                          angle_tolerance=angle_tolerance, angles=angles,
                          reference_counts=counts, dropped_angles=dropped)
