"""NXtomo (NeXus) HDF5: ESRF ``/entry0000`` and DLS ``/entry1/tomo_entry`` layouts.

Frames are split by ``image_key`` (0 projection, 1 flat, 2 dark, 3 invalid:
skipped); ESRF's ``image_key_control`` adds -1 (alignment: skipped) and wins
over ``image_key`` when present. Energy without a ``units`` attribute is taken
as keV (NeXus ``NX_ENERGY`` as written by nxtomomill); lengths as metres;
rotation angles as degrees, but angles without a ``units`` attribute that all
lie within +-2 pi are refused as likely radians. The pixel size is the
sample's (``sample/x_pixel_size``); the detector's ``x_pixel_size`` is the
camera pixel, used only divided by a recorded ``magnification``.
Several NXtomo entries in one file (several energies or propagation
distances) are assembled into one tilt series.
"""

from __future__ import annotations

import numpy as np

from ._assemble import combine
from ._common import (H5Frames, as_array, fail, finish, h5_angles, h5_quantity, is_hdf5,
                      open_h5, pick, sample_pixel_size, single_energy)

__all__ = ["NXtomoBackend", "read_nxtomo"]

DATA = ("instrument/detector/data", "data/data")
KEY = ("instrument/detector/image_key", "data/image_key")
KEY_CONTROL = ("instrument/detector/image_key_control", "data/image_key_control")
ANGLE = ("sample/rotation_angle", "data/rotation_angle")
#: Sample-plane pixel sizes (nxtomo >= 1.3 writes ``sample/x_pixel_size``).
PIXEL = ("sample/x_pixel_size", "instrument/detector/sample_x_pixel_size")
#: The camera's pixel (NeXus NXdetector ``x_pixel_size``), and the magnification
#: between sample and camera that turns it into a sample-plane size.
DETECTOR_PIXEL = ("instrument/detector/x_pixel_size",)
MAGNIFICATION = ("instrument/detector/magnification", "instrument/optics/magnification",
                 "instrument/detector/optics/magnification")
ENERGY = ("instrument/beam/incident_energy", "beam/incident_energy",
          "instrument/monochromator/energy", "instrument/source/energy")
DISTANCE = ("sample/propagation_distance", "instrument/detector/distance")


def _text(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _is_nxtomo(group) -> bool:
    import h5py

    if not isinstance(group, h5py.Group):
        return False
    definition = group.get("definition")
    if isinstance(definition, h5py.Dataset) and _text(definition[()]).lower() == "nxtomo":
        return True
    return any(k in group for k in KEY) and any(d in group for d in DATA)


def find_entries(fh) -> list[str]:
    """Names of NXtomo entries: top-level groups or one level down (DLS)."""
    entries = []
    for name in sorted(fh):
        group = fh[name]
        if _is_nxtomo(group):
            entries.append(name)
        elif hasattr(group, "keys"):
            entries += [f"{name}/{sub}" for sub in sorted(group) if _is_nxtomo(group[sub])]
    return entries


def _first(group, candidates):
    for name in candidates:
        if name in group:
            return name
    return None


def _quantity(path, group, entry, candidates, kind, default_units):
    name = _first(group, candidates)
    if name is None:
        return None
    return h5_quantity(path, group[name], kind, default_units=default_units,
                       field=f"{entry}/{name}")


def _split_keys(path, group, entry, n_frames):
    key_name = _first(group, KEY_CONTROL) or _first(group, KEY)
    if key_name is None:
        fail(path, f"{entry}/{KEY[0]}", "image keys (0 projection, 1 flat, 2 dark)")
    keys = np.asarray(group[key_name][()]).astype(np.int64).ravel()
    if keys.size != n_frames:
        fail(path, f"{entry}/{key_name}", f"one key per frame ({n_frames})", keys.size)
    unknown = np.setdiff1d(keys, [-1, 0, 1, 2, 3])
    if unknown.size:
        fail(path, f"{entry}/{key_name}", "in {-1, 0, 1, 2, 3}", unknown.tolist())
    return {k: np.flatnonzero(keys == code) for k, code in
            (("projections", 0), ("flats", 1), ("darks", 2))}


def _angles(path, group, entry, n_frames, proj_idx):
    name = _first(group, ANGLE)
    if name is None:
        return None
    values = h5_angles(path, group[name], field=f"{entry}/{name}")
    if values.size == n_frames:
        return values[proj_idx]
    if values.size == proj_idx.size:  # some writers store projection angles only
        return values
    fail(path, f"{entry}/{name}", f"one angle per frame ({n_frames}) or per projection "
         f"({proj_idx.size})", f"{values.size} angles")


def _read_entry(path, fh, entry, *, energy, pixel_size, angles, lazy):
    group = fh[entry]
    data_name = _first(group, DATA)
    if data_name is None:
        fail(path, f"{entry}/{DATA[0]}", "a 3-D dataset (frames, y, x)")
    full = f"{entry}/{data_name}"
    n_frames = group[data_name].shape[0] if group[data_name].ndim == 3 else -1
    if n_frames < 0:
        fail(path, full, "a 3-D dataset (frames, y, x)", group[data_name].shape)
    parts = _split_keys(path, group, entry, n_frames)
    key_field = _first(group, KEY_CONTROL) or _first(group, KEY)
    if parts["projections"].size == 0:
        fail(path, f"{entry}/{KEY[0]}", "at least one projection (key 0)", "none")
    arrays = {k: as_array(H5Frames(path, full, idx), lazy=lazy, token="nxtomo")
              if idx.size or k == "projections" else None for k, idx in parts.items()}
    theta = pick(path, f"{entry}/{ANGLE[0]}", None if angles is not None else
                 _angles(path, group, entry, n_frames, parts["projections"]), angles,
                 what="degrees")
    if energy is None:
        values = _quantity(path, group, entry, ENERGY, "energy", "keV")
        energy = None if values is None else single_energy(path, f"{entry}/{ENERGY[0]}", values)
    energy = pick(path, f"{entry}/{ENERGY[0]}", energy, None, what="incident energy")
    if pixel_size is None:
        pixel_size = sample_pixel_size(path, group, sample=PIXEL, detector=DETECTOR_PIXEL,
                                       magnification=MAGNIFICATION, prefix=f"{entry}/")
    distance = _quantity(path, group, entry, DISTANCE, "length", "m")
    attrs = {"nxtomo_entry": entry}
    if distance is not None:
        attrs["propagation_distance"] = float(distance[0]) * 1e-9  # nm -> m
    return finish(path, angle_field=f"{entry}/{ANGLE[0]}", reader="nxtomo",
                  projections=arrays["projections"], angles=theta,
                  energies=[energy], pixel_size=pixel_size, flats=arrays["flats"],
                  darks=arrays["darks"], attrs=attrs,
                  ref_fields={"flats": f"{entry}/{key_field} (no frame with key 1)",
                              "darks": f"{entry}/{key_field} (no frame with key 2)"},
                  params={"entry": entry, "energy": energy, "pixel_size": pixel_size,
                          "angles_override": angles is not None, "lazy": lazy,
                          "skipped_frames": int(n_frames - sum(v.size for v in parts.values()))})


def read_nxtomo(path, *, entry: str | None = None, energy: float | None = None,
                pixel_size: float | None = None, angles=None, lazy: bool | None = None):
    """Read an NXtomo file into a tilt series.

    Parameters
    ----------
    path : str or path-like
        NeXus HDF5 file with one or more NXtomo entries.
    entry : str, optional
        Entry to read (e.g. ``"entry0000"`` or ``"entry1/tomo_entry"``);
        default: every entry, assembled along energy or distance.
    energy : float, optional
        Photon energy in eV (overrides ``instrument/beam/incident_energy``).
    pixel_size : float, optional
        Sample-plane pixel size in nm (overrides ``sample/x_pixel_size``).
    angles : sequence of float, optional
        Projection angles in degrees (overrides ``sample/rotation_angle``).
    lazy : bool, optional
        True: dask arrays chunked along angle; None: dask above 256 MiB.

    Returns
    -------
    xarray.Dataset
        Tilt series (n_energies, n_angles, ny, nx), or (n_energies,
        n_distances, n_angles, ny, nx) when entries differ in distance.
    """
    with open_h5(path) as fh:
        entries = [entry] if entry is not None else find_entries(fh)
        if not entries:
            fail(path, "<NXtomo entry>", "a group with definition 'NXtomo'", "none")
        for name in entries:
            if name not in fh:
                fail(path, name, "an NXtomo entry", f"missing (entries: {find_entries(fh)})")
        series = [_read_entry(path, fh, name, energy=energy, pixel_size=pixel_size,
                              angles=angles, lazy=lazy) for name in entries]
    if len(series) == 1:
        return series[0]
    return combine(series, dim=None, source=path)


class NXtomoBackend:
    """Reader backend for NXtomo HDF5 files."""

    name = "nxtomo"

    def can_open(self, path) -> bool:
        if not is_hdf5(path):
            return False
        try:
            with open_h5(path) as fh:
                return bool(find_entries(fh))
        except ValueError:
            return False

    def open(self, path, **overrides):
        return read_nxtomo(path, **overrides)
