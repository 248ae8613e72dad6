import pytest

from spectrotomo.pipeline._plan import (
    INTERPRETER_BYTES,
    MemoryPlanError,
    check_plan,
    format_plan,
    plan_run,
)


def test_plan_scales_with_chunk_rows_and_refuses_over_limit():
    small = plan_run(n_energies=8, n_angles=131, ny=256, nx=256, chunk_rows=8, n_xanes=25)
    large = plan_run(n_energies=8, n_angles=131, ny=256, nx=256, chunk_rows=128, n_xanes=25)
    peak = {r.step: r.peak_bytes - INTERPRETER_BYTES for r in small}
    assert {r.step for r in small} == {"preprocess", "reconstruct", "quantify", "valence", "segment"}
    for step in ("reconstruct", "quantify"):  # one task per chunk of rows
        grown = next(r for r in large if r.step == step).peak_bytes - INTERPRETER_BYTES
        assert grown > 8 * peak[step], step
    check_plan(small, memory_limit_gb=8)
    with pytest.raises(MemoryPlanError, match="reconstruct"):
        check_plan(large, memory_limit_gb=0.3)
    assert "peak/worker" in format_plan(small)


def test_output_size_of_reconstruction_is_exact():
    rows = plan_run(n_energies=2, n_angles=10, ny=4, nx=6, chunk_rows=2)
    rec = next(r for r in rows if r.step == "reconstruct")
    assert rec.output_bytes == 2 * 4 * 6 * 6 * 4


def test_chunked_steps_fit_a_limit_smaller_than_the_volume():
    """Reconstruct and quantify stream chunks: a volume 3x the per-worker limit plans fine."""
    rows = plan_run(n_energies=8, n_angles=131, ny=256, nx=512, chunk_rows=8)
    volume = next(r for r in rows if r.step == "reconstruct").output_bytes
    limit_gb = volume / 3 / 2**30
    check_plan([r for r in rows if r.step in ("reconstruct", "quantify")], limit_gb)
    with pytest.raises(MemoryPlanError, match="segment"):  # whole-volume step, in one process
        check_plan(rows, limit_gb)
