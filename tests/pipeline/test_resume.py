"""kill -9 in the middle of the reconstruction, then the same command again.

One scenario per session (each pipeline run on the tiny preset costs ~5 s):
1. ``spectrotomo run CONFIG`` in a subprocess, SIGKILLed once the reconstruct
   step has written some of its per-chunk done markers (not all);
2. ``spectrotomo info STORE`` exits 1 and names the unfinished group;
3. the same command again runs to the end: the stale lock is taken over, the
   finished steps and the finished chunks are not redone;
4. the store equals, bit for bit, that of an uninterrupted run of the same
   config into a second store (see :func:`_kill.normalized_attrs` for the
   only attributes allowed to differ).

Bit-identity holds without tolerances because every chunk is a fixed
computation: the FBP's NUFFTs are single-threaded inside each pool thread (no
racing reductions), and its row batches depend only on the chunk and on
``OMP_NUM_THREADS``, which both runs inherit from this process.
"""

import json
import os
import shutil
import subprocess

import pytest

from _kill import TINY_CONFIG, assert_stores_equal, info, kill_when, spawn_cli, tree_mtimes
from spectrotomo import io
from spectrotomo.io._markers import done_dir

CONFIG = TINY_CONFIG  # 8 energies x 16 row chunks: a kill window of ~1 s

N_CHUNKS = 8 * 16


def _write_config(path, store):
    path.write_text(CONFIG.format(store=store))
    return path


def _n_done(store) -> int:
    try:
        return len(os.listdir(done_dir(store, "recon", "mu")))
    except FileNotFoundError:
        return 0


def _kill_during_reconstruct(config, store):
    """Run ``spectrotomo run CONFIG`` and SIGKILL it mid-reconstruction.

    Kills once a quarter of the chunks are done; should the reconstruction
    have finished before the kill landed (a slow poll on a loaded machine),
    starts again and kills at the first done marker instead. Fails if even
    that is too late: the test never passes without a real interruption.
    """
    for threshold in (N_CHUNKS // 4, 1):
        shutil.rmtree(store, ignore_errors=True)
        io._lock.lock_path(store).unlink(missing_ok=True)
        proc = spawn_cli("run", config, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kill_when(proc, lambda: _n_done(store) >= threshold, poll=0.005,
                  what=f"{threshold} reconstructed chunks")
        if not io.is_complete(store, "recon"):
            return
    pytest.fail("the reconstruction finished before the run could be killed, twice")


def _run_cli(*args) -> subprocess.CompletedProcess:
    proc = spawn_cli(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    store, ref_store = root / "killed.zarr", root / "reference.zarr"
    config = _write_config(root / "killed.toml", store)
    _kill_during_reconstruct(config, store)
    killed = {"done": sorted(os.listdir(done_dir(store, "recon", "mu"))),
              "missing": len(io.missing_regions(store, "recon", "mu")),
              "lock": json.loads(io._lock.lock_path(store).read_text()),
              "mtimes": tree_mtimes(store), "info": info(store)}
    rerun = _run_cli("run", config)  # the same command again
    reference = _run_cli("run", _write_config(root / "reference.toml", ref_store))
    assert reference.returncode == 0, reference.stderr
    return {"root": root, "store": store, "ref_store": ref_store, "killed": killed,
            "rerun": rerun}


def test_killed_store_is_reported_unfinished(resumed, capsys):
    killed = resumed["killed"]
    # a real interruption: some chunks done, some not, the group not complete
    assert len(killed["done"]) >= 1 and killed["missing"] >= 1
    assert len(killed["done"]) + killed["missing"] == N_CHUNKS
    status, text = killed["info"]
    assert status == 1
    assert "[recon] writing   <-- UNFINISHED" in text
    assert text.splitlines()[-1] == "unfinished groups: recon"
    # the steps before it are complete; the killed run's lock is left behind
    assert "[od] complete" in text and "[raw] complete" in text
    assert killed["lock"]["pid"] != os.getpid()


def test_rerun_takes_the_stale_lock_and_skips_finished_work(resumed):
    rerun, killed, store = resumed["rerun"], resumed["killed"], resumed["store"]
    assert rerun.returncode == 0, rerun.stderr
    out = rerun.stdout
    assert f"removed stale lock {io._lock.lock_path(store)} (taken over) of dead pid " \
        f"{killed['lock']['pid']}" in out
    assert (f"reconstruct: resuming, {len(killed['done'])} of {N_CHUNKS} chunks already "
            "written") in out
    for step in ("acquire", "preprocess"):
        assert any(ln.split()[:2] == [step, "skipped"] for ln in out.splitlines()), out
    # the chunks finished before the kill were not recomputed: their done markers
    # and their data files (zarr v3 key c/<energy>/<row chunk>/0/0) are untouched
    marks = done_dir(store, "recon", "mu")
    after = tree_mtimes(store)
    for name in killed["done"]:
        chunk = store / "recon" / "mu" / "c" / name.replace(".", "/")
        for path in (marks / name, chunk):
            assert after[str(path)] == killed["mtimes"][str(path)], path
    assert len(os.listdir(marks)) == N_CHUNKS and io.is_complete(store, "recon")
    assert not io._lock.lock_path(store).exists()


def test_resumed_store_equals_uninterrupted_run_bit_for_bit(resumed):
    store, ref = resumed["store"], resumed["ref_store"]
    groups = {p.parent.name for p in store.glob("*/zarr.json")}
    assert {"raw", "od", "recon", "chemistry", "valence", "segmentation", "profiles"} <= groups
    # every array, attribute (up to times and the store's path) and file
    assert assert_stores_equal(store, ref) > 50
    root = resumed["root"]
    for table in ("tm_o_by_shell.csv", "tm_o_by_depth.csv", "tm_o_by_class.csv"):
        assert (root / "killed-report" / table).read_bytes() == \
            (root / "reference-report" / table).read_bytes(), table


def test_acquire_killed_between_its_groups_resumes(tmp_path):
    """The state a kill inside acquire can leave (each group is published
    atomically, so some input groups exist and others not): the rerun writes the
    missing ones, keeps the others, and writes ``raw`` (the step's marker) last."""
    from spectrotomo.pipeline import load_config, run_pipeline

    store = tmp_path / "s.zarr"
    cfg = load_config(_write_config(tmp_path / "run.toml", store))
    run_pipeline(cfg, steps=["acquire"], log=lambda m: None)
    for group in ("raw", "raw_xanes"):
        shutil.rmtree(store / group)
    kept = {g: (store / g / "zarr.json").stat().st_mtime_ns for g in ("truth", "references")}
    lines = []
    run_pipeline(cfg, steps=["acquire", "preprocess"], log=lines.append)
    assert not any("skipped" in ln for ln in lines), lines
    assert all(io.is_complete(store, g) for g in ("truth", "raw", "raw_xanes", "references"))
    assert {g: (store / g / "zarr.json").stat().st_mtime_ns for g in kept} == kept
    times = {g: (store / g / "zarr.json").stat().st_mtime_ns for g in ("raw", "raw_xanes")}
    assert times["raw"] >= times["raw_xanes"]
