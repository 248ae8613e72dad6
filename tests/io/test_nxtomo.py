"""NXtomo specifics: image keys, layouts, several entries, bad files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from _writers import make_truth, write_nxtomo

import spectrotomo.io as sio
from spectrotomo import provenance, validate_tilt_series


def test_invalid_and_alignment_frames_are_skipped(tmp_path):
    t = make_truth()
    ds = sio.read(write_nxtomo(tmp_path / "a.nx", t))
    assert ds.sizes["angle"] == len(t["angles"])
    assert not np.any(ds["projections"].values == 7)  # the junk frames' value
    assert provenance(ds)[-1]["parameters"]["skipped_frames"] == 2
    # flats are split around the projections in the file: both parts kept in order
    np.testing.assert_array_equal(ds["flats"].values[0], t["flats"])


def test_energy_without_units_is_kev(tmp_path):
    t = make_truth()
    path = write_nxtomo(tmp_path / "a.nx", t)
    with h5py.File(path, "a") as fh:
        del fh["entry0000/instrument/beam/incident_energy"].attrs["units"]
    assert sio.read(path)["energy"].values.tolist() == [t["energy"]]


def test_several_entries_at_several_energies(tmp_path):
    ts = [make_truth(energy=e, seed=i) for i, e in enumerate((660.0, 640.0, 650.0))]
    path = write_nxtomo(tmp_path / "scan.nx", None,
                        entries=[(f"entry{i:04d}", t, {}) for i, t in enumerate(ts)])
    ds = sio.read(path)
    validate_tilt_series(ds)
    np.testing.assert_array_equal(ds["energy"].values, [640.0, 650.0, 660.0])
    for k, i in enumerate((1, 2, 0)):
        np.testing.assert_array_equal(ds["projections"].values[k], ts[i]["projections"])
        np.testing.assert_array_equal(ds["darks"].values[k], ts[i]["darks"])
    one = sio.read(path, entry="entry0002")
    np.testing.assert_array_equal(one["projections"].values[0], ts[2]["projections"])


def test_entries_at_several_energies_keep_their_pixel_sizes(tmp_path):
    ts = [make_truth(energy=e, seed=i, pixel_size=px)
          for i, (e, px) in enumerate(((660.0, 15.75), (640.0, 15.5)))]
    path = write_nxtomo(tmp_path / "scan.nx", None,
                        entries=[(f"entry{i:04d}", t, {}) for i, t in enumerate(ts)])
    ds = sio.read(path)
    np.testing.assert_allclose(ds["pixel_size_energy"].values, [15.5, 15.75], rtol=1e-12)


def test_several_entries_at_several_distances(tmp_path):
    ts = [make_truth(seed=i) for i in range(3)]
    distances = (0.030, 0.010, 0.020)  # m; written in mm
    path = write_nxtomo(tmp_path / "holo.nx", None, entries=[
        (f"entry{i:04d}", t, {"distance": d}) for i, (t, d) in enumerate(zip(ts, distances))])
    ds = sio.read(path, lazy=True)
    validate_tilt_series(ds)
    assert ds["projections"].dims == ("energy", "distance", "angle", "y", "x")
    np.testing.assert_allclose(ds["distance"].values, [0.010, 0.020, 0.030], rtol=1e-12)
    assert ds["distance"].attrs["units"] == "m"
    for k, i in enumerate((1, 2, 0)):
        np.testing.assert_array_equal(ds["projections"].values[0, k], ts[i]["projections"])
        np.testing.assert_array_equal(ds["flats"].values[0, k], ts[i]["flats"])


def test_missing_entry_is_named(tmp_path):
    path = write_nxtomo(tmp_path / "a.nx", make_truth())
    with pytest.raises(sio.ReaderError, match=r"a\.nx.*entry0007"):
        sio.read(path, entry="entry0007")


def test_rotation_angle_count_mismatch(tmp_path):
    t = make_truth()
    path = write_nxtomo(tmp_path / "bad.nx", t, rotation=np.zeros(4))
    with pytest.raises(sio.ReaderError, match=r"bad\.nx.*entry0000/sample/rotation_angle.*got 4"):
        sio.read(path)


def test_image_key_count_mismatch(tmp_path):
    path = write_nxtomo(tmp_path / "bad.nx", make_truth())
    with h5py.File(path, "a") as fh:
        del fh["entry0000/instrument/detector/image_key_control"]
        del fh["entry0000/instrument/detector/image_key"]
        fh["entry0000/instrument/detector/image_key"] = np.zeros(3, np.int32)
    with pytest.raises(sio.ReaderError, match=r"bad\.nx.*image_key.*one key per frame"):
        sio.read(path)


def test_unknown_image_key(tmp_path):
    path = write_nxtomo(tmp_path / "bad.nx", make_truth())
    with h5py.File(path, "a") as fh:
        fh["entry0000/instrument/detector/image_key_control"][0] = 9
    with pytest.raises(sio.ReaderError, match=r"image_key_control.*\[9\]"):
        sio.read(path)


def test_missing_energy(tmp_path):
    path = write_nxtomo(tmp_path / "noe.nx", make_truth(), with_energy=False)
    with pytest.raises(sio.ReaderError,
                       match=r"noe\.nx.*entry0000/instrument/beam/incident_energy.*missing"):
        sio.read(path)
    assert sio.read(path, energy=700.0)["energy"].values.tolist() == [700.0]


def test_missing_data(tmp_path):
    path = write_nxtomo(tmp_path / "nodata.nx", make_truth())
    with h5py.File(path, "a") as fh:
        del fh["entry0000/instrument/detector/data"]
    with pytest.raises(sio.ReaderError, match=r"nodata\.nx.*entry0000/instrument/detector/data"):
        sio.read_nxtomo(path)
