"""Sample-plane pixel sizes: detector size + magnification (DX, NXtomo), OME-TIFF
and ImageJ physical sizes, and refusals when only the camera's pixel is known."""

from __future__ import annotations

import json

import h5py
import pytest
import tifffile
from _writers import CAMERA_PIXEL_M, make_truth, write_dxchange, write_nxtomo

import spectrotomo.io as sio

SAMPLE_PX = "measurement/instrument/detector/actual_pixel_size_x"


def _dx_detector_only(tmp_path, *, magnification=None, name="d.h5"):
    t = make_truth(pixel_size=15.625)
    path = write_dxchange(tmp_path / name, t)
    with h5py.File(path, "a") as fh:
        del fh[SAMPLE_PX]
        px = fh.create_dataset("measurement/instrument/detector/pixel_size", data=6.5)
        px.attrs["units"] = "um"
        if magnification is not None:
            fh["measurement/instrument/objective/magnification"] = magnification
    return path


def test_dxchange_detector_pixel_divided_by_the_magnification(tmp_path):
    path = _dx_detector_only(tmp_path, magnification=416.0)
    assert sio.read(path).attrs["pixel_size"] == pytest.approx(6500.0 / 416.0, rel=1e-12)


def test_dxchange_detector_pixel_alone_is_refused(tmp_path):
    path = _dx_detector_only(tmp_path)
    with pytest.raises(sio.ReaderError, match=r"d\.h5.*actual_pixel_size_x.*detector/pixel_size"
                                              r" = 6500 nm.*objective/magnification.*pixel_size="):
        sio.read(path)
    assert sio.read(path, pixel_size=15.0).attrs["pixel_size"] == 15.0


def test_dxchange_bad_magnification(tmp_path):
    path = _dx_detector_only(tmp_path, magnification=0.0)
    with pytest.raises(sio.ReaderError, match=r"objective/magnification.*positive.*got 0"):
        sio.read(path)


def test_nxtomo_sample_pixel_size_wins_over_the_camera_pixel(tmp_path):
    ds = sio.read(write_nxtomo(tmp_path / "a.nx", make_truth(pixel_size=15.625)))
    assert ds.attrs["pixel_size"] == pytest.approx(15.625, rel=1e-12)  # not 6500 nm


def test_nxtomo_camera_pixel_and_magnification(tmp_path):
    t = make_truth(pixel_size=15.625)
    ds = sio.read(write_nxtomo(tmp_path / "m.nx", t, pixel="magnification"))
    assert ds.attrs["pixel_size"] == pytest.approx(15.625, rel=1e-12)


def test_nxtomo_camera_pixel_alone_is_refused(tmp_path):
    path = write_nxtomo(tmp_path / "cam.nx", make_truth(), pixel="detector")
    camera_nm = CAMERA_PIXEL_M * 1e9
    with pytest.raises(sio.ReaderError, match=rf"cam\.nx.*entry0000/sample/x_pixel_size.*"
                                              rf"x_pixel_size = {camera_nm:g} nm.*magnification"):
        sio.read(path)


def test_ome_tiff_physical_size_without_sidecar_size(tmp_path):
    t = make_truth(n_angles=3)
    tifffile.imwrite(tmp_path / "o.ome.tif", t["projections"], photometric="minisblack",
                     metadata={"axes": "ZYX", "PhysicalSizeX": 0.0125, "PhysicalSizeXUnit": "µm"})
    (tmp_path / "o.ome.json").write_text(json.dumps({"angles": [-60, 0, 60], "energy": 700}))
    ds = sio.read(tmp_path / "o.ome.tif")
    assert ds.attrs["pixel_size"] == pytest.approx(12.5, rel=1e-12)
    assert sio.tiff_pixel_size(tmp_path / "o.ome.tif") == pytest.approx(12.5, rel=1e-12)


def test_imagej_resolution_and_unit_and_the_sidecar_winning(tmp_path):
    t = make_truth(n_angles=3)
    tifffile.imwrite(tmp_path / "ij.tif", t["projections"], imagej=True,
                     resolution=(1 / 0.02, 1 / 0.02), metadata={"unit": "um", "axes": "ZYX"})
    side = {"angles": [-60, 0, 60], "energy": 700}
    (tmp_path / "ij.json").write_text(json.dumps(side))
    assert sio.read(tmp_path / "ij.tif").attrs["pixel_size"] == pytest.approx(20.0, rel=1e-6)
    (tmp_path / "ij.json").write_text(json.dumps({**side, "pixel_size": 9.0}))
    assert sio.read(tmp_path / "ij.tif").attrs["pixel_size"] == 9.0  # the sidecar says otherwise


def test_plain_tiff_without_any_size_names_the_field(tmp_path):
    tifffile.imwrite(tmp_path / "p.tif", make_truth(n_angles=3)["projections"],
                     photometric="minisblack")
    (tmp_path / "p.json").write_text(json.dumps({"angles": [-60, 0, 60], "energy": 700}))
    with pytest.raises(sio.ReaderError, match=r"p\.json.*pixel_size.*OME PhysicalSizeX"):
        sio.read(tmp_path / "p.tif")
