"""Reader-level sanity: radian-like angles without units, empty or missing
references, NaN/Inf counts."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile
from _writers import make_truth, write_dxchange, write_fxi, write_nxtomo, write_tiff_folder

import spectrotomo.io as sio
from spectrotomo import provenance

RADIANS = np.linspace(-1.13, 1.13, 5)  # -65..+65 deg written in radians


def test_sidecar_angles_in_radians_without_units_are_refused(tmp_path):
    folder = write_tiff_folder(tmp_path / "scan", make_truth())
    meta = json.loads((folder / "metadata.json").read_text())
    meta["angles"] = RADIANS.tolist()
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(sio.ReaderError, match=r"metadata\.json.*'angles'.*within \+-2 pi.*"
                                              r"radians.*angle_units = \"deg\" or \"rad\""):
        sio.read(folder)
    meta["angle_units"] = "rad"
    (folder / "metadata.json").write_text(json.dumps(meta))
    np.testing.assert_allclose(sio.read(folder)["angle"].values, np.rad2deg(RADIANS))
    meta["angle_units"] = "deg"  # declared: a small wedge in degrees is the user's call
    (folder / "metadata.json").write_text(json.dumps(meta))
    np.testing.assert_allclose(sio.read(folder)["angle"].values, RADIANS)


def test_hdf5_angles_without_a_units_attribute(tmp_path):
    t = make_truth()
    dx = write_dxchange(tmp_path / "dx.h5", t, theta=RADIANS)
    nx = write_nxtomo(tmp_path / "nx.nx", t)
    fxi = write_fxi(tmp_path / "fxi.h5", t)
    with h5py.File(dx, "a") as fh:
        del fh["exchange/theta"].attrs["units"]
    with h5py.File(nx, "a") as fh:
        rot = fh["entry0000/sample/rotation_angle"]
        rot[...] = np.where(rot[()] == 0, 0, np.deg2rad(rot[()]))
        del rot.attrs["units"]
    with h5py.File(fxi, "a") as fh:
        fh["angle"][...] = RADIANS
    for path, field in ((dx, "exchange/theta"), (nx, "entry0000/sample/rotation_angle"),
                        (fxi, "angle")):
        with pytest.raises(sio.ReaderError, match=rf"{path.name}.*{field}.*radians.*units "
                                                  r"attribute"):
            sio.read(path)
        assert sio.read(path, angles=t["angles"]).sizes["angle"] == 5  # the override is degrees


def test_one_angle_needs_no_unit(tmp_path):
    t = make_truth(n_angles=1)
    t["angles"] = np.array([0.5])
    path = write_dxchange(tmp_path / "one.h5", t)
    with h5py.File(path, "a") as fh:
        del fh["exchange/theta"].attrs["units"]
    assert sio.read(path)["angle"].values.tolist() == [0.5]


@pytest.mark.parametrize("field", ["exchange/data_white", "exchange/data_dark"])
def test_empty_reference_stack_names_the_field(tmp_path, field):
    path = write_dxchange(tmp_path / "e.h5", make_truth())
    with h5py.File(path, "a") as fh:
        del fh[field]
        fh.create_dataset(field, shape=(0, 6, 7), dtype="<u2")
    with pytest.raises(sio.ReaderError, match=rf"e\.h5.*{field}.*at least one frame.*0 frames"):
        sio.read(path)


def test_missing_flats_named_when_required(tmp_path):
    t = make_truth()
    dx = write_dxchange(tmp_path / "noflat.h5", t)
    with h5py.File(dx, "a") as fh:
        del fh["exchange/data_white"]
    assert "flats" not in sio.read(dx)  # reading alone is fine (e.g. normalized data)
    with pytest.raises(sio.ReaderError, match=r"noflat\.h5.*exchange/data_white.*flat-field"):
        sio.read(dx, require_flats=True)
    nx = write_nxtomo(tmp_path / "noflat.nx", t)
    with h5py.File(nx, "a") as fh:  # the flat frames marked invalid: no key 1 left
        keys = fh["entry0000/instrument/detector/image_key_control"]
        keys[...] = np.where(keys[()] == 1, 3, keys[()])
    with pytest.raises(sio.ReaderError, match=r"noflat\.nx.*image_key_control \(no frame with "
                                              r"key 1\).*flat-field"):
        sio.read_series([nx], require_flats=True)


def test_nonfinite_counts_are_counted(tmp_path):
    t = make_truth(dtype="<f4")
    t["projections"][1, 2, 3] = np.nan
    t["projections"][4, 0, :2] = np.inf
    t["flats"][0, 0, 0] = -np.inf
    path = write_dxchange(tmp_path / "nan.h5", t)
    ds = sio.read(path)
    assert ds.attrs["nonfinite_counts"] == {"projections": 3, "flats": 1, "darks": 0}
    assert provenance(ds)[-1]["parameters"]["nonfinite_counts"]["projections"] == 3
    assert sio.read(path, lazy=True).attrs["nonfinite_counts"]["projections"] is None
    other = write_dxchange(tmp_path / "b.h5", {**t, "energy": 9000.0})
    both = sio.read_series([path, other])
    assert both.attrs["nonfinite_counts"] == {"projections": 6, "flats": 2, "darks": 0}
    ints = write_dxchange(tmp_path / "int.h5", make_truth())
    assert sio.read(ints, lazy=True).attrs["nonfinite_counts"]["projections"] == 0


def test_tiff_energy_scan_without_angles_is_one_angle(tmp_path):
    t = make_truth(n_angles=3)
    tifffile.imwrite(tmp_path / "x.tif", t["projections"], photometric="minisblack")
    (tmp_path / "x.json").write_text(json.dumps({"energies": [640, 650, 660], "pixel_size": 10}))
    ds = sio.read(tmp_path / "x.tif")
    assert ds["projections"].shape == (3, 1, 6, 7) and ds["angle"].values.tolist() == [0.0]
