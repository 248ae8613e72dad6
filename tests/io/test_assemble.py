"""read_series: several files -> one tilt series along energy or distance."""

from __future__ import annotations

import numpy as np
import pytest
from _writers import make_truth, write_dxchange, write_xradia

import spectrotomo.io as sio
from spectrotomo import energy_pixel_sizes, provenance, validate_tilt_series


def _dx(tmp_path, energies, **kw):
    ts, paths = [], []
    for i, e in enumerate(energies):
        t = make_truth(energy=e, seed=i, n_flats=2 + i)
        ts.append(t)
        paths.append(write_dxchange(tmp_path / f"e{i}.h5", t, **kw))
    return ts, paths


@pytest.mark.parametrize("lazy", [False, True])
def test_energies_sorted_and_references_cut_to_common_count(tmp_path, lazy):
    ts, paths = _dx(tmp_path, [660.0, 640.0, 650.0])
    ds = sio.read_series(paths, lazy=lazy)
    validate_tilt_series(ds)
    assert (type(ds["projections"].data).__module__.startswith("dask")) is lazy
    np.testing.assert_allclose(ds["energy"].values, [640.0, 650.0, 660.0], rtol=1e-12)
    for k, i in enumerate((1, 2, 0)):
        np.testing.assert_array_equal(ds["projections"].values[k], ts[i]["projections"])
        np.testing.assert_array_equal(ds["flats"].values[k], ts[i]["flats"][:2])
    steps = provenance(ds)
    assert [s["step"] for s in steps] == ["io.read_dxchange"] * 3 + ["io.read_series"]
    assert steps[-1]["inputs"] == [str(p) for p in paths]
    assert steps[-1]["parameters"]["reference_counts"] == {"flats": 2, "darks": 3}


def test_auto_lazy_decided_on_the_whole_series(tmp_path, monkeypatch):
    """lazy=None: each file is under the threshold, the series is not -> dask (the
    files were read whole one by one: 8 files of 131 x 512^2 held 1.23 GiB at once)."""
    from spectrotomo.io import _common, _series

    ts, paths = _dx(tmp_path, [640.0, 650.0, 660.0])
    one = ts[0]["projections"].nbytes
    monkeypatch.setattr(_common, "LAZY_BYTES", 2 * one)  # every file's reader: eager
    monkeypatch.setattr(_series, "LAZY_BYTES", 2 * one)  # the series of 3: lazy
    ds = sio.read_series(paths)
    assert type(ds["projections"].data).__module__.startswith("dask")
    np.testing.assert_array_equal(ds["projections"].values[1], ts[1]["projections"])
    monkeypatch.setattr(_series, "LAZY_BYTES", 10 * one)
    assert isinstance(sio.read_series(paths)["projections"].data, np.ndarray)


def test_values_supply_missing_energies(tmp_path):
    paths = []
    for i in range(2):
        t = make_truth(seed=i, n_flats=1, n_darks=0)
        t["flats"] = t["flats"].astype("<f4")
        paths.append(write_xradia(tmp_path / f"tomo{i}.txrm", t, energy_stream=False))
    ds = sio.read_series(paths, values=[850.0, 845.0])
    np.testing.assert_array_equal(ds["energy"].values, [845.0, 850.0])


def test_distances(tmp_path):
    ts, paths = _dx(tmp_path, [17000.0, 17000.0])
    ds = sio.read_series(paths, dim="distance", values=[0.02, 0.01])
    validate_tilt_series(ds)
    assert ds["projections"].dims == ("energy", "distance", "angle", "y", "x")
    np.testing.assert_array_equal(ds["distance"].values, [0.01, 0.02])
    np.testing.assert_array_equal(ds["projections"].values[0, 0], ts[1]["projections"])
    np.testing.assert_array_equal(ds["darks"].values[0, 1], ts[0]["darks"])


def test_distance_without_values_is_named(tmp_path):
    _, paths = _dx(tmp_path, [17000.0, 17000.0])
    with pytest.raises(sio.ReaderError, match=r"e0\.h5.*propagation_distance.*values"):
        sio.read_series(paths, dim="distance")


def test_angles_beyond_tolerance(tmp_path):
    t0, t1 = make_truth(energy=640.0), make_truth(energy=650.0)
    p0 = write_dxchange(tmp_path / "a.h5", t0)
    p1 = write_dxchange(tmp_path / "b.h5", t1, theta=t1["angles"] + 0.05)
    assert sio.read_series([p0, p1]).sizes["energy"] == 2  # within 0.1 deg
    p2 = write_dxchange(tmp_path / "c.h5", t1, theta=t1["angles"] + 0.5)
    with pytest.raises(sio.ReaderError, match=r"c\.h5.*angles.*0\.1 deg.*0\.5"):
        sio.read_series([p0, p2])


def test_duplicate_energies(tmp_path):
    _, paths = _dx(tmp_path, [640.0, 640.0])
    with pytest.raises(sio.ReaderError, match="energy.*distinct"):
        sio.read_series(paths)


def test_differing_pixel_sizes_along_energy_are_kept_per_energy(tmp_path):
    # zone-plate TXM: one file per energy, each with its own pixel size (magnification)
    sizes = {660.0: 15.75, 640.0: 15.5, 650.0: 15.625}
    paths = [write_dxchange(tmp_path / f"e{i}.h5", make_truth(energy=e, pixel_size=px, seed=i))
             for i, (e, px) in enumerate(sizes.items())]
    ds = sio.read_series(paths)
    validate_tilt_series(ds)
    coord = ds["pixel_size_energy"]
    assert coord.dims == ("energy",) and coord.attrs["units"] == "nm"
    np.testing.assert_allclose(coord.values, [15.5, 15.625, 15.75], rtol=1e-12)
    assert ds.attrs["pixel_size"] == pytest.approx(15.5, rel=1e-12)  # lowest energy's
    np.testing.assert_allclose(ds["x"].values[1], 15.5, rtol=1e-12)
    assert energy_pixel_sizes(ds[["projections"]]) is not None  # travels with the data


def test_equal_pixel_sizes_give_the_attribute_only(tmp_path):
    _, paths = _dx(tmp_path, [640.0, 650.0])
    ds = sio.read_series(paths)
    assert "pixel_size_energy" not in ds.coords and ds.attrs["pixel_size"] == 15.625


def test_xradia_file_per_energy_with_its_pixel_size(tmp_path):
    paths = []
    for i, (e, px) in enumerate(((8340.0, 31.25), (8350.0, 31.28125))):
        t = make_truth(energy=e, pixel_size=px, seed=i, n_flats=1, n_darks=0)
        t["flats"] = t["flats"].astype("<f4")
        paths.append(write_xradia(tmp_path / f"ang0_{int(e)}eV.xrm", t))
    ds = sio.read_series(paths)
    np.testing.assert_allclose(ds["pixel_size_energy"].values, [31.25, 31.28125], rtol=1e-6)


def test_differing_pixel_sizes_along_distance_stay_per_distance(tmp_path):
    # cone-beam holotomography: each distance has its own magnification (physical)
    paths = [write_dxchange(tmp_path / f"d{i}.h5", make_truth(energy=17000.0, pixel_size=px))
             for i, px in enumerate((31.25, 15.625))]
    ds = sio.read_series(paths, dim="distance", values=[0.02, 0.01])
    assert ds.attrs["distance_pixel_sizes"] == pytest.approx([15.625, 31.25])
    assert ds.attrs["pixel_size"] == pytest.approx(15.625)
    assert "pixel_size_energy" not in ds.coords


def test_bad_arguments(tmp_path):
    _, paths = _dx(tmp_path, [640.0, 650.0])
    with pytest.raises(ValueError, match="dim"):
        sio.read_series(paths, dim="time")
    with pytest.raises(ValueError, match="values"):
        sio.read_series(paths, values=[1.0])
    with pytest.raises(ValueError, match="angles"):
        sio.read_series(paths, angles="all")
    with pytest.raises(FileNotFoundError, match=r"nope\.h5"):
        sio.read_series([paths[0], tmp_path / "nope.h5"])
    with pytest.raises(FileNotFoundError, match=r"\*\.txrm.*matches no file"):
        sio.read_series(str(tmp_path / "*.txrm"))
