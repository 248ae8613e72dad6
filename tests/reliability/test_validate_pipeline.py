"""Warnings reach run.log and the report summary; long solves log progress and
accept a time cap that is recorded (never a silent early stop). Chunk progress
lines come from ``run_tasks`` (tests/pipeline)."""

from __future__ import annotations

import inspect
import json
import shutil

import pytest

from spectrotomo import io
from spectrotomo.pipeline import run_pipeline
from spectrotomo.pipeline._config import config_from_dict
from spectrotomo.pipeline.steps import reconstruct as recon_step
from spectrotomo.recon import reconstruct_joint


def _config(store, **reconstruct):
    return config_from_dict({"input": {"path": "simulate:tiny"}, "output": {"store": str(store),
                             "figures": False}, "preprocess": {"align": False},
                             "reconstruct": reconstruct})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    run_pipeline(_config(root / "p.zarr"), steps=["acquire", "preprocess"], log=lambda m: None)
    return root / "p.zarr"


def test_validation_warning_in_run_log_and_summary(tmp_path):
    steps = ["acquire", "preprocess", "reconstruct", "quantify", "segment", "profile", "report"]
    result = run_pipeline(_config(tmp_path / "s.zarr", algorithm="fbp", iterations=5),
                          steps=steps,
                          report_dir=tmp_path / "rep", log=lambda m: None)
    expected = "[reconstruct] iterations = 5 is ignored: algorithm = 'fbp' is not iterative"
    assert any(expected in w for w in result["warnings"])
    assert expected in (tmp_path / "rep" / "run.log").read_text()
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert any(expected in w for w in summary["warnings"])


def test_time_capped_solves_are_logged_and_recorded(tmp_path, prepared, monkeypatch):
    store = tmp_path / "c.zarr"
    shutil.copytree(prepared, store)
    monkeypatch.setattr(recon_step, "PROGRESS_EVERY_S", 0.0)  # every line, for the test
    lines = []
    result = run_pipeline(_config(store, algorithm="sirt", iterations=10**6, max_seconds=0.01),
                          steps=["reconstruct"], report_dir=tmp_path / "rep", log=lines.append)
    assert io.is_complete(store, "recon")
    stopped = io.read_group(store, "recon").attrs["stopped_early"]
    # 8 energies x 2 chunks of 16 rows
    assert stopped.startswith("16 of 16 chunk solves stopped at [reconstruct] max_seconds = "
                              "0.01 s after ")
    assert stopped.endswith("of 1000000 iterations")
    log = (tmp_path / "rep" / "run.log").read_text()
    assert f"reconstruct: warning: {stopped}" in log
    assert any(stopped in w for w in result["warnings"])
    assert any("iteration 1 of 1000000" in line for line in lines)


def test_auto_resolves_before_warning(tmp_path, prepared):
    """``auto`` is joint at -65..+65 deg: iterations and max_seconds apply; FBP ignores both."""
    result = run_pipeline(_config(prepared, iterations=3, max_seconds=5.0), steps=["reconstruct"],
                          dry_run=True, log=lambda m: None)
    assert result["warnings"] == []
    result = run_pipeline(_config(prepared, algorithm="fbp", max_seconds=5.0),
                          steps=["reconstruct"], dry_run=True, log=lambda m: None)
    assert result["warnings"] == ["[reconstruct] max_seconds = 5 is ignored: algorithm = 'fbp'; "
                                  "it caps joint, sirt, cgls and tv solves"]


def test_progress_is_throttled(tmp_path, prepared):
    store = tmp_path / "t.zarr"
    shutil.copytree(prepared, store)
    lines = []
    run_pipeline(_config(store, algorithm="sirt", iterations=3), steps=["reconstruct"],
                 report_dir=tmp_path / "rep", log=lines.append)
    assert not any(" iteration " in line for line in lines)  # short solves stay quiet
    assert "stopped_early" not in io.read_group(store, "recon").attrs


def test_time_capped_joint_solves_are_logged_and_recorded(tmp_path, prepared, monkeypatch):
    """The default limited-angle solver (auto -> joint) obeys the same cap."""
    store = tmp_path / "j.zarr"
    shutil.copytree(prepared, store)
    monkeypatch.setattr(recon_step, "PROGRESS_EVERY_S", 0.0)
    lines = []
    result = run_pipeline(_config(store, max_seconds=0.01), steps=["reconstruct"],
                          report_dir=tmp_path / "rep", log=lines.append)
    recon = io.read_group(store, "recon")
    assert recon["mu"].attrs["algorithm"] == "joint"
    # 2 chunks of 16 rows (all energies each); 32 columns: one coarse level + the full
    # grid, one iteration of each done once the cap is reached
    total = sum(inspect.signature(reconstruct_joint).parameters[k].default
                for k in ("coarse_iterations", "iterations", "debias_iterations"))
    assert recon.attrs["stopped_early"] == ("2 of 2 chunk solves stopped at [reconstruct] "
                                            f"max_seconds = 0.01 s after 2-2 of {total} "
                                            "iterations")
    assert any(recon.attrs["stopped_early"] in w for w in result["warnings"])
    assert any(f"all energies, rows 0-15: iteration 1 of {total}" in line for line in lines)
    assert float(recon["mu"].max()) > 0  # a full-grid result, not an empty one
