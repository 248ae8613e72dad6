"""TIFF stack specifics: sidecars, several energies, lists of files, bad stacks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from _writers import make_truth, write_tiff_folder

import spectrotomo.io as sio
from spectrotomo import validate_tilt_series


def test_several_energies_energy_major_and_sorted(tmp_path):
    t = make_truth(n_angles=3)
    frames = np.stack([t["projections"], t["projections"] + 1])  # (2 energies, 3 angles)
    tifffile.imwrite(tmp_path / "x.tif", frames.reshape(6, *frames.shape[2:]),
                     photometric="minisblack")
    tifffile.imwrite(tmp_path / "f.tif", t["flats"], photometric="minisblack")
    (tmp_path / "x.json").write_text(json.dumps({
        "angles": [-0.5, 0.0, 0.5], "angle_units": "rad", "energies": [660.0, 640.0],
        "pixel_size": 10.0, "flats": "f.tif"}))
    ds = sio.read(tmp_path / "x.tif")
    validate_tilt_series(ds)
    np.testing.assert_array_equal(ds["energy"].values, [640.0, 660.0])
    np.testing.assert_array_equal(ds["projections"].values, frames[::-1])
    np.testing.assert_allclose(ds["angle"].values, np.rad2deg([-0.5, 0.0, 0.5]), rtol=1e-12)
    np.testing.assert_array_equal(ds["flats"].values[1], t["flats"])  # shared by energies


def test_list_of_files_with_explicit_sidecar(tmp_path):
    t = make_truth(n_angles=3)
    files = []
    for i, frame in enumerate(t["projections"]):
        files.append(tmp_path / f"p{i}.tif")
        tifffile.imwrite(files[-1], frame, photometric="minisblack")
    side = tmp_path / "meta.toml"
    side.write_text('angles = [1.0, 2.0, 3.0]\nangle_units = "deg"\nenergy = 700\n'
                    'pixel_size = 12.5\n')
    ds = sio.read(files, sidecar=side)
    np.testing.assert_array_equal(ds["projections"].values[0], t["projections"])
    assert ds["angle"].values.tolist() == [1.0, 2.0, 3.0] and ds.attrs["pixel_size"] == 12.5


def test_missing_sidecar_names_the_field(tmp_path):
    tifffile.imwrite(tmp_path / "lonely.tif", make_truth()["projections"],
                     photometric="minisblack")
    with pytest.raises(sio.ReaderError, match=r"lonely\.tif.*energy.*sidecar"):
        sio.read(tmp_path / "lonely.tif")


def test_frame_count_differs_from_angle_count(tmp_path):
    folder = write_tiff_folder(tmp_path / "scan", make_truth())
    (folder / "proj_5.tif").write_bytes((folder / "proj_4.tif").read_bytes())
    with pytest.raises(sio.ReaderError, match=r"scan.*angles.*6 frames.*got 5"):
        sio.read(folder)


def test_frames_of_different_shapes(tmp_path):
    folder = write_tiff_folder(tmp_path / "scan", make_truth())
    tifffile.imwrite(folder / "proj_3.tif", np.zeros((2, 2), np.uint16), photometric="minisblack")
    with pytest.raises(sio.ReaderError, match=r"proj_3\.tif.*shape"):
        sio.read(folder)


def test_missing_energy(tmp_path):
    folder = write_tiff_folder(tmp_path / "scan", make_truth())
    meta = json.loads((folder / "metadata.json").read_text())
    del meta["energy"]
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(sio.ReaderError, match=r"metadata\.json.*energy.*missing"):
        sio.read(folder)


def _two_energy_stack(tmp_path, **meta):
    t = make_truth(n_angles=3)
    frames = np.concatenate([t["projections"], t["projections"] + 1])
    tifffile.imwrite(tmp_path / "x.tif", frames, photometric="minisblack")
    (tmp_path / "x.json").write_text(json.dumps({"angles": [0.0, 1.0, 2.0], "angle_units": "deg",
                                                 "energies": [660.0, 640.0], **meta}))
    return tmp_path / "x.tif"


def test_sidecar_pixel_sizes_per_energy_follow_the_energy_order(tmp_path):
    path = _two_energy_stack(tmp_path, pixel_sizes=[0.0101, 0.0100], pixel_size_units="um")
    ds = sio.read(path)
    validate_tilt_series(ds)
    np.testing.assert_allclose(ds["pixel_size_energy"].values, [10.0, 10.1], rtol=1e-12)
    assert ds.attrs["pixel_size"] == pytest.approx(10.0)
    assert "pixel_size_energy" not in sio.read(path, pixel_size=9.0).coords  # override wins


def test_sidecar_pixel_sizes_need_one_per_energy(tmp_path):
    path = _two_energy_stack(tmp_path, pixel_sizes=[10.0, 10.1, 10.2])
    with pytest.raises(sio.ReaderError, match=r"x\.json.*pixel_sizes.*one size per energy \(2\)"):
        sio.read(path)
