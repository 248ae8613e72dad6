"""One round-trip base for every format: write known content, read it back."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from _writers import (make_truth, write_dxchange, write_fxi, write_nxtomo, write_tiff_folder,
                      write_tiff_multipage, write_xradia)

import spectrotomo.io as sio
from spectrotomo import provenance, validate_tilt_series
from spectrotomo.io import _common

N_ANGLES = 11  # > 10 so file names proj_10 vs proj_2 test natural ordering


def _truth(**kw):
    return make_truth(n_angles=N_ANGLES, **kw)


# Each case: writer -> (path, expected truth, expected flats/darks, engine, direct reader).
def _dxchange(tmp_path):
    t = _truth()
    return write_dxchange(tmp_path / "scan.h5", t), t, "dxchange", sio.read_dxchange


def _dxchange_axes_rad(tmp_path):
    t = _truth(seed=1)
    path = write_dxchange(tmp_path / "scan.hdf", t, axes="y:theta:x", theta_rad=True,
                          energy_units="keV")
    return path, t, "dxchange", sio.read_dxchange


def _nxtomo_esrf(tmp_path):
    t = _truth(seed=2)
    return write_nxtomo(tmp_path / "scan.nx", t, layout="esrf"), t, "nxtomo", sio.read_nxtomo


def _nxtomo_dls(tmp_path):
    t = _truth(seed=3)
    path = write_nxtomo(tmp_path / "scan.nxs", t, layout="dls", energy_kev=False)
    return path, t, "nxtomo", sio.read_nxtomo


def _fxi(tmp_path):
    t = _truth(seed=4)
    return write_fxi(tmp_path / "fly_scan_id_1.h5", t), t, "fxi", sio.read_fxi


def _xradia_uint16(tmp_path):
    t = _truth(seed=5, n_flats=1, n_darks=0)
    t["flats"] = t["flats"].astype("<f4")
    return write_xradia(tmp_path / "tomo.txrm", t), t, "xradia", sio.read_xradia


def _xradia_float32(tmp_path):
    t = _truth(seed=6, n_flats=1, n_darks=0, dtype="<f4")
    return write_xradia(tmp_path / "tomo.bin", t), t, "xradia", sio.read_xradia


def _tiff_multipage(tmp_path):
    t = _truth(seed=7)
    return write_tiff_multipage(tmp_path / "stack.tif", t), t, "tiff", sio.read_tiff_stack


def _tiff_multipage_toml(tmp_path):
    t = _truth(seed=8)
    path = write_tiff_multipage(tmp_path / "stack.tiff", t, toml=True)
    return path, t, "tiff", sio.read_tiff_stack


def _tiff_folder(tmp_path):
    t = _truth(seed=9)
    return write_tiff_folder(tmp_path / "scan", t), t, "tiff", sio.read_tiff_stack


CASES = [_dxchange, _dxchange_axes_rad, _nxtomo_esrf, _nxtomo_dls, _fxi, _xradia_uint16,
         _xradia_float32, _tiff_multipage, _tiff_multipage_toml, _tiff_folder]


@pytest.fixture(params=CASES, ids=lambda f: f.__name__.strip("_"))
def written(request, tmp_path):
    return request.param(tmp_path)


def _check(ds, t, path):
    validate_tilt_series(ds)
    assert ds["projections"].dims == ("energy", "angle", "y", "x")
    np.testing.assert_array_equal(ds["projections"].values[0], t["projections"])
    assert ds["projections"].dtype == t["projections"].dtype
    np.testing.assert_allclose(ds["angle"].values, t["angles"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds["energy"].values, [t["energy"]], rtol=1e-12)
    np.testing.assert_allclose(ds.attrs["pixel_size"], t["pixel_size"], rtol=1e-12)
    for name in ("flats", "darks"):
        if len(t[name]):
            np.testing.assert_array_equal(ds[name].values[0], t[name])
        else:
            assert name not in ds
    entry = provenance(ds)[-1]
    assert entry["step"].startswith("io.read_")
    assert str(path) in entry["inputs"]


class TestRoundTrip:
    """The shared base: every format must pass every test here."""

    def test_read_detects_format_and_round_trips(self, written):
        path, t, engine, _ = written
        assert sio._read.guess_engine(path) == engine
        _check(sio.read(path), t, path)

    def test_direct_reader_equals_read(self, written):
        path, t, _, reader = written
        _check(reader(path), t, path)

    def test_lazy_is_dask_chunked_along_angle_and_exact(self, written, monkeypatch):
        path, t, _, reader = written
        frame = t["projections"][0].nbytes
        monkeypatch.setattr(_common, "CHUNK_BYTES", 3 * frame)
        ds = reader(path, lazy=True)
        data = ds["projections"].data
        assert type(data).__module__.startswith("dask")
        assert data.chunks[1][0] == 3 and len(data.chunks[1]) == -(-N_ANGLES // 3)
        assert data.chunks[2:] == ((t["projections"].shape[1],), (t["projections"].shape[2],))
        pickle.loads(pickle.dumps(data))  # graph holds no open file handle
        _check(ds.compute(), t, path)

    def test_auto_lazy_threshold(self, written, monkeypatch):
        path, t, _, reader = written
        monkeypatch.setattr(_common, "LAZY_BYTES", t["projections"].nbytes - 1)
        assert type(reader(path)["projections"].data).__module__.startswith("dask")
        monkeypatch.setattr(_common, "LAZY_BYTES", t["projections"].nbytes + 1)
        assert isinstance(reader(path)["projections"].data, np.ndarray)

    def test_overrides_win_and_are_recorded(self, written):
        path, t, _, reader = written
        angles = np.arange(N_ANGLES, dtype=float)
        ds = reader(path, energy=640.5, pixel_size=9.0, angles=angles)
        np.testing.assert_array_equal(ds["angle"].values, angles)
        assert ds["energy"].values.tolist() == [640.5]
        assert ds.attrs["pixel_size"] == 9.0
        assert provenance(ds)[-1]["parameters"]["pixel_size"] == 9.0

    def test_wrong_angle_override_count_names_field(self, written):
        path, _, _, reader = written
        with pytest.raises(sio.ReaderError, match=rf"{path.name}.*angle.*{N_ANGLES}"):
            reader(path, angles=[0.0, 1.0])


def test_unknown_format_names_file(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("not a tilt series")
    with pytest.raises(sio.ReaderError, match=r"notes\.h5.*signature"):
        sio.read(path)


def test_hdf5_of_unknown_layout_names_file(tmp_path):
    import h5py

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as fh:
        fh["something"] = np.zeros(3)
    with pytest.raises(sio.ReaderError, match=r"other\.h5.*HDF5 layout"):
        sio.read(path)


def test_read_rejects_unknown_engine(tmp_path):
    path = write_fxi(tmp_path / "a.h5", _truth())
    with pytest.raises(ValueError, match="engine"):
        sio.read(path, engine="nope")


def test_sidecar_is_data_not_code(tmp_path):
    t = _truth()
    path = write_tiff_multipage(tmp_path / "s.tif", t)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["pixel_size"] = "__import__('os').getcwd()"
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(sio.ReaderError, match="pixel_size"):
        sio.read(path)


def test_lazy_reads_only_the_frames_computed(tmp_path, monkeypatch):
    t = _truth()
    path = write_dxchange(tmp_path / "big.h5", t)
    seen = []
    original = _common.H5Frames._read

    def spy(self, indices):
        seen.append((self.name, indices.tolist()))
        return original(self, indices)

    monkeypatch.setattr(_common.H5Frames, "_read", spy)
    monkeypatch.setattr(_common, "CHUNK_BYTES", 2 * t["projections"][0].nbytes)
    ds = sio.read(path, lazy=True)
    assert seen == []  # opening reads metadata only
    part = ds["projections"].isel(energy=0, angle=slice(4, 6)).values
    np.testing.assert_array_equal(part, t["projections"][4:6])
    assert seen == [("exchange/data", [4, 5])]  # only the chunk holding angles 4..5


def test_lazy_selections_of_one_dataset_do_not_collide(tmp_path):
    # Two frame selections of one dataset that differ only in the middle (their
    # summarised reprs agree) must get different dask names, or dask would mix them up.
    t = make_truth(n_angles=2100, ny=2, nx=3)
    t["angles"] = np.linspace(-60, 60, 2100)
    path = write_dxchange(tmp_path / "long.h5", t)
    a = np.arange(2000)
    b = a.copy()
    b[1000] = 2050
    assert repr(a) == repr(b)
    lazy = [_common.as_array(_common.H5Frames(path, "exchange/data", f), lazy=True, token="t")
            for f in (a, b)]
    assert lazy[0].name != lazy[1].name
    np.testing.assert_array_equal(lazy[1][1000].compute(), t["projections"][2050])
