"""Data Exchange specifics: units, axes, damaged and incomplete files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from _writers import make_truth, write_dxchange

import spectrotomo.io as sio


def test_energy_units(tmp_path):
    t = make_truth(energy=640.0)
    for units in (None, "keV", "eV"):
        path = write_dxchange(tmp_path / f"e_{units}.h5", t, energy_units=units)
        np.testing.assert_allclose(sio.read(path)["energy"].values, [640.0], rtol=1e-12)


def test_unknown_energy_unit(tmp_path):
    path = write_dxchange(tmp_path / "u.h5", make_truth(), energy_units="eV")
    with h5py.File(path, "a") as fh:
        fh["measurement/instrument/monochromator/energy"].attrs["units"] = "furlong"
    with pytest.raises(sio.ReaderError, match=r"u\.h5.*monochromator/energy.*units.*furlong"):
        sio.read(path)


def test_bad_axes_attribute(tmp_path):
    path = write_dxchange(tmp_path / "ax.h5", make_truth(), axes="theta:z:x")
    with pytest.raises(sio.ReaderError, match=r"ax\.h5.*exchange/data.*axes.*theta:y:x"):
        sio.read(path)


def test_truncated_file(tmp_path):
    path = write_dxchange(tmp_path / "cut.h5", make_truth())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(sio.ReaderError, match=r"cut\.h5.*HDF5.*unreadable"):
        sio.read(path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "junk.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(sio.ReaderError, match=r"junk\.h5.*HDF5"):
        sio.read(path)


@pytest.mark.parametrize("field", ["exchange/data", "exchange/theta"])
def test_missing_dataset(tmp_path, field):
    path = write_dxchange(tmp_path / "m.h5", make_truth())
    with h5py.File(path, "a") as fh:
        del fh[field]
    with pytest.raises(sio.ReaderError, match=rf"m\.h5.*{field}.*missing"):
        sio.read_dxchange(path)


def test_theta_count_differs_from_frames(tmp_path):
    t = make_truth()
    path = write_dxchange(tmp_path / "th.h5", t, theta=t["angles"][:-1])
    with pytest.raises(sio.ReaderError, match=r"th\.h5.*exchange/theta.*\(5\).*got 4"):
        sio.read(path)


def test_energy_missing(tmp_path):
    path = write_dxchange(tmp_path / "ne.h5", make_truth(), with_energy=False)
    with pytest.raises(sio.ReaderError, match=r"ne\.h5.*monochromator/energy.*missing"):
        sio.read(path)
