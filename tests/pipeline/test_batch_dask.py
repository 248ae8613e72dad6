"""A batch on a dask cluster runs one scan per worker thread at a time.

Inside a distributed task a nested ``.compute()`` (xarray reading a store
lazily) would go back to the cluster and secede the task's thread, letting
the worker start the next scan beside it (measured before the fix: two scans
overlapping on one single-threaded worker). Scans therefore compute their
dask work locally.
"""

import pytest

from spectrotomo.pipeline import run_batch

MANIFEST = """
[[scan]]
label = "one"
input = "simulate:tiny"
[[scan]]
label = "two"
input = "simulate:tiny"
[scan.simulate]
seed = 1
"""


def _window(log_file):
    lines = log_file.read_text().splitlines()
    return lines[0].split()[0], lines[-1].split()[0]  # ISO times of first / last line


def test_one_scan_at_a_time_per_worker_thread(tmp_path):
    distributed = pytest.importorskip("distributed")
    (tmp_path / "run.toml").write_text("[output]\nfigures = false\n[preprocess]\nalign = false\n")
    (tmp_path / "batch.toml").write_text('config = "run.toml"\n' + MANIFEST)
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        result = run_batch(tmp_path / "batch.toml", out_dir=out, executor=client,
                           log=lambda m: None)
    assert not result["failed"]
    windows = sorted(_window(out / "logs" / f"{label}.log") for label in ("one", "two"))
    assert windows[0][1] <= windows[1][0], f"scans overlapped on one worker thread: {windows}"
