"""Helpers of the kill -9 tests: run the CLI in a subprocess, SIGKILL it at a
chosen moment (or at an exactly observed store state), snapshot file
modification times, and compare two stores bit for bit."""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np

#: A pipeline config on the tiny simulated input; format with ``store=PATH``.
TINY_CONFIG = """
[input]
path = "simulate:tiny"

[output]
store = "{store}"
figures = false                # PNGs cost seconds; the tables and summary stay

[preprocess]
align = false                  # alignment has its own tests
center = 16.2                  # the tiny preset's axis (see test_batch.py)

[reconstruct]
chunk_rows = 2                 # 8 energies x 16 row chunks, 16 quantify slabs
"""

#: Attribute of a group's completion marker and of the store root's run record
#: (spectrotomo.io._markers.MARKER, spectrotomo.io._runstate.RUN_ATTR).
MARKER, RUN_ATTR = "spectrotomo_store", "spectrotomo_run"


def spawn_cli(*args, **popen):
    """``python -m spectrotomo.cli ARGS`` in a subprocess (this interpreter, this env)."""
    return subprocess.Popen([sys.executable, "-m", "spectrotomo.cli", *map(str, args)], **popen)


def kill_when(proc, ready, *, what: str, timeout: float = 240.0, poll: float = 0.2,
              delay: float = 0.0) -> None:
    """SIGKILL ``proc`` once ``ready()`` is true (``delay`` s later), then reap it.

    Raises AssertionError, never passes silently, when the process ends
    before it could be killed or ``ready()`` stays false for ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, (f"the process ended (status {proc.returncode}) "
                                         f"before {what}; nothing was killed")
            assert time.monotonic() < deadline, f"no {what} within {timeout} s"
            time.sleep(poll)
        time.sleep(delay)
        assert proc.poll() is None, f"the process ended before it could be killed ({what})"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()


def _stopped(pid: int) -> bool:
    """True once every thread of ``pid`` is stopped (state T or t) or gone."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state not in "TtZX":
            return False
    return True


def kill_frozen_when(proc, ready, *, what: str, timeout: float = 240.0,
                     slice_s: float = 0.01) -> None:
    """SIGKILL ``proc`` at the first moment ``ready()`` holds, checked while it is frozen.

    The process runs in slices of ``slice_s`` seconds: SIGSTOP, wait until
    every thread has stopped, evaluate ``ready()``, then SIGKILL it, or
    SIGCONT it for the next slice. So the store state ``ready()`` saw is
    exactly the state the kill leaves, and a window of a few slices cannot
    be stepped over. Linux only (``/proc``). Raises AssertionError if the
    process ends first or ``ready()`` stays false for ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert proc.poll() is None, (f"the process ended (status {proc.returncode}) "
                                         f"before {what}; nothing was killed")
            os.kill(proc.pid, signal.SIGSTOP)
            while not _stopped(proc.pid):
                time.sleep(0.0005)
            if ready():
                os.kill(proc.pid, signal.SIGKILL)
                return
            assert time.monotonic() < deadline, f"no {what} within {timeout} s"
            os.kill(proc.pid, signal.SIGCONT)
            time.sleep(slice_s)
    finally:
        proc.kill()
        proc.wait()


def info(store) -> tuple[int, str]:
    """Exit status and output of ``spectrotomo info STORE`` (run in this process)."""
    from spectrotomo.cli import main

    text = StringIO()
    with redirect_stdout(text):
        status = main(["info", str(store)])
    return status, text.getvalue()


def tree_mtimes(path) -> dict[str, int]:
    """Modification time (ns) of every file and folder below ``path``."""
    return {str(p): p.stat().st_mtime_ns for p in path.rglob("*")}


def zarr_json(path) -> dict:
    """The ``attributes`` of the ``zarr.json`` in folder ``path`` ({} if absent)."""
    try:
        return json.loads((Path(path) / "zarr.json").read_text()).get("attributes", {})
    except FileNotFoundError:
        return {}


def normalized_attrs(attrs: dict, store) -> dict:
    """Attributes with what legitimately differs between two runs removed:

    - ``provenance`` entries' ``time`` (UTC time the step ran) and the store's
      own path in their ``inputs`` (the two runs write different stores);
    - the completion marker's ``time`` (when the group's state was last set);
    - the run record's ``started`` and ``time`` (root attributes).

    Everything else (toolkit version, every parameter, units, marker state and
    kind, centre, masked-pixel counts, the steps and their states...) must be equal.
    """
    out = dict(attrs)
    if "provenance" in out:
        entries = json.loads(out["provenance"])
        for entry in entries:
            entry.pop("time", None)
            entry["inputs"] = ["<store>" if i == str(store) else i for i in entry["inputs"]]
        out["provenance"] = entries
    for key, drop in ((MARKER, ("time",)), (RUN_ATTR, ("time", "started"))):
        if key in out:
            out[key] = {k: v for k, v in out[key].items() if k not in drop}
    return out


def assert_stores_equal(store, ref) -> int:
    """Assert two stores hold the same nodes, attributes (see :func:`normalized_attrs`)
    and arrays bit for bit (NaN positions too), and the same files (no leftover
    temporaries); returns the number of arrays compared."""
    import zarr

    top, ref_top = (zarr.open_group(str(s), mode="r") for s in (store, ref))
    assert normalized_attrs(top.attrs.asdict(), store) == \
        normalized_attrs(ref_top.attrs.asdict(), ref), "root attributes"
    nodes, ref_nodes = (dict(g.members(max_depth=None)) for g in (top, ref_top))
    assert sorted(nodes) == sorted(ref_nodes)
    n_arrays = 0
    for path, node in sorted(nodes.items()):
        other = ref_nodes[path]
        assert normalized_attrs(node.attrs.asdict(), store) == \
            normalized_attrs(other.attrs.asdict(), ref), path
        if isinstance(node, zarr.Group):
            continue
        a, b = node[...], other[...]
        assert a.dtype == b.dtype and node.chunks == other.chunks, path
        # NaN positions must agree too (equal_nan compares them as equal values)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), path
        n_arrays += 1
    # the same files: chunk files, done markers, and nothing left over (zarr's
    # *.partial writes, renamed-away groups, temporaries)
    files = [sorted(p.relative_to(s).as_posix() for p in Path(s).rglob("*") if p.is_file())
             for s in (store, ref)]
    assert files[0] == files[1], sorted(set(files[0]) ^ set(files[1]))[:10]
    return n_arrays
