"""Pipeline runs over damaged stores and runs stopped between steps.

A complete group with a corrupt or deleted chunk is verified before the
rerun would skip it, removed and rebuilt bit-identical (the log says so);
`spectrotomo info --verify` names the chunk and exits 1; a store whose run
stopped between steps is reported incomplete. Runs use the tiny simulated
preset and only the first steps (a few seconds each).
"""

import json
from contextlib import redirect_stdout
from io import StringIO

import pytest

from spectrotomo import io
from spectrotomo.cli import main
from spectrotomo.pipeline import run_pipeline
from spectrotomo.pipeline._config import config_from_dict

STEPS = ["acquire", "preprocess"]


def _config(store):
    return config_from_dict({"input": {"path": "simulate:tiny"},
                             "output": {"store": str(store), "figures": False},
                             "preprocess": {"align": False, "center": 16.2}})


def _run(store, steps=STEPS):
    lines = []
    run_pipeline(_config(store), steps=steps, log=lines.append)
    return "\n".join(lines)


def _chunks(store, group):
    """Chunk key -> bytes of every chunk file of ``group`` (metadata excluded)."""
    root = store / group
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "/c/" in "/" + p.relative_to(root).as_posix()
            and ".spectrotomo_done" not in p.parts}


def _info(*args):
    out = StringIO()
    with redirect_stdout(out):
        rc = main(["info", *map(str, args)])
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A store after acquire + preprocess, and its chunks (the uninterrupted result)."""
    store = tmp_path_factory.mktemp("done") / "s.zarr"
    _run(store)
    return store, {g: _chunks(store, g) for g in ("raw", "truth", "od")}


@pytest.fixture
def store(done, tmp_path):
    import shutil

    copy = tmp_path / "s.zarr"
    shutil.copytree(done[0], copy, symlinks=True)
    return copy


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    path.write_bytes(bytes(data))


def _first_chunk(store, group, array):
    return sorted(p for p in (store / group / array / "c").rglob("*") if p.is_file())[0]


@pytest.mark.parametrize("group, array, damage", [
    ("od", "od", "corrupt"), ("od", "od", "missing"),
    ("raw", "projections", "corrupt"), ("raw", "flats", "missing"),
    ("truth", "tm_o_ratio", "corrupt"),  # written by acquire besides raw
])
def test_a_rerun_rebuilds_a_damaged_group_bit_identical(done, store, group, array, damage):
    chunk = _first_chunk(store, group, array)
    key = chunk.relative_to(store / group / array).as_posix()
    _flip(chunk) if damage == "corrupt" else chunk.unlink()
    rc, text = _info("--verify", store)
    assert rc == 1 and f"{damage.upper():<10} {group}/{array} chunk {key}" in text
    assert f"verify: 1 problem(s) in group(s) {group}" in text
    log = _run(store)
    assert f"damaged: {group}" in log
    assert f"group {group!r} is damaged ({damage.upper()} {group}/{array} chunk {key}" in log
    assert "removed, rebuilding it" in log
    assert _chunks(store, group) == done[1][group]
    assert _info("--verify", store)[0] == 0


def test_damage_in_a_group_this_run_does_not_write_stops_it_clearly(store):
    chunk = _first_chunk(store, "raw", "projections")
    _flip(chunk)
    with pytest.raises(io.StoreCorruptError) as err:
        _run(store, steps=["preprocess"])
    text = str(err.value)
    assert "damaged group(s) that this run does not write: raw: CORRUPT raw/projections" in text
    assert "spectrotomo info --verify STORE" in text
    assert (store / "raw").is_dir() and not io.verify_store(store).ok  # nothing removed


def test_a_run_stopped_between_steps_is_reported_incomplete(tmp_path, monkeypatch):
    from spectrotomo.pipeline import _run as run_module

    store = tmp_path / "s.zarr"

    def killed(ctx):
        raise KeyboardInterrupt  # a run stopped after acquire, before preprocess wrote

    monkeypatch.setitem(run_module.STEPS, "preprocess", (killed, ("od",)))
    with pytest.raises(KeyboardInterrupt):
        _run(store)
    rc, text = _info(store)
    assert rc == 1
    assert "INCOMPLETE: the run stopped before step(s) preprocess finished" in text
    assert "all groups complete (run incomplete)" in text  # every group there is complete
    record = json.loads((store / "zarr.json").read_text())["attributes"]["spectrotomo_run"]
    assert record["steps"] == {"acquire": "done", "preprocess": "pending"}
    monkeypatch.undo()
    _run(store)
    rc, text = _info(store)
    assert rc == 0 and "INCOMPLETE" not in text
