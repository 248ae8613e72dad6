"""A dask worker killed (SIGKILL) mid-reconstruct on a LocalCluster of two workers.

``spectrotomo reconstruct CONFIG --cluster local --n-workers 2`` on a store
whose acquire and preprocess are done (the tiny simulated input, 16 row-chunk
tasks); once some chunk tasks have written their chunks, one worker process
is killed while the others run:

- with dask's default ``allowed-failures`` the lost task is retried on the
  other (or the restarted) worker and the run completes;
- with ``allowed-failures = 0`` the task is given up at once: the run must
  stop with one clear line (no traceback), leave ``recon`` unfinished, and
  the same command again must complete.

Either way the reconstruction must equal, bit for bit, one made in this
process without a cluster (``threads_per_worker = 2`` matches this process's
``OMP_NUM_THREADS`` of tests/conftest.py, so each chunk is the same computation).
"""

import os
import re
import shutil
import signal
import subprocess
import time

import numpy as np
import psutil
import pytest

from _kill import TINY_CONFIG, info, spawn_cli
from spectrotomo.pipeline import load_config, run_pipeline

pytest.importorskip("distributed")

N_MARKS = 8 * 16  # recon/mu done markers: 8 energies x 16 row chunks
CLUSTER = ["--cluster", "local", "--n-workers", "2", "--threads-per-worker", "2"]


def _n_done(store) -> int:
    try:
        return len(os.listdir(store / "recon" / "mu" / ".spectrotomo_done"))
    except FileNotFoundError:
        return 0


def _workers(proc) -> list[psutil.Process]:
    """The dask worker processes the run started (spawned multiprocessing children)."""
    return [c for c in psutil.Process(proc.pid).children(recursive=True)
            if "spawn_main" in " ".join(c.cmdline())]


def _mu(store) -> np.ndarray:
    import zarr

    return zarr.open_array(str(store / "recon" / "mu"), mode="r")[...]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A store after acquire + preprocess, and the in-process reconstruction of it."""
    root = tmp_path_factory.mktemp("workers")
    base = root / "base.zarr"
    (root / "base.toml").write_text(TINY_CONFIG.format(store=base))
    run_pipeline(load_config(root / "base.toml"), steps=["acquire", "preprocess"],
                 log=lambda m: None)
    ref = root / "ref.zarr"
    shutil.copytree(base, ref)
    (root / "ref.toml").write_text(TINY_CONFIG.format(store=ref))
    run_pipeline(load_config(root / "ref.toml"), steps=["reconstruct"], log=lambda m: None)
    return root, base, _mu(ref)


def _kill_a_worker_mid_reconstruct(tmp_path, base, env=None):
    """Run the cluster reconstruct on a copy of ``base``; SIGKILL one worker once some,
    not all, chunk tasks are done. Returns (store, config, exit status, output, marks
    done when the worker was killed)."""
    store = tmp_path / "s.zarr"
    shutil.copytree(base, store)
    config = tmp_path / "s.toml"
    config.write_text(TINY_CONFIG.format(store=store))
    proc = spawn_cli("reconstruct", config, *CLUSTER, stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 240
        while _n_done(store) < 8 or len(_workers(proc)) < 2:  # a task done, both workers up
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "no reconstructed chunk within 240 s"
            time.sleep(0.01)
        victim = _workers(proc)[0]
        victim.send_signal(signal.SIGKILL)
        done_at_kill = _n_done(store)
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert done_at_kill < N_MARKS, "the reconstruction ended before the worker was killed"
    assert not victim.is_running()
    return store, config, proc.returncode, out, done_at_kill


def test_a_killed_worker_s_task_is_retried_and_the_run_completes(prepared, tmp_path):
    _, base, ref_mu = prepared
    store, _, status, out, _ = _kill_a_worker_mid_reconstruct(tmp_path, base)
    assert status == 0, out
    assert "Traceback" not in out
    assert info(store)[0] == 0
    assert np.array_equal(_mu(store), ref_mu, equal_nan=True)


def test_a_task_given_up_after_a_worker_death_is_one_clear_error_then_a_rerun_completes(
        prepared, tmp_path):
    _, base, ref_mu = prepared
    store, config, status, out, done = _kill_a_worker_mid_reconstruct(
        tmp_path, base, env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})
    assert status == 2, out
    assert "Traceback" not in out
    error = [ln for ln in out.splitlines() if ln.startswith("spectrotomo reconstruct: error:")]
    assert len(error) == 1, out
    assert "a dask worker died" in error[0] and "rerun the same command" in error[0], error
    status, text = info(store)
    assert status == 1 and text.splitlines()[-1] == "unfinished groups: recon"
    rerun = spawn_cli("reconstruct", config, *CLUSTER, stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT, text=True)
    out = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, out
    resumed = re.search(r"reconstruct: resuming, (\d+) of 128 chunks already written", out)
    assert resumed and int(resumed[1]) >= done, out  # the chunks done are not redone
    assert info(store)[0] == 0
    assert np.array_equal(_mu(store), ref_mu, equal_nan=True)

