"""FXI specifics: keV energy, pixel size as text or number, missing fields."""

from __future__ import annotations

import h5py
import pytest
from _writers import make_truth, write_fxi

import spectrotomo.io as sio


def test_numeric_pixel_size_is_nm(tmp_path):
    t = make_truth(pixel_size=21.5)
    ds = sio.read(write_fxi(tmp_path / "f.h5", t, pixel_text=False))
    assert ds.attrs["pixel_size"] == 21.5


def test_pixel_size_text_with_units(tmp_path):
    path = write_fxi(tmp_path / "f.h5", make_truth())
    with h5py.File(path, "a") as fh:
        del fh["Pixel Size"]
        fh["Pixel Size"] = "0.0215 um"
    assert sio.read(path).attrs["pixel_size"] == pytest.approx(21.5, rel=1e-12)


@pytest.mark.parametrize("field", ["img_tomo", "angle", "Pixel Size"])
def test_missing_field(tmp_path, field):
    path = write_fxi(tmp_path / "f.h5", make_truth())
    with h5py.File(path, "a") as fh:
        del fh[field]
    with pytest.raises(sio.ReaderError, match=rf"f\.h5.*{field}.*missing"):
        sio.read_fxi(path)


def test_energy_missing(tmp_path):
    path = write_fxi(tmp_path / "f.h5", make_truth(), with_energy=False)
    with pytest.raises(sio.ReaderError, match=r"f\.h5.*X_eng.*missing"):
        sio.read(path)
