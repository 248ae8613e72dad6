"""kill -9 at seven points of a pipeline run, each followed by the same command.

One store goes through a chain of runs of ``spectrotomo run CONFIG`` (a
subprocess on the tiny simulated input, 16 row chunks x 8 energies): each run
is SIGKILLed at the next point below, ``spectrotomo info`` must exit 1 naming
what is unfinished, and the next run, the same command, takes over the dead
run's lock and resumes. The last run finishes; its store must equal, bit for
bit (every array, attribute and file), the store of an uninterrupted run.

Chaining the kills costs one pipeline run plus a start-up per kill, instead
of a run per kill; the final comparison still catches damage any of the
kills left. Each kill lands at an exactly observed state: the run is frozen
(SIGSTOP) before each look at the store, and killed frozen (see
:func:`_kill.kill_frozen_when`), so a kill never lands later than its point.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from _kill import (RUN_ATTR, TINY_CONFIG, assert_stores_equal, info, kill_frozen_when, spawn_cli,
                   zarr_json)
from spectrotomo import io
from spectrotomo.pipeline import ALL_STEPS, load_config, run_pipeline

def _state(path) -> str | None:
    return zarr_json(path).get("spectrotomo_store", {}).get("state")


def _n_done(store: Path, group: str, array: str) -> int:
    try:
        return len(os.listdir(store / group / array / ".spectrotomo_done"))
    except FileNotFoundError:
        return 0


def _steps(store: Path) -> dict:
    return zarr_json(store).get(RUN_ATTR, {}).get("steps", {})


def _temporaries(store: Path) -> list[Path]:
    """Whole-group writes in progress: temporary stores beside the store."""
    return list(store.parent.glob(f".{store.name}.tmp-*"))


# (name, the state to kill at, what `info` must then print). Each state is looked
# at with the run frozen; the order is the order a run reaches them.
POINTS = [
    ("acquire: truth published, the next group half-written",
     lambda s, r: _state(s / "truth") == "complete" and _state(s / "raw") is None
     and any(t.is_dir() for t in _temporaries(s)),
     ["INCOMPLETE: the run stopped before step(s) acquire, preprocess,",
      "all groups complete (run incomplete)"]),
    ("between steps: acquire done, preprocess not started",
     lambda s, r: _steps(s).get("acquire") == "done" and not (s / "od").exists(),
     ["INCOMPLETE: the run stopped before step(s) preprocess, reconstruct,",
      "all groups complete (run incomplete)"]),
    ("preprocess: some energies written",
     lambda s, r: _n_done(s, "od", "od") >= 16 and _state(s / "od") == "writing",
     ["[od] writing   <-- UNFINISHED", "unfinished groups: od"]),
    ("reconstruct: a quarter of the chunks written",
     lambda s, r: _n_done(s, "recon", "mu") >= 32 and _state(s / "recon") == "writing",
     ["[recon] writing   <-- UNFINISHED", "unfinished groups: recon"]),
    ("quantify: some slabs written",
     # tm_o_ratio: one chunk per slab at 32^2, the last array a slab task writes (amount
     # has one chunk per element: its markers count elements, not finished slabs)
     lambda s, r: _n_done(s, "chemistry", "tm_o_ratio") >= 2
     and _state(s / "chemistry") == "writing",
     ["[chemistry] writing   <-- UNFINISHED", "unfinished groups: chemistry"]),
    ("between steps: valence done, segment not written",
     lambda s, r: _steps(s).get("valence") == "done" and not (s / "segmentation").exists(),
     ["INCOMPLETE: the run stopped before step(s) "
      + ", ".join(ALL_STEPS[ALL_STEPS.index("valence") + 1:]) + " finished",
      "all groups complete (run incomplete)"]),
    ("report: tables written, summary not",
     lambda s, r: (r / "tm_o_by_shell.csv").exists() and not (r / "summary.json").exists(),
     ["INCOMPLETE: the run stopped before step(s) report finished",
      "all groups complete (run incomplete)"]),
]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Kill the run at every point, rerunning the same command; then let it finish."""
    root = tmp_path_factory.mktemp("kill")
    store, report = root / "killed.zarr", root / "killed-report"
    config = root / "killed.toml"
    config.write_text(TINY_CONFIG.format(store=store))
    kills = []
    for name, ready, _ in POINTS:
        log = root / f"run{len(kills)}.out"
        with open(log, "w") as out:
            proc = spawn_cli("run", config, stdout=out, stderr=subprocess.STDOUT)
            kill_frozen_when(proc, lambda: ready(store, report), what=name)
        kills.append({"pid": proc.pid, "out": log.read_text(), "info": info(store),
                      "temporaries": _temporaries(store),
                      "recon_done": _n_done(store, "recon", "mu")})
    final = spawn_cli("run", config, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                      text=True)
    out, _ = final.communicate(timeout=300)
    ref_store = root / "reference.zarr"
    ref_config = root / "reference.toml"
    ref_config.write_text(TINY_CONFIG.format(store=ref_store))
    run_pipeline(load_config(ref_config), log=lambda m: None)  # uninterrupted
    return {"root": root, "store": store, "ref": ref_store, "kills": kills,
            "final": (final.returncode, out)}


@pytest.mark.parametrize("k", range(len(POINTS)), ids=[p[0].split(":")[0].replace(" ", "-")
                                                      + str(i) for i, p in enumerate(POINTS)])
def test_info_names_what_the_kill_left_unfinished(chain, k):
    status, text = chain["kills"][k]["info"]
    assert status == 1, text
    for line in POINTS[k][2]:
        assert line in text, (POINTS[k][0], text)


def test_each_rerun_takes_over_the_killed_runs_lock(chain):
    kills = chain["kills"]
    outputs = [k["out"] for k in kills[1:]] + [chain["final"][1]]
    for killed, out in zip(kills, outputs):
        assert f"(taken over) of dead pid {killed['pid']}" in out, out
        assert "Traceback" not in out


def test_reruns_skip_what_is_complete_and_resume_chunks(chain):
    kills, (status, out) = chain["kills"], chain["final"]
    assert status == 0, out
    # the run after the kill in reconstruct resumed its chunks (and was itself
    # killed in quantify, which the next run resumed)
    done = kills[3]["recon_done"]
    assert f"reconstruct: resuming, {done} of 128 chunks already written" in kills[4]["out"]
    assert "quantify: resuming," in kills[5]["out"], kills[5]["out"]
    for step in ("acquire", "preprocess", "reconstruct", "quantify", "valence", "segment",
                 "profile"):
        assert any(ln.split()[:2] == [step, "skipped"] for ln in out.splitlines()), (step, out)


def test_final_store_equals_an_uninterrupted_run_bit_for_bit(chain):
    store, ref, root = chain["store"], chain["ref"], chain["root"]
    assert info(store)[0] == 0
    assert assert_stores_equal(store, ref) > 50
    for table in ("tm_o_by_shell.csv", "tm_o_by_depth.csv", "tm_o_by_class.csv",
                  "tm_o_smoothed_by_shell.csv", "summary.csv"):
        text, ref_text = ((root / f"{name}-report" / table).read_text()
                          for name in ("killed", "reference"))
        assert text == ref_text.replace(str(ref), str(store)), table  # summary names the store


def test_the_temporary_a_kill_left_is_removed_by_the_rerun(chain):
    # the kill inside acquire left half-written temporary stores beside the store (one
    # per input group being written: acquire writes truth/raw_xanes/references side by side)
    left = chain["kills"][0]["temporaries"]
    assert 1 <= len(left) <= 3 and not any(t.exists() for t in left)
    assert _temporaries(chain["store"]) == []
    out = chain["kills"][1]["out"]
    assert f"removed {len(left)} temporary file(s)/folder(s) that run left unfinished: " in out
    assert all(t.name in out for t in left), out


def test_taking_over_a_dead_writers_lock_removes_its_leftovers(tmp_path):
    """Each kind of leftover remove_leftovers knows, planted beside and in a store;
    files of the store itself and of other stores are kept."""
    store = tmp_path / "s.zarr"
    (store / "recon" / "mu" / "c" / "0").mkdir(parents=True)
    chunk = store / "recon" / "mu" / "c" / "0" / "0"
    chunk.write_bytes(b"kept")
    planted = [tmp_path / ".s.zarr.tmp-0123456789ab" / "raw" / "zarr.json",
               store / ".recon.old-0123456789ab" / "zarr.json",
               store / "recon" / "mu" / "c" / "0" / ("1." + "a" * 32 + ".partial")]
    other = tmp_path / ".t.zarr.tmp-0123456789ab" / "zarr.json"  # another store's
    for path in (*planted, other):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    owner = {"pid": int(dead.stdout), "host": socket.gethostname(), "time": "then"}
    io.lock_path(store).write_text(json.dumps(owner))
    lines = []
    with io.store_lock(store, log=lines.append):
        pass
    assert len(lines) == 1 and "removed 3 temporary file(s)/folder(s)" in lines[0], lines
    assert not any(p.parent.exists() for p in planted[:2]) and not planted[2].exists()
    assert chunk.read_bytes() == b"kept" and other.exists()
