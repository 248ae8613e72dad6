"""FXI-style flat HDF5 (NSLS-II 18-ID): ``/img_tomo``, ``/img_bkg``, ``/img_dark``,
``/angle`` (deg), ``/X_eng`` (keV), optional ``/Pixel Size``.

Units: ``X_eng`` is keV unless it carries a ``units`` attribute; ``angle`` is
degrees; ``Pixel Size`` is nm as a number, or a string with a unit (``"21.6nm"``).
"""

from __future__ import annotations

import numpy as np

from ._common import (H5Frames, as_array, fail, finish, h5_angles, h5_quantity, is_hdf5,
                      open_h5, parse_quantity, pick, single_energy)

__all__ = ["FXIBackend", "read_fxi"]


def _pixel_size(path, fh):
    for name in ("Pixel Size", "pixel_size", "Pixel_Size"):
        if name not in fh:
            continue
        value = fh[name][()]
        if isinstance(value, np.ndarray) and value.dtype.kind in "SOU":
            value = value.ravel()[0]
        if isinstance(value, (bytes, str)):
            return parse_quantity(value, "length", default_units="nm", path=path, field=name)
        return float(h5_quantity(path, fh[name], "length", default_units="nm", field=name)[0])
    return None


def read_fxi(path, *, energy: float | None = None, pixel_size: float | None = None,
             angles=None, lazy: bool | None = None):
    """Read an FXI tomography HDF5 file into a tilt series.

    Parameters
    ----------
    path : str or path-like
        HDF5 with ``/img_tomo`` (n_angles, ny, nx), optional ``/img_bkg``
        (flats) and ``/img_dark`` (darks), ``/angle`` (deg) and ``/X_eng`` (keV).
    energy : float, optional
        Photon energy in eV; overrides ``/X_eng``.
    pixel_size : float, optional
        Pixel size in nm; overrides ``/Pixel Size``.
    angles : sequence of float, optional
        Angles in degrees; overrides ``/angle``.
    lazy : bool, optional
        True: dask arrays chunked along angle; None: dask above 256 MiB.

    Returns
    -------
    xarray.Dataset
        Tilt series (1, n_angles, ny, nx).
    """
    with open_h5(path) as fh:
        if "img_tomo" not in fh:
            fail(path, "img_tomo", "a 3-D dataset (angle, y, x)")
        arrays = {key: as_array(H5Frames(path, name), lazy=lazy, token="fxi")
                  if name in fh else None
                  for key, name in (("projections", "img_tomo"), ("flats", "img_bkg"),
                                    ("darks", "img_dark"))}
        theta = (h5_angles(path, fh["angle"], field="angle")
                 if "angle" in fh and angles is None else None)
        if energy is None and "X_eng" in fh:
            energy = single_energy(path, "X_eng", h5_quantity(
                path, fh["X_eng"], "energy", default_units="keV", field="X_eng"))
        if pixel_size is None:
            pixel_size = _pixel_size(path, fh)
    theta = pick(path, "angle", theta, angles, what="degrees")
    energy = pick(path, "X_eng", energy, None, what="keV")
    pixel_size = pick(path, "Pixel Size", pixel_size, None, what="nm")
    return finish(path, angle_field="angle", reader="fxi", projections=arrays["projections"],
                  angles=theta,
                  energies=[energy], pixel_size=pixel_size, flats=arrays["flats"],
                  darks=arrays["darks"], ref_fields={"flats": "img_bkg", "darks": "img_dark"},
                  params={"energy": energy, "pixel_size": pixel_size,
                          "angles_override": angles is not None, "lazy": lazy})


class FXIBackend:
    """Reader backend for FXI flat HDF5 files (``/img_tomo`` at the root)."""

    name = "fxi"

    def can_open(self, path) -> bool:
        if not is_hdf5(path):
            return False
        try:
            with open_h5(path) as fh:
                return "img_tomo" in fh
        except ValueError:
            return False

    def open(self, path, **overrides):
        return read_fxi(path, **overrides)
