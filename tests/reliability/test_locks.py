"""One lock per real store path; unreadable lock files; batches sharing a store.

Each case asserts the clear message (path, owner or how to clear it) and that
nothing was written that looks complete.
"""

import os
import subprocess
import sys
import textwrap
from contextlib import contextmanager

import numpy as np
import pytest
import xarray as xr

from spectrotomo import io
from spectrotomo.io import StoreLockedError

HOLD = textwrap.dedent("""
    import sys
    from spectrotomo.io import store_lock
    with store_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()
""")


@contextmanager
def held_elsewhere(path):
    """Another process holds the lock of ``path`` (as that process typed it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()


def _ds():
    return xr.Dataset({"v": ("x", np.arange(4.0))})


def _paths(tmp_path, how):
    real = tmp_path / "data" / "s.zarr"
    real.mkdir(parents=True)
    if how == "symlink":
        (tmp_path / "link.zarr").symlink_to(real)
        return real, tmp_path / "link.zarr"
    if how == "symlinked-parent":
        (tmp_path / "d2").symlink_to(tmp_path / "data")
        return real, tmp_path / "d2" / "s.zarr"
    if how == "dotdot":
        (tmp_path / "other").mkdir()
        return real, tmp_path / "other" / ".." / "data" / "s.zarr"
    if how == "relative":
        return real, os.path.relpath(real)
    raise AssertionError(how)


WAYS = ["symlink", "symlinked-parent", "dotdot", "relative"]


@pytest.mark.parametrize("how", WAYS)
def test_a_second_path_to_a_locked_store_is_refused(tmp_path, how):
    real, other = _paths(tmp_path, how)
    with held_elsewhere(real):
        with pytest.raises(StoreLockedError, match=r"locked by another writer \(pid \d+"):
            with io.store_lock(other):
                pass  # pragma: no cover
        with pytest.raises(StoreLockedError, match="locked by another writer"):
            io.write(other, "g", _ds())
    assert not (real / "g").exists()


@pytest.mark.parametrize("how", WAYS)
def test_a_lock_taken_through_another_path_refuses_the_real_one(tmp_path, how):
    real, other = _paths(tmp_path, how)
    with held_elsewhere(other):
        with pytest.raises(StoreLockedError, match="locked by another writer"):
            io.write(real, "g", _ds())
        with pytest.raises(StoreLockedError, match="locked by another writer"):
            io.init_array(real, "r", "v", shape=(4,), dtype="f4", chunks=(2,), dims=("x",))
    assert not (real / "g").exists() and not (real / "r").exists()


@pytest.mark.parametrize("content, what", [
    ("", "empty"),
    ("   \n", "empty"),
    ("hello", "content 'hello'"),
    ('{"pid": 1', "content"),
    ("[1, 2]", "content"),
    ('{"host": "x"}', "content"),
    ("\x00\x01\x02", "content"),
])
def test_a_garbage_lock_file_is_named_with_how_to_clear_it(tmp_path, content, what):
    store = tmp_path / "s.zarr"
    lock = tmp_path / "s.zarr.lock"
    lock.write_text(content)
    for attempt in (lambda: io.store_lock(store).__enter__(), lambda: io.write(store, "g", _ds())):
        with pytest.raises(StoreLockedError) as err:
            attempt()
        text = str(err.value)
        assert f"lock file {lock} names no owner ({what}" in text
        assert f"rm '{lock}'" in text
    assert not store.exists() and lock.read_text() == content  # nothing touched
    lock.unlink()  # what the message says to do
    with io.store_lock(store):
        io.write(store, "g", _ds())
    assert io.is_complete(store, "g")


def _manifest(tmp_path, labels):
    text = "".join(f'[[scan]]\ninput = "simulate:tiny"\nlabel = "{lab}"\n' for lab in labels)
    path = tmp_path / "m.toml"
    path.write_text(text)
    return path


def test_batch_refuses_two_scans_resolving_to_one_store(tmp_path):
    from spectrotomo.pipeline import ManifestError, run_batch

    out = tmp_path / "out"
    out.mkdir()
    (out / "a.zarr").mkdir()
    (out / "b.zarr").symlink_to(out / "a.zarr")
    for dry in (True, False):
        with pytest.raises(ManifestError, match=r"scans 'a' and 'b' would write one store: "
                           r".*b\.zarr both resolve to .*a\.zarr"):
            run_batch(_manifest(tmp_path, ["a", "b"]), out_dir=out, dry_run=dry, log=lambda m: None)
    assert os.listdir(out / "a.zarr") == [] and not (out / "batch.log").exists()


def test_batch_refuses_a_shared_store_through_a_symlinked_output(tmp_path):
    from spectrotomo.pipeline import ManifestError, run_batch

    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "x.zarr").symlink_to(out / "y.zarr")  # dangling: resolved all the same
    with pytest.raises(ManifestError, match="'x' and 'y' would write one store"):
        run_batch(_manifest(tmp_path, ["x", "y"]), out_dir=out, dry_run=True, log=lambda m: None)
