"""Data Exchange HDF5 (APS): ``/exchange/data``, ``data_white``, ``data_dark``, ``theta``.

Spec facts honoured here: ``theta`` is in degrees unless its ``units``
attribute says otherwise (without one, angles that all lie within +-2 pi are
refused as likely radians); energy without a ``units`` attribute is in joules
(the spec's SI default); lengths without units are in metres. The sample-plane
pixel size is ``detector/actual_pixel_size_x`` (or the objective's
``resolution``); else the camera's ``detector/pixel_size`` divided by
``objective/magnification``; a camera pixel alone is refused. The optional
``axes`` attribute (e.g. ``"y:theta:x"``) names the stored axis order.

Files written by APS's own tools (``dxfile.dxtomo`` ``Entry`` objects,
``dxchange.write_dxf``; ``tests/io/test_peer_dxchange.py`` rebuilds their
layouts): string attributes may be ``str``, ``bytes`` or one-element string
arrays; an energy that is no photon energy once converted (1 eV - 10 MeV; e.g.
eV stored without units, read as joules) and a sample-plane pixel size outside
0.1 nm - 1 mm (e.g. um without units, read as metres) are refused naming the
field, the stored value and its unit; a file without several of theta, energy
and pixel size (``write_dxf`` writes ``/exchange/data`` only) names them all.
"""

from __future__ import annotations

import os

from ._common import (PHOTON_RANGE_EV, H5Frames, ReaderError, as_array, attr_text,
                      check_quantity, fail, finish, h5_angles, h5_quantity, is_hdf5, open_h5,
                      pick, sample_pixel_size, single_energy)

__all__ = ["DXchangeBackend", "read_dxchange"]

ENERGY_PATHS = (
    "measurement/instrument/monochromator/energy",
    "measurement/instrument/source/energy",
    "measurement/instrument/energy",
)
#: Sample-plane pixel sizes.
PIXEL_PATHS = (
    "measurement/instrument/detector/actual_pixel_size_x",
    "measurement/instrument/detector/x_actual_pixel_size",
    "measurement/instrument/detection_system/objective/resolution",
)
#: The camera's pixel and the magnification onto it (used when no sample size is stored).
DETECTOR_PIXEL_PATHS = (
    "measurement/instrument/detector/pixel_size",
    "measurement/instrument/detector/pixel_size_x",
    "measurement/instrument/detector/x_pixel_size",
)
MAGNIFICATION_PATHS = (
    "measurement/instrument/detection_system/objective/magnification",
    "measurement/instrument/objective/magnification",
    "measurement/instrument/detector/magnification",
)
_AXIS_NAMES = {"theta": "angle", "angle": "angle", "phi": "angle", "y": "y", "x": "x"}


def _axes_order(path, dset) -> tuple[int, int, int]:
    """Permutation turning the stored order into (theta, y, x)."""
    axes = attr_text(dset.attrs.get("axes"))  # each dataset carries its own order
    if axes is None:
        return (0, 1, 2)
    # The spec labels reference stacks "theta_flat:y:x" / "theta_dark:y:x".
    names = [_AXIS_NAMES.get(a.strip().lower().split("_")[0]) for a in str(axes).split(":")]
    if sorted(map(str, names)) != ["angle", "x", "y"]:
        fail(path, f"{dset.name}.attrs['axes']", "a permutation of 'theta:y:x'", repr(axes))
    return tuple(names.index(n) for n in ("angle", "y", "x"))


def _stack(path, fh, name: str, *, lazy, required: bool):
    if name not in fh:
        if required:
            fail(path, name, "a 3-D dataset (frames, y, x)")
        return None
    source = H5Frames(path, name, order=_axes_order(path, fh[name]))
    return as_array(source, lazy=lazy, token="dxchange")


def _energy(path, fh):
    """The file's photon energy in eV (None when no energy field is stored).

    Without a ``units`` attribute the value is in joules (the spec's default);
    a value that is then no photon energy (an eV or keV number without units)
    is refused naming the field rather than read as ~1e21 eV.
    """
    for name in ENERGY_PATHS:
        if name in fh:
            values = h5_quantity(path, fh[name], "energy", default_units="J", field=name)
            energy = single_energy(path, name, values)
            return check_quantity(path, fh[name], name, energy, default_units="J",
                                  limits=PHOTON_RANGE_EV, target="eV",
                                  what="a photon energy",
                                  how="add or correct its units attribute ('eV', 'keV'; "
                                  "none means J) or pass energy=... in eV ([input] energies_ev)")
    return None


def _missing_metadata(path, fh, *, energy, pixel_size, angles) -> None:
    """Name every missing field at once when more than one is missing (a file
    holding ``/exchange/data`` only, as ``dxchange.write_dxf`` writes it); one
    missing field is named where it is read."""
    missing = []
    if angles is None and "exchange/theta" not in fh:
        missing.append(("exchange/theta", "angles=... in deg"))
    if energy is None and not any(name in fh for name in ENERGY_PATHS):
        missing.append((ENERGY_PATHS[0], "energy=... in eV ([input] energies_ev)"))
    if pixel_size is None and not any(name in fh for name in
                                      (*PIXEL_PATHS, *DETECTOR_PIXEL_PATHS)):
        missing.append((PIXEL_PATHS[0], "pixel_size=... in nm ([input] pixel_size_nm)"))
    if len(missing) > 1:
        raise ReaderError(f"{os.fspath(path)}: fields "
                          + ", ".join(repr(name) for name, _ in missing)
                          + " must be present, or passed as "
                          + ", ".join(how for _, how in missing) + "; got missing")


def read_dxchange(path, *, energy: float | None = None, pixel_size: float | None = None,
                  angles=None, lazy: bool | None = None):
    """Read a Data Exchange HDF5 file into a tilt series.

    Parameters
    ----------
    path : str or path-like
        HDF5 file with ``/exchange/data`` shaped (n_angles, ny, nx) (or the
        order in its ``axes`` attribute) and optional ``data_white`` /
        ``data_dark`` (n_frames, ny, nx).
    energy : float, optional
        Photon energy in eV; overrides ``/measurement/instrument/monochromator/energy``.
    pixel_size : float, optional
        Sample-plane pixel size in nm; overrides the file.
    angles : sequence of float, optional
        Angles in degrees; overrides ``/exchange/theta``.
    lazy : bool, optional
        True: dask arrays chunked along angle; False: numpy; None: dask above
        256 MiB.

    Returns
    -------
    xarray.Dataset
        Tilt series (1, n_angles, ny, nx) with flats/darks as stored.
    """
    with open_h5(path) as fh:
        if "exchange/data" not in fh:
            fail(path, "exchange/data", "a 3-D dataset (theta, y, x)")
        _missing_metadata(path, fh, energy=energy, pixel_size=pixel_size, angles=angles)
        proj = _stack(path, fh, "exchange/data", lazy=lazy, required=True)
        flats = _stack(path, fh, "exchange/data_white", lazy=lazy, required=False)
        darks = _stack(path, fh, "exchange/data_dark", lazy=lazy, required=False)
        theta = (h5_angles(path, fh["exchange/theta"], field="exchange/theta")
                 if "exchange/theta" in fh and angles is None else None)
        file_energy = _energy(path, fh) if energy is None else None
        if pixel_size is None:
            pixel_size = sample_pixel_size(path, fh, sample=PIXEL_PATHS,
                                           detector=DETECTOR_PIXEL_PATHS,
                                           magnification=MAGNIFICATION_PATHS)
    theta = pick(path, "exchange/theta", theta, angles, what="degrees")
    energy = pick(path, ENERGY_PATHS[0], file_energy if energy is None else energy, None,
                  what="energy with a units attribute")
    return finish(path, angle_field="exchange/theta", reader="dxchange", projections=proj,
                  angles=theta,
                  energies=[energy], pixel_size=pixel_size, flats=flats, darks=darks,
                  ref_fields={"flats": "exchange/data_white", "darks": "exchange/data_dark"},
                  params={"energy": energy, "pixel_size": pixel_size,
                          "angles_override": angles is not None, "lazy": lazy})


class DXchangeBackend:
    """Reader backend for Data Exchange HDF5 files (has ``/exchange/data``)."""

    name = "dxchange"

    def can_open(self, path) -> bool:
        if not is_hdf5(path):
            return False
        try:
            with open_h5(path) as fh:
                return "exchange/data" in fh
        except ValueError:
            return False

    def open(self, path, **overrides):
        return read_dxchange(path, **overrides)
