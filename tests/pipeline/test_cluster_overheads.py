"""What a chunk step on a cluster pays besides its tasks: the workers' first-task warm-up
(started at connect, ``pipeline._warm``) and quantify's group counts (summed from the
tasks, not read back from the store)."""

import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

from spectrotomo import io
from spectrotomo.pipeline import run_pipeline
from spectrotomo.pipeline._config import config_from_dict
from spectrotomo.pipeline.steps import quantify as quantify_step

_FRESH = """
import sys
import xraydb.xray
from spectrotomo.pipeline._warm import warm_first_calls, warm_worker
watched = ("zarr", "numcodecs", "pint")  # the pipeline package itself imports none
before = [m in sys.modules for m in watched], xraydb.xray._xraydb is not None
imported = warm_worker()
warm_first_calls()
after = [m in sys.modules for m in watched], xraydb.xray._xraydb is not None
print(before, after, all(m in sys.modules for m in imported), len(imported) >= 5)
"""


def test_warm_worker_pays_the_first_task_costs_in_a_fresh_process():
    """A fresh process (a new worker) lacks zarr, its codecs, pint and xraydb's open
    tables; warm_worker and warm_first_calls load every one (and each module
    warm_worker reports)."""
    out = subprocess.run([sys.executable, "-c", _FRESH], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ("([False, False, False], False) ([True, True, True], True) True True"), out


def _config(store, **compute):
    return config_from_dict({"input": {"path": "simulate:tiny"}, "output": {"store": str(store)},
                             "preprocess": {"align": False},
                             "reconstruct": {"chunk_rows": 8}, "compute": compute})


def test_open_client_warms_every_worker_once():
    """open_client starts both warm tasks pinned to each worker, the first calls at a
    lower priority, and holds them while the client is open."""
    from distributed import Future

    from spectrotomo.pipeline._compute import open_client

    cfg = _config("unused.zarr", cluster="local", n_workers=2, memory_limit_gb=1.0)
    with open_client(cfg.compute, log=lambda m: None) as client:
        keys = []
        for _ in range(600):  # the submissions reach the scheduler on their own stream
            keys = client.run_on_scheduler(lambda dask_scheduler: sorted(
                (str(k), ts.priority[0]) for k, ts in dask_scheduler.tasks.items()
                if str(k).startswith("warm_")))
            if len(keys) >= 4:
                break
            time.sleep(0.1)
        futures = [Future(k, client=client) for k, _ in keys]
        results = client.gather(futures)  # waits for all
        ran_on = client.who_has(futures)
        workers = set(client.scheduler_info()["workers"])
    assert [(k.split("-")[0], p) for k, p in keys] == [("warm_first_calls", 1)] * 2 + [
        ("warm_worker", 0)] * 2  # dask's priority: lower runs first
    assert sorted(w for ws in ran_on.values() for w in ws) == sorted(list(workers) * 2)
    assert all("spectrotomo.pipeline.steps.quantify" in r for r in results[2:])


def _slab_maps(rng, nz):
    valid = rng.random((3, nz, 4, 5)) > 0.3
    ratio = rng.random((nz, 4, 5)).astype(np.float32)
    ratio[rng.random((nz, 4, 5)) > 0.8] = np.nan
    return xr.Dataset({"valid": (("element", "z", "y", "x"), valid),
                       "tm_o_ratio": (("z", "y", "x"), ratio)},
                      coords={"element": ["O", "Mn", "Ni"]})


def test_slab_counts_add_up_to_the_whole_volume_counts():
    rng = np.random.default_rng(3)
    slabs = [_slab_maps(rng, nz) for nz in (4, 4, 2)]
    whole = xr.concat(slabs, dim="z")
    counts = quantify_step._summed_counts([quantify_step._slab_counts(s) for s in slabs])
    masked = (~whole["valid"]).sum(("z", "y", "x"))
    assert counts["n_masked"] == {el: int(masked.sel(element=el)) for el in ("O", "Mn", "Ni")}
    assert list(counts["n_masked"]) == ["O", "Mn", "Ni"]  # the repr keeps the element order
    assert counts["tm_o_ratio_n_masked"] == int(whole["tm_o_ratio"].isnull().sum())
    assert counts["tm_o_ratio_n_masked"] > 0 and min(counts["n_masked"].values()) > 0


@pytest.fixture(scope="module")
def reconstructed(tmp_path_factory):
    root = tmp_path_factory.mktemp("overheads")
    base = root / "base.zarr"
    run_pipeline(_config(base), steps=["acquire", "preprocess", "reconstruct"],
                 log=lambda m: None)
    return root, base


def _reads_of_chemistry(monkeypatch) -> list:
    seen, real = [], quantify_step.io.read_group

    def spy(store, group, *args, **kwargs):
        seen.append(group)
        return real(store, group, *args, **kwargs)

    monkeypatch.setattr(quantify_step.io, "read_group", spy)
    return seen


def test_quantify_counts_come_from_the_tasks_unless_resumed(reconstructed, monkeypatch):
    """A fresh quantify sums its tasks' counts (no read of the whole chemistry group);
    a resumed one, whose earlier slabs returned nothing here, reads them from the
    store; both give the attrs of the whole volume's element maps."""
    root, base = reconstructed
    fresh = root / "fresh.zarr"
    shutil.copytree(base, fresh)
    seen = _reads_of_chemistry(monkeypatch)
    run_pipeline(_config(fresh), steps=["quantify"], log=lambda m: None)
    assert "chemistry" not in seen
    chem = io.read_group(fresh, "chemistry")
    mu = io.read_group(fresh, "recon")["mu"].load()
    params = __import__("json").loads(chem.attrs["provenance"])[-1]["parameters"]
    whole = quantify_step._element_maps(mu, {el: tuple(p) for el, p in params["pairs"].items()},
                                        {el: tuple(t) for el, t in params["tied"].items()})
    assert chem.attrs["n_masked"] == whole.attrs["n_masked"]
    assert chem.attrs["tm_o_ratio_n_masked"] == whole.attrs["tm_o_ratio_n_masked"]

    resumed = root / "resumed.zarr"
    shutil.copytree(fresh, resumed)
    io._markers.set_marker(resumed, "chemistry", state="writing")  # as if killed
    next(io._markers.done_dir(resumed, "chemistry", "tm_o_ratio").iterdir()).unlink()
    seen.clear()
    run_pipeline(_config(resumed), steps=["quantify"], log=lambda m: None)
    assert "chemistry" in seen
    again = io.read_group(resumed, "chemistry")
    for key in ("n_masked", "tm_o_ratio_n_masked"):
        assert again.attrs[key] == chem.attrs[key]
