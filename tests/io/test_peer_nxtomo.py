"""NXtomo files written by ESRF's own ``nxtomo`` library (the writer behind
nxtomomill, tomwer and nabu), not by this project's test writers: a real
experiment written one file per energy, its XANES scan as one file with one
entry per energy, and rotation angles given in radians (``nxtomo`` stores them
as degrees with a ``units`` attribute) must read back to the simulator's values
and run through the pipeline like the ``simulate:`` sample."""

from __future__ import annotations

import numpy as np
import pytest

nxtomo = pytest.importorskip("nxtomo")
pint = pytest.importorskip("pint")

from nxtomo.nxobject.nxdetector import ImageKey  # noqa: E402

from spectrotomo import io, simulate  # noqa: E402
from spectrotomo.pipeline import run_pipeline  # noqa: E402
from spectrotomo.pipeline._config import config_from_dict  # noqa: E402

UNITS = pint.get_application_registry()
CAMERA_PIXEL_M = 6.5e-6


def write_with_nxtomo(path, members, *, radians=False):
    """One NXtomo entry per member (dict of one energy's frames), darks then
    flats then projections, as an acquisition with ``image_key_control``."""
    for i, m in enumerate(members):
        n_d, n_f = len(m["darks"]), len(m["flats"])
        entry = nxtomo.NXtomo()
        det = entry.instrument.detector
        det.data = np.concatenate([m["darks"], m["flats"], m["projections"]])
        det.image_key_control = ([ImageKey.DARK_FIELD] * n_d + [ImageKey.FLAT_FIELD] * n_f
                                 + [ImageKey.PROJECTION] * len(m["projections"]))
        det.x_pixel_size = det.y_pixel_size = CAMERA_PIXEL_M * UNITS.m
        angles = np.concatenate([np.zeros(n_d + n_f), m["angles"]])
        entry.sample.rotation_angle = (np.deg2rad(angles) * UNITS.rad if radians
                                       else angles * UNITS.degree)
        entry.sample.x_pixel_size = entry.sample.y_pixel_size = m["pixel_size"] * UNITS.nm
        entry.instrument.beam.incident_energy = m["energy"] / 1e3 * UNITS.keV
        entry.save(str(path), data_path=f"entry{i:04d}", overwrite=i == 0)
    return str(path)


def _member(ds, e):
    return {"projections": ds["projections"].values[e], "flats": ds["flats"].values[e],
            "darks": ds["darks"].values[e], "angles": ds["angle"].values,
            "energy": float(ds["energy"].values[e]), "pixel_size": float(ds.attrs["pixel_size"])}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("peer-nxtomo")
    tree = simulate.sample("tiny")
    ts, xanes = tree["tilt_series"].to_dataset(), tree["xanes"].to_dataset()
    files = [write_with_nxtomo(root / f"tomo_{e}.nx", [_member(ts, e)], radians=e % 2 == 1)
             for e in range(ts.sizes["energy"])]
    scan = write_with_nxtomo(root / "xanes.nx",
                             [_member(xanes, e) for e in range(xanes.sizes["energy"])])
    return root, ts, xanes, files, scan


def test_files_per_energy_read_back_exactly(tiny):
    _, ts, _, files, _ = tiny
    ds = io.read_series(files[::-1])
    np.testing.assert_array_equal(ds["energy"].values, ts["energy"].values)
    np.testing.assert_allclose(ds["angle"].values, ts["angle"].values, atol=1e-9)
    for name in ("projections", "flats", "darks"):
        np.testing.assert_array_equal(ds[name].values, ts[name].values)
    assert ds.attrs["pixel_size"] == ts.attrs["pixel_size"]


def test_xanes_scan_entries_read_as_one_scan(tiny):
    _, _, xanes, _, scan = tiny
    ds = io.read_xanes([scan])
    np.testing.assert_array_equal(ds["energy"].values, xanes["energy"].values)
    np.testing.assert_array_equal(ds["projections"].values, xanes["projections"].values)


def test_pipeline_on_peer_files_equals_the_simulated_run(tiny, tmp_path):
    _, _, _, files, scan = tiny
    steps = ["acquire", "preprocess", "reconstruct", "quantify"]
    stores = {}
    for name, inputs in (("sim", {"path": "simulate:tiny"}),
                         ("peer", {"path": files, "xanes": scan})):
        store = tmp_path / f"{name}.zarr"
        cfg = config_from_dict({"input": inputs, "output": {"store": str(store),
                                                            "figures": False},
                                "preprocess": {"align": False}})
        run_pipeline(cfg, steps=steps, report_dir=tmp_path / name, log=lambda m: None)
        stores[name] = store
    for group in ("od", "recon", "chemistry"):
        sim, peer = (io.read_group(stores[k], group) for k in ("sim", "peer"))
        for var in sim.data_vars:
            np.testing.assert_array_equal(peer[var].values, sim[var].values,
                                          err_msg=f"{group}/{var}")
