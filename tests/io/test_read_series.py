"""A real experiment as a set of files: the simulator's series written one file
per energy in a mix of formats (the project's test writers) reads back equal;
XANES energy scans read into the layout of ``raw_xanes``."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from _cfb import write_cfb
from _writers import (make_truth, write_dxchange, write_fxi, write_nxtomo, write_tiff_folder,
                      write_tiff_multipage, write_xradia, xradia_streams)

import spectrotomo.io as sio
from spectrotomo import simulate, validate_tilt_series


@pytest.fixture(scope="module")
def small():
    tree = simulate.sample("small")
    return tree["tilt_series"].to_dataset(), tree["xanes"].to_dataset()


def _member(ds, e):
    return {"projections": ds["projections"].values[e], "flats": ds["flats"].values[e],
            "darks": ds["darks"].values[e], "angles": ds["angle"].values,
            "energy": float(ds["energy"].values[e]), "pixel_size": float(ds.attrs["pixel_size"])}


# one writer per energy: every format that keeps flats and darks, in their own units
WRITERS = [
    lambda d, t: write_dxchange(d / "e0_dx.h5", t),  # energy in J
    lambda d, t: write_nxtomo(d / "e1.nx", t),  # keV, ESRF layout
    lambda d, t: write_fxi(d / "e2_fxi.h5", t),  # keV, "20.0nm" text
    lambda d, t: write_tiff_multipage(d / "e3.tif", t),  # sidecar keV and um
    lambda d, t: write_nxtomo(d / "e4.nxs", t, layout="dls", energy_kev=False),
    lambda d, t: write_dxchange(d / "e5_dx.hdf", t, axes="y:theta:x", energy_units="keV"),
    lambda d, t: write_tiff_folder(d / "e6", t),
    lambda d, t: write_dxchange(d / "e7_dx.h5", t, theta_rad=True, energy_units="eV"),
]


def _assert_same_series(got, want):
    validate_tilt_series(got)
    for name in ("projections", "flats", "darks"):
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(got[name].values, want[name].values)
    np.testing.assert_allclose(got["energy"].values, want["energy"].values, rtol=1e-12)
    np.testing.assert_allclose(got["angle"].values, want["angle"].values, rtol=0, atol=1e-9)
    assert got.attrs["pixel_size"] == pytest.approx(want.attrs["pixel_size"], rel=1e-12)
    assert ("pixel_size_energy" in got.coords) == ("pixel_size_energy" in want.coords)


def test_simulated_small_as_one_file_per_energy_in_mixed_formats(small, tmp_path):
    ts, _ = small
    order = [5, 2, 7, 0, 3, 6, 1, 4]  # files listed out of energy order
    paths = [WRITERS[k](tmp_path, _member(ts, e)) for k, e in enumerate(order)]
    ds = sio.read_series(paths, require_flats=True)
    _assert_same_series(ds, ts)
    assert sorted(ds.attrs["source_files"]) == sorted(str(p) for p in paths)


def test_glob_pattern_in_natural_order(small, tmp_path):
    ts, _ = small
    for e in (0, 1, 2):
        t = _member(ts, e)
        write_dxchange(tmp_path / f"scan_{[9, 10, 100][e]}.h5", t)
    ds = sio.read_series(str(tmp_path / "scan_*.h5"))
    _assert_same_series(ds, ts.isel(energy=[0, 1, 2]))
    assert [p.rsplit("/", 1)[-1] for p in ds.attrs["source_files"]] == [
        "scan_9.h5", "scan_10.h5", "scan_100.h5"]
    assert sio.expand_paths([tmp_path / "scan_10.h5", str(tmp_path / "scan_9*")]) == [
        str(tmp_path / "scan_10.h5"), str(tmp_path / "scan_9.h5")]


def test_angles_common_keeps_the_angles_every_file_has(tmp_path):
    a = make_truth(energy=640.0, n_angles=7)
    a["angles"] = np.arange(-3.0, 4.0) * 10
    b = make_truth(energy=650.0, n_angles=6, seed=1)
    b["angles"] = np.array([-30.0, -20.0, -10.0, 0.05, 20.0, 40.0])  # lost 10, range to 40
    pa, pb = write_dxchange(tmp_path / "a.h5", a), write_dxchange(tmp_path / "b.h5", b)
    with pytest.raises(sio.ReaderError, match=r"b\.h5.*angles.*7 angles like.*a\.h5.*"
                                              r"angles='common'.*got 6"):
        sio.read_series([pa, pb])
    ds = sio.read_series([pa, pb], angles="common")
    np.testing.assert_array_equal(ds["angle"].values, [-30.0, -20.0, -10.0, 0.0, 20.0])
    np.testing.assert_array_equal(ds["projections"].values[0], a["projections"][[0, 1, 2, 3, 5]])
    np.testing.assert_array_equal(ds["projections"].values[1], b["projections"][:5])
    dropped = ds.attrs["provenance"]
    assert '"dropped_angles"' in dropped and f'"{pa}": 2' in dropped and f'"{pb}": 1' in dropped


def test_inconsistent_files_are_named(tmp_path):
    a = write_dxchange(tmp_path / "a.h5", make_truth(energy=640.0))
    small_frames = write_dxchange(tmp_path / "b.h5", make_truth(energy=650.0, nx=5))
    with pytest.raises(sio.ReaderError, match=r"b\.h5.*projections.*\(6, 7\) pixels like.*"
                                              r"a\.h5.*got \(6, 5\)"):
        sio.read_series([a, small_frames])
    same = write_nxtomo(tmp_path / "c.nx", make_truth(energy=640.0))
    with pytest.raises(sio.ReaderError, match=r"c\.nx.*energy.*distinct.*640\.0 eV also in "
                                              r".*a\.h5"):
        sio.read_series([a, same])
    with h5py.File(a, "a") as fh:
        del fh["exchange/data_white"]
    with pytest.raises(sio.ReaderError, match=r"a\.h5.*exchange/data_white.*flats present"):
        sio.read_series([a, write_dxchange(tmp_path / "d.h5", make_truth(energy=660.0))])


# --------------------------------------------------------------------------- #
# XANES energy scans
# --------------------------------------------------------------------------- #
def test_xanes_as_nxtomo_entries_equals_the_simulated_scan(small, tmp_path):
    _, xanes = small
    entries = [(f"entry{e:04d}", _member(xanes, e), {}) for e in range(xanes.sizes["energy"])]
    path = write_nxtomo(tmp_path / "xanes.nx", None, entries=entries[::-1])
    ds = sio.read_xanes(path)
    _assert_same_series(ds, xanes)
    assert ds["projections"].dims == ("energy", "angle", "y", "x") and ds.sizes["angle"] == 1


def test_xanes_one_file_per_energy_by_glob(small, tmp_path):
    _, xanes = small
    for e in range(xanes.sizes["energy"]):
        t = _member(xanes, e)
        write_dxchange(tmp_path / f"xanes_{t['energy']:.1f}eV.h5", t)
    _assert_same_series(sio.read_xanes(str(tmp_path / "xanes_*eV.h5")), xanes)


def test_xanes_xradia_energy_scan_and_tiff_sidecar(tmp_path):
    t = make_truth(n_angles=4, n_flats=1, n_darks=0)
    t["flats"] = t["flats"].astype("<f4")
    t["angles"] = np.full(4, 12.0)
    t["energies"] = np.array([660.0, 640.0, 650.0, 645.0])
    ds = sio.read_xanes(write_xradia(tmp_path / "scan.xrm", t))
    assert ds["energy"].values.tolist() == [640.0, 645.0, 650.0, 660.0]
    assert ds["flats"].shape == (4, 1, 6, 7)
    tiff = write_tiff_multipage(tmp_path / "x.tif", {**t, "darks": make_truth()["darks"]})
    meta = json.loads(tiff.with_suffix(".json").read_text())
    del meta["angles"], meta["energy"]
    meta.update(energies=(t["energies"] / 1e3).tolist())  # energy_units "keV" applies
    tiff.with_suffix(".json").write_text(json.dumps(meta))
    ds = sio.read_xanes(tiff)
    np.testing.assert_allclose(ds["energy"].values, [640.0, 645.0, 650.0, 660.0], rtol=1e-12)
    np.testing.assert_array_equal(ds["projections"].values[:, 0],
                                  t["projections"][[1, 3, 2, 0]])


def test_xanes_refusals(tmp_path):
    tomo = write_dxchange(tmp_path / "tomo.h5", make_truth())
    with pytest.raises(sio.ReaderError, match=r"tomo\.h5.*one angle.*read_series.*5 angles"):
        sio.read_xanes(tomo)
    one = make_truth(n_angles=1)
    path = write_dxchange(tmp_path / "one.h5", one)
    with pytest.raises(sio.ReaderError, match=r"one\.h5.*at least two energies"):
        sio.read_xanes(path)
    t = make_truth(n_angles=3, n_flats=1, n_darks=0)
    t["flats"] = t["flats"].astype("<f4")
    t["angles"] = np.zeros(3)
    t["energies"] = np.array([640.0, 650.0, 660.0])
    streams = xradia_streams(t)
    del streams["ReferenceData/Image"]
    streams_path = tmp_path / "noref.xrm"
    write_cfb(streams_path, streams)
    with pytest.raises(sio.ReaderError, match=r"noref\.xrm.*ReferenceData/Image.*flat-field"):
        sio.read_xanes(streams_path)
    assert "flats" not in sio.read_xanes(streams_path, require_flats=False)
