"""Chunk checksums (crc32c), chunk records and verify_store; the run's step record."""

import json
import os

import numpy as np
import pytest
import xarray as xr

from spectrotomo import io
from spectrotomo.io import _integrity


def _ds(rng):
    vol = rng.random((8, 8, 8), dtype=np.float32)
    vol[:4, :4, :4] = np.nan  # an all-fill chunk: must still be written
    return xr.Dataset(
        {"vol": (("z", "y", "x"), vol, {"units": "1"}),
         "mask": (("z", "y", "x"), np.zeros((8, 8, 8), np.uint8)),
         "name": (("z",), np.array(list("abcdefgh")))},
        coords={"z": ("z", np.arange(8.0), {"units": "nm"})})


def _store(tmp_path, rng):
    store = tmp_path / "s.zarr"
    io.write(store, "truth", _ds(rng), encoding={"vol": {"chunks": (4, 4, 4)},
                                                 "mask": {"chunks": (4, 4, 4)}})
    io.init_array(store, "recon", "mu", shape=(8, 8), dtype="float32", chunks=(4, 4),
                  dims=("y", "x"), coords={"y": np.arange(8.0), "x": np.arange(8.0)})
    for region in io.missing_regions(store, "recon", "mu"):
        io.write_region(store, "recon", "mu", region, np.zeros((4, 4), np.float32))
    io.mark_complete(store, "recon")
    return store


def _codecs(path):
    return [c["name"] for c in json.loads((path / "zarr.json").read_text())["codecs"]]


def test_every_array_carries_crc32c_and_every_chunk_is_written(tmp_path, rng):
    store = _store(tmp_path, rng)
    for arr in ("truth/vol", "truth/mask", "truth/name", "truth/z", "recon/mu", "recon/x"):
        assert _codecs(store / arr)[-1] == "crc32c", arr
    # all-NaN / all-zero chunks are files too, so a deleted one cannot pass for empty
    assert sum(p.is_file() for p in (store / "truth/mask/c").rglob("*")) == 8
    assert io.list_groups(store)["truth"]["chunks"] == {"vol": 8, "mask": 8, "name": 1, "z": 1}
    assert io.list_groups(store)["recon"]["chunks"] == {"mu": 4, "x": 1, "y": 1}
    report = io.verify_store(store)
    assert report.ok and report.chunks_total == report.chunks_read == 24
    assert report.format().endswith("verify: OK")


def test_user_compressors_are_kept_and_crc32c_appended(tmp_path):
    from zarr.codecs import BloscCodec

    store = tmp_path / "s.zarr"
    io.write(store, "a", _ds(np.random.default_rng(1234)), encoding={"vol": {"compressors": (BloscCodec(),)}})
    assert _codecs(store / "a/vol") == ["bytes", "blosc", "crc32c"]
    back = io.read_group(store, "a").load()
    assert back["vol"].values.tobytes() == _ds(np.random.default_rng(1234))["vol"].values.tobytes()
    assert io.verify_store(store).ok


@pytest.mark.parametrize("damage, kind", [
    (lambda p: p.write_bytes(bytes(b ^ (i == 5) for i, b in enumerate(p.read_bytes()))),
     "CORRUPT"),
    (lambda p: p.write_bytes(os.urandom(len(p.read_bytes()))), "CORRUPT"),
    (lambda p: p.write_bytes(p.read_bytes()[:2]), "CORRUPT"),
    (lambda p: p.unlink(), "MISSING"),
])
def test_a_damaged_chunk_is_named(tmp_path, rng, damage, kind):
    store = _store(tmp_path, rng)
    chunk = store / "truth/vol/c/1/0/1"
    before = chunk.read_bytes()
    damage(chunk)
    if chunk.exists() and chunk.read_bytes() == before:  # pragma: no cover - 1 in 2**32
        pytest.skip("random bytes equal the original")
    report = io.verify_store(store)
    assert not report.ok and report.damaged_groups == ["truth"]
    [problem] = report.problems
    assert (problem.group, problem.array, problem.chunk) == ("truth", "vol", "c/1/0/1")
    assert f"{kind:<10} truth/vol chunk c/1/0/1" in report.format()
    assert io.verify_store(store, groups=["recon"]).ok  # only what was asked


def test_a_corrupt_chunk_fails_to_read_instead_of_reading_garbage(tmp_path, rng):
    store = _store(tmp_path, rng)
    chunk = store / "truth/vol/c/1/1/1"
    data = bytearray(chunk.read_bytes())
    data[8] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        io.read_group(store, "truth")["vol"].values


def test_a_deleted_region_chunk_is_named(tmp_path, rng):
    store = _store(tmp_path, rng)
    (store / "recon/mu/c/1/1").unlink()
    [problem] = io.verify_store(store).problems
    assert (problem.group, problem.array, problem.chunk, problem.kind) == (
        "recon", "mu", "c/1/1", "missing")


def test_quick_verify_checks_presence_of_all_and_crc_of_a_sample(tmp_path, rng, monkeypatch):
    store = tmp_path / "s.zarr"
    io.write(store, "big", xr.Dataset({"v": (("z", "x"), rng.random((64, 64)))}),
             encoding={"v": {"chunks": (4, 4)}})  # 256 chunks
    monkeypatch.setattr(_integrity, "QUICK_FULL_BYTES", 0)  # every group counts as large
    (store / "big/v/c/15/15").unlink()
    report = io.verify_store(store, quick=True)
    assert report.chunks_total == 256 and report.chunks_read == _integrity.QUICK_SAMPLE
    assert [p.chunk for p in report.problems] == ["c/15/15"]
    full = io.verify_store(store)
    assert full.chunks_read == 255


def test_unreadable_metadata_is_named(tmp_path, rng):
    store = _store(tmp_path, rng)
    (store / "recon/mu/zarr.json").write_text("{ not json")
    problems = io.verify_store(store).problems
    assert [(p.group, p.array, p.kind) for p in problems] == [("recon", "mu", "unreadable")]
    (store / "truth/zarr.json").write_text("")
    problems = io.verify_store(store).problems
    assert [(p.group, p.kind) for p in problems] == [("recon", "unreadable"),
                                                     ("truth", "unreadable")]


def test_store_from_before_checksums_is_decoded_and_noted(tmp_path):
    import zarr

    store = tmp_path / "old.zarr"
    root = zarr.open_group(str(store), mode="w", zarr_format=3)
    g = root.create_group("g")
    arr = g.create_array("v", shape=(8,), chunks=(4,), dtype="f4")
    arr[:] = np.arange(8)
    g.attrs["spectrotomo_store"] = {"state": "complete", "kind": "Dataset"}
    report = io.verify_store(store)
    assert report.ok and report.chunks_read == 2
    assert any("no crc32c codec" in n for n in report.notes)
    assert any("no chunk record" in n for n in report.notes)
    (store / "g/v/c/1").write_bytes(b"\x01\x02garbage-not-zstd")
    assert [p.kind for p in io.verify_store(store).problems] == ["unreadable"]


def test_datatree_subgroups_are_verified(tmp_path, rng):
    store = tmp_path / "s.zarr"
    tree = xr.DataTree.from_dict({"/": _ds(rng), "/sub": xr.Dataset({"w": ("q", np.ones(5))})})
    io.write(store, "t", tree)
    assert io.list_groups(store)["t/sub"]["chunks"] == {"w": 1}
    (store / "t/sub/w/c/0").unlink()
    assert [(p.group, p.array) for p in io.verify_store(store).problems] == [("t/sub", "w")]


def test_run_record_marks_a_run_stopped_between_steps_incomplete(tmp_path, rng):
    store = _store(tmp_path, rng)
    assert io.describe_store(store)["complete"] and io.run_steps(store) is None
    io.record_run_steps(store, ["acquire", "preprocess", "report"])
    io.record_step_done(store, "acquire")
    d = io.describe_store(store)
    assert not d["complete"] and d["run"]["pending"] == ["preprocess", "report"]
    text = io.format_store(d)
    assert "INCOMPLETE: the run stopped before step(s) preprocess, report" in text
    assert text.endswith("all groups complete (run incomplete)")
    io.record_step_done(store, "preprocess")
    io.record_step_done(store, "report")
    assert io.describe_store(store)["complete"]
    io.record_run_steps(store, ["report"])  # a later partial run updates only its steps
    assert io.run_steps(store)["steps"] == {"acquire": "done", "preprocess": "done",
                                            "report": "pending"}


def test_run_record_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "x.zarr").mkdir()
    (tmp_path / "x.zarr" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a zarr v3 store"):
        io.record_run_steps(tmp_path / "x.zarr", ["acquire"])
    assert not (tmp_path / "x.zarr" / "zarr.json").exists()
