"""Disk full, read-only output, no permission: one clear error, nothing left behind.

Two ways to make a write fail:
- a real small file system: a tmpfs of a few MiB (``mount -t tmpfs -o size=...``),
  remounted read-only or larger; needs root with CAP_SYS_ADMIN (the CI runner
  has it), skipped cleanly elsewhere;
- everywhere: zarr's file write (``zarr.storage._local._put``) patched to raise
  ``OSError(ENOSPC / EROFS / EACCES)`` after some chunks (root ignores
  permission bits, so chmod cannot make a read-only directory in CI).
Each case asserts the message (path, reason, space where known), that no
temporary file is left, that nothing looks complete, and that a rerun with
space completes bit-identical to an uninterrupted write.
"""

import errno
import os
import subprocess
import uuid

import numpy as np
import pytest
import xarray as xr

from spectrotomo import io
from spectrotomo.io import StoreWriteError


def _ds(n=96, seed=0):
    rng = np.random.default_rng(seed)
    return xr.Dataset({"v": (("z", "y", "x"), rng.random((n, n, n), dtype=np.float32)),
                       "m": (("z", "y", "x"), np.zeros((n, n, n), np.uint8))},
                      coords={"z": np.arange(n) * 10.0})


ENC = {"v": {"chunks": (16, 32, 32)}, "m": {"chunks": (16, 32, 32)}}
NEED = f"it needs up to about {96**3 * 5 / 2**20 + 96 * 8 / 2**20:,.1f} MiB (uncompressed)"


def _files(root):
    """Relative path -> bytes of every file under ``root`` (zarr.json attributes carry
    write times, so metadata files are compared without them)."""
    import json

    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "zarr.json":
            meta = json.loads(data)
            for marker in (meta.get("attributes") or {}).values():
                if isinstance(marker, dict):
                    marker.pop("time", None)
            data = json.dumps(meta, sort_keys=True).encode()
        out[path.relative_to(root).as_posix()] = data
    return out


def _leftovers(parent):
    return sorted(p.name for p in parent.rglob("*") if ".tmp-" in p.name or ".old-" in p.name
                  or p.name.endswith(".partial"))


@pytest.fixture
def fail_writes(monkeypatch):
    """``fail_writes(code, after=k)``: zarr's file writes raise OSError(code) after k."""
    import zarr.storage._local as local

    real = local._put

    def install(code, after=0):
        count = {"n": 0}

        def put(path, value, exclusive=False):
            count["n"] += 1
            if count["n"] > after:
                raise OSError(code, os.strerror(code), str(path))
            return real(path, value, exclusive=exclusive)

        monkeypatch.setattr(local, "_put", put)
        return lambda: monkeypatch.setattr(local, "_put", real)

    return install


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size)``: a fresh tmpfs directory of ``size`` ("2m"); skip without mount."""
    mounted = []

    def make(size):
        path = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
        path.mkdir()
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
        if res.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or res.returncode})")
        mounted.append(path)
        return path

    yield make
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path, options):
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


# --------------------------------------------------------------------------- #
# whole-group writes (io.write)
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("code, reason", [
    (errno.ENOSPC, "no space left on the device"),
    (errno.EDQUOT, "disk quota exceeded"),
    (errno.EROFS, "the file system is read-only"),
    (errno.EACCES, "permission denied"),
])
@pytest.mark.parametrize("after", [0, 5])
def test_write_fault_is_one_clear_error_and_a_rerun_is_bit_identical(
        tmp_path, fail_writes, code, reason, after):
    ref, store = tmp_path / "ref.zarr", tmp_path / "s.zarr"
    io.write(ref, "g", _ds(), encoding=ENC)
    restore = fail_writes(code, after=after)
    with pytest.raises(StoreWriteError) as err:
        io.write(store, "g", _ds(), encoding=ENC)
    text = str(err.value)
    assert f"cannot write group 'g' to {store}: {reason}" in text
    assert "Nothing incomplete was published" in text and "rerun" in text
    if code in (errno.ENOSPC, errno.EDQUOT):
        assert NEED in text and "free there" in text
    assert err.value.errno == code
    assert _leftovers(tmp_path) == []
    assert not io.is_complete(store, "g") and not (store / "g").exists()
    restore()
    io.write(store, "g", _ds(), encoding=ENC)
    assert _files(store / "g") == _files(ref / "g")
    assert io.verify_store(store).ok


def test_overwrite_that_fails_keeps_the_old_complete_group(tmp_path, fail_writes):
    store = tmp_path / "s.zarr"
    io.write(store, "g", _ds(seed=1), encoding=ENC)
    before = _files(store / "g")
    fail_writes(errno.ENOSPC, after=3)
    with pytest.raises(StoreWriteError, match="no space left"):
        io.write(store, "g", _ds(seed=2), encoding=ENC, overwrite=True)
    assert _files(store / "g") == before and io.is_complete(store, "g")
    assert _leftovers(tmp_path) == []


# --------------------------------------------------------------------------- #
# region writes (init_array / write_region / mark_complete)
# --------------------------------------------------------------------------- #
def _fill(store, data, skip=()):
    for i, region in enumerate(io.missing_regions(store, "r", "v")):
        if i not in skip:
            io.write_region(store, "r", "v", region, data[region])


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_region_write_fault_leaves_the_group_unfinished_and_resumes(tmp_path, fail_writes,
                                                                    code):
    data = _ds()["v"].values
    kw = dict(shape=data.shape, dtype="float32", chunks=(16, 32, 32), dims=("z", "y", "x"))
    ref, store = tmp_path / "ref.zarr", tmp_path / "s.zarr"
    for s in (ref, store):
        io.init_array(s, "r", "v", **kw)
    _fill(ref, data)
    io.mark_complete(ref, "r")
    restore = fail_writes(code, after=3)
    with pytest.raises(StoreWriteError, match=rf"cannot write a region of r/v to {store}"):
        _fill(store, data)
    assert not io.is_complete(store, "r") and _leftovers(tmp_path) == []
    assert len(io.missing_regions(store, "r", "v")) == 54 - 3
    with pytest.raises(RuntimeError, match="unwritten chunks"):
        io.mark_complete(store, "r")
    restore()
    io.init_array(store, "r", "v", **kw)  # the resumed job: keeps the 3 chunks written
    _fill(store, data)
    io.mark_complete(store, "r")
    assert io.read_region(store, "r", "v", ()).tobytes() == data.tobytes()
    assert {k: v for k, v in _files(store / "r").items() if "/c/" in k} == \
        {k: v for k, v in _files(ref / "r").items() if "/c/" in k}


def test_marking_complete_on_a_full_disk_is_a_clear_error(tmp_path, fail_writes):
    store = tmp_path / "s.zarr"
    io.init_array(store, "r", "v", shape=(4,), dtype="f4", chunks=(2,), dims=("x",))
    _fill(store, np.arange(4.0, dtype=np.float32))
    fail_writes(errno.ENOSPC)
    with pytest.raises(StoreWriteError, match="cannot write the completion marker of group 'r'"):
        io.mark_complete(store, "r")
    assert not io.is_complete(store, "r")


# --------------------------------------------------------------------------- #
# real small / read-only file systems
# --------------------------------------------------------------------------- #
def test_disk_full_on_a_small_tmpfs_then_a_rerun_with_space(tmp_path, tmpfs):
    fs = tmpfs("2m")
    store, ref = fs / "s.zarr", tmp_path / "ref.zarr"
    io.write(ref, "g", _ds(), encoding=ENC)  # 3.4 MiB of random float32: cannot fit
    with pytest.raises(StoreWriteError) as err:
        io.write(store, "g", _ds(), encoding=ENC)
    assert f"cannot write group 'g' to {store}: no space left on the device" in str(err.value)
    assert NEED in str(err.value)
    assert _leftovers(fs) == [] and not (store / "g").exists()
    assert sum(f.stat().st_size for f in fs.rglob("*") if f.is_file()) < 4096
    remount(fs, "size=64m")
    io.write(store, "g", _ds(), encoding=ENC)
    assert _files(store / "g") == _files(ref / "g")


def test_read_only_tmpfs_refuses_store_and_lock_clearly(tmp_path, tmpfs):
    fs = tmpfs("4m")
    remount(fs, "ro")
    store = fs / "s.zarr"
    with pytest.raises(StoreWriteError, match=rf"cannot write the lock file to {fs}/s.zarr.lock:"
                       " the file system is read-only"):
        with io.store_lock(store):
            pass  # pragma: no cover
    with pytest.raises(StoreWriteError, match="the file system is read-only.*remount it"):
        io.write(store, "g", _ds(8))
    assert list(fs.iterdir()) == []


def test_cli_on_a_read_only_output_prints_one_line_no_traceback(tmp_path, tmpfs, capsys):
    from spectrotomo.cli import main

    fs = tmpfs("4m")
    remount(fs, "ro")
    assert main(["simulate", str(fs / "s.zarr")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "spectrotomo simulate: error: cannot write" in err and "read-only" in err
