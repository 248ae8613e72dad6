import pytest

from spectrotomo.pipeline._plan import (
    INTERPRETER_BYTES,
    MemoryPlanError,
    check_plan,
    fit_chunk_rows,
    format_plan,
    plan_run,
)
from spectrotomo.pipeline import run_pipeline
from spectrotomo.pipeline._config import config_from_dict


def test_plan_scales_with_chunk_rows_and_refuses_over_limit():
    small = plan_run(n_energies=8, n_angles=131, ny=256, nx=256, chunk_rows=8, n_xanes=25)
    large = plan_run(n_energies=8, n_angles=131, ny=256, nx=256, chunk_rows=128, n_xanes=25)
    peak = {r.step: r.peak_bytes - INTERPRETER_BYTES for r in small}
    assert {r.step for r in small} == {"preprocess", "reconstruct", "quantify", "valence",
                                       "segment", "profile", "report"}
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


def test_segment_and_profile_plan_blocks_not_the_volume():
    """8 energies x 131 angles x 2048^2: segment/profile were 256 GiB (whole volume), now
    blocks of 128^3; they do not grow with the volume and fit 16 GiB per worker."""
    def peak(n, step, chunk=128):
        rows = plan_run(n_energies=8, n_angles=131, ny=n, nx=n, chunk_rows=8, seg_chunk=chunk)
        return next(r for r in rows if r.step == step).peak_bytes - INTERPRETER_BYTES

    for step in ("segment", "profile"):
        assert peak(2048, step) == peak(512, step) < 16 * 2**30
        assert peak(2048, step, chunk=64) < peak(2048, step) / 3


def test_segment_plan_counts_one_block_per_thread():
    """Blocks run on threads, each holding its own work arrays: slabs of the 128^3 cube
    (32 rows at least), so up to 4 threads hold one cube's worth and 16 hold 4 cubes; a
    dask worker's tasks are whole cubes, one per thread."""
    def peak(threads, slabs=True):
        rows = plan_run(n_energies=8, n_angles=131, ny=2048, nx=2048, chunk_rows=8,
                        seg_threads=threads, seg_slabs=slabs)
        return next(r for r in rows if r.step == "segment").peak_bytes - INTERPRETER_BYTES

    assert peak(4) == peak(2) == peak(1)
    assert peak(16) == 4 * peak(1)
    assert peak(4, slabs=False) == 4 * peak(1)
    assert peak(16, slabs=False) + INTERPRETER_BYTES < 16 * 2**30


def test_blocks_in_flight_are_one_cube_on_small_and_large_volumes():
    """The same bytes in flight on 128^3 (one cube, its threads inside it) as on 256^3 (2
    of 16 slabs)."""
    from spectrotomo.pipeline._plan import blocks_in_flight

    for n in (128, 256, 2048):
        assert blocks_in_flight(threads=2, ny=n, nx=n, chunk=128) == 1.0
    assert blocks_in_flight(threads=2, ny=256, nx=256, chunk=128, slabs=False) == 2.0
    assert blocks_in_flight(threads=2, ny=128, nx=256, chunk=128) == 1.0  # 2 of 8 slabs
    assert blocks_in_flight(threads=4, ny=128, nx=256, chunk=128) == 1.0  # 4 of 16 slabs
    assert blocks_in_flight(threads=16, ny=256, nx=256, chunk=128) == 4.0  # 32-row slabs


def test_report_row_reads_chunks_not_the_volume():
    """8 energies x 131 angles x 2048^2 (one DX file per energy), as ``--dry-run`` plans
    it: the report has its row, within 16 GiB per worker (a store chunk, three planes and
    a bounded sample per thread), a fraction of the volumes it reports on."""
    from spectrotomo.pipeline import Config
    from spectrotomo.pipeline._run import plan_for

    config = Config()
    config.compute.memory_limit_gb = 16
    rows = {r.step: r for r in plan_for(config, (8, 131, 2048, 2048))}
    report = rows["report"]
    assert report.peak_bytes <= 16 * 2**30
    assert report.peak_bytes < rows["segment"].output_bytes / 10  # read whole: > 80 GiB
    assert "report" in format_plan(list(rows.values()))


def test_report_chunk_is_bounded_whatever_the_detector_size():
    """The volume groups' chunks are one element x rows x a y/x tile: the report's largest
    chunk does not grow with the field (it was 4 elements x rows x the whole plane, 1 GiB
    at 2048^2 and 16 rows), so neither does its per-thread memory but for the planes."""
    from spectrotomo.pipeline._plan import report_chunk_bytes
    from spectrotomo.pipeline.steps._layout import TILE_PX

    tile = 16 * TILE_PX**2 * 4  # float32, one element, 16 rows
    assert report_chunk_bytes(ny=2048, nx=2048, rows=16, seg_chunk=32) == tile
    assert report_chunk_bytes(ny=512, nx=512, rows=16, seg_chunk=32) == tile
    assert report_chunk_bytes(ny=128, nx=128, rows=16, seg_chunk=32) == 16 * 128**2 * 4
    assert report_chunk_bytes(ny=2048, nx=2048, rows=16, seg_chunk=128) == 128**3 * 4
    small, big = (plan_run(n_energies=8, n_angles=131, ny=n, nx=n, chunk_rows=16)[-1]
                  for n in (512, 2048))
    planes = 3 * (2048**2 - 512**2) * 8  # float64, the report thread's three planes
    assert big.peak_bytes - small.peak_bytes == planes


def test_report_threads_fit_the_memory_limit():
    from spectrotomo.pipeline._plan import report_in_flight, report_thread_bytes

    per_thread = report_thread_bytes(chunk_bytes=2**30, plane_voxels=3 * 2048**2)
    fit = report_in_flight(thread_bytes=per_thread, threads=16, memory_limit_gb=16)
    assert 1 < fit < 16  # as many as fit: one more would not
    assert INTERPRETER_BYTES + fit * per_thread <= 16 * 2**30 < \
        INTERPRETER_BYTES + (fit + 1) * per_thread
    assert report_in_flight(thread_bytes=per_thread, threads=2, memory_limit_gb=16) == 2
    assert report_in_flight(thread_bytes=per_thread, threads=16, memory_limit_gb=1) == 1
    one = plan_run(n_energies=8, n_angles=131, ny=2048, nx=2048, chunk_rows=16)
    four = plan_run(n_energies=8, n_angles=131, ny=2048, nx=2048, chunk_rows=16,
                    report_threads=4)
    assert one[-1].step == four[-1].step == "report"
    assert four[-1].peak_bytes - INTERPRETER_BYTES == 4 * (one[-1].peak_bytes - INTERPRETER_BYTES)


def test_block_threads_fit_the_memory_limit_and_one_block_keeps_every_thread():
    from spectrotomo.pipeline._plan import block_threads, segment_block_bytes

    # one 128^3 volume: 4 slabs, the idle threads work inside them, no second cube in memory
    assert block_threads(threads=16, ny=128, nx=128, chunk=128, memory_limit_gb=8) == 16
    rows = plan_run(n_energies=8, n_angles=131, ny=128, nx=128, chunk_rows=16, seg_threads=16)
    seg_row = next(r for r in rows if r.step == "segment")
    assert seg_row.peak_bytes < segment_block_bytes(128) + 0.3 * 2**30  # one block + base
    # a 2048^3 volume on 16 cores: as many slabs as fit the limit (the demo on a 16-core
    # node was refused at 12.25 GiB with whole cubes per thread, device machine, 2026-12-04)
    for limit in (8, 2):
        n = block_threads(threads=16, ny=2048, nx=2048, chunk=128, memory_limit_gb=limit)
        assert 1 <= n <= 16
        rows = plan_run(n_energies=8, n_angles=131, ny=2048, nx=2048, chunk_rows=16,
                        algorithm="auto", seg_threads=n)
        assert all(r.peak_bytes <= limit * 2**30 for r in rows
                   if r.step in ("segment", "profile"))
    assert n < 16  # 2 GiB: fewer than 16 threads' slabs fit
    assert block_threads(threads=16, ny=2048, nx=2048, chunk=128, memory_limit_gb=0.5) == 1


def test_reconstruct_chunk_rows_shrink_to_fit_the_memory_limit():
    from spectrotomo.pipeline import Config
    from spectrotomo.pipeline._plan import fit_chunk_rows, recon_task_bytes
    from spectrotomo.pipeline._run import plan_for

    kw = dict(algorithm="auto", n_energies=8, n_angles=131, ny=2048, nx=2048, tasks=2)
    rows = fit_chunk_rows(16, memory_limit_gb=16, **kw)
    assert 1 <= rows < 16
    fits = recon_task_bytes(rows=rows, **{k: v for k, v in kw.items() if k != "ny"})
    over = recon_task_bytes(rows=rows + 1, **{k: v for k, v in kw.items() if k != "ny"})
    assert fits <= 16 * 2**30 - INTERPRETER_BYTES < over
    assert fit_chunk_rows(16, memory_limit_gb=16, **{**kw, "ny": 128, "nx": 128}) == 16
    # the 2048^2 x 8 energies plan keeps reconstruct within the limit (it was 37 GiB)
    cfg = Config()
    cfg.compute.memory_limit_gb = 16
    recon = next(r for r in plan_for(cfg, (8, 131, 2048, 2048)) if r.step == "reconstruct")
    assert recon.peak_bytes <= 16 * 2**30


def test_a_resumed_reconstruct_keeps_the_rows_its_first_run_chose(tmp_path):
    from types import SimpleNamespace

    import numpy as np

    from spectrotomo import io
    from spectrotomo.pipeline import Config
    from spectrotomo.pipeline.steps.reconstruct import _mu_chunks

    cfg = Config()
    store = tmp_path / "s.zarr"
    ctx = SimpleNamespace(config=cfg, store=store, overwrite=False)
    assert _mu_chunks(ctx, 8, 131, 64, 64) == (1, 16, 64, 64)  # nothing stored: chunk_rows fits
    io.init_array(store, "recon", "mu", shape=(8, 64, 64, 64), dtype=np.float32,
                  chunks=(1, 4, 64, 64), dims=("energy", "z", "y", "x"))
    assert _mu_chunks(ctx, 8, 131, 64, 64) == (1, 4, 64, 64)  # an unfinished write's layout
    ctx.overwrite = True
    assert _mu_chunks(ctx, 8, 131, 64, 64) == (1, 16, 64, 64)
    # the configured algorithm, as the plan: "auto" costed as the joint solver; y/x in tiles
    cfg.compute.memory_limit_gb = 16
    chunks = _mu_chunks(ctx, 8, 361, 2048, 2048)
    assert chunks[1] == fit_chunk_rows(16, algorithm="joint", n_energies=8, n_angles=361,
                                       ny=2048, nx=2048, tasks=rows_tasks(cfg),
                                       memory_limit_gb=16)
    assert chunks[::2] == (1, 256) and chunks[3] == 256


def rows_tasks(cfg):
    from spectrotomo.pipeline.steps.reconstruct import joint_task_threads

    return joint_task_threads(cfg.compute)

def test_preprocess_fits_16_gib_at_2048_squared():
    """Issue #19: 8 energies x 131 angles x 2048^2 at memory_limit_gb = 16 (the former
    plan: 26.98 GiB, one energy's stack 13 times; measured more)."""
    from spectrotomo.pipeline import Config
    from spectrotomo.pipeline._run import plan_for

    cfg = Config()
    cfg.compute.memory_limit_gb = 16
    rows = plan_for(cfg, (8, 131, 2048, 2048))
    prep = next(r for r in rows if r.step == "preprocess")
    check_plan([prep], 16)
    stack = 131 * 2048 ** 2 * 4
    assert prep.peak_bytes < 8 * stack, prep.peak_bytes / stack  # 2 energies; was 13 stacks for 1


@pytest.mark.parametrize("limit", [4, 8, 12, 16, 32])
def test_preprocess_in_flight_plans_within_the_limit(limit):
    from spectrotomo.pipeline._plan import _prep_peak, preprocess_in_flight

    for n in (512, 1024, 2048):
        k = preprocess_in_flight(n_energies=8, n_angles=131, ny=n, nx=n, threads=8,
                                 memory_limit_gb=limit)
        planned = _prep_peak(8, 131, n, n, k) + INTERPRETER_BYTES
        assert k == 1 or planned <= limit * 2**30, (n, k, planned / 2**30)
        assert k == 8 or _prep_peak(8, 131, n, n, k + 1) + INTERPRETER_BYTES > limit * 2**30


def test_phase_preprocess_plans_its_chunks_of_angles():
    """A holotomography run (1 energy x 4 distances x 1500 angles x 2048^2) plans its
    streamed pass 1 (store block + one chunk's I/I0 and CTF work, measured 18.3x) within
    16 GiB; the row names the distances. The later passes on the mean still hold the
    23.4 GiB stack (not streamed yet): the plan says so by exceeding the limit and the
    run is refused before any work instead of dying (25.1 GiB planned)."""
    from spectrotomo.pipeline import Config
    from spectrotomo.pipeline._plan import phase_pass_bytes
    from spectrotomo.pipeline._run import plan_for

    frame = 2048 ** 2 * 4
    pass1 = phase_pass_bytes(1, 4, 1500, 2048, 2048, store_angles=128)
    # 128-angle store block, 2 angles x 4 distances of I/I0 and 19x its CTF work
    assert pass1 == pytest.approx((128 + 1 + 8 + 19 * 8) * frame)
    assert pass1 < 6 * 2**30 and pass1 < 1500 * frame / 4
    # one distance: 8-angle chunks, whose normalisation (11.5x the 10 frames with their
    # halo) outweighs Paganin's 7.5x
    paganin = phase_pass_bytes(1, 1, 1500, 2048, 2048, ctf=False, store_angles=128)
    assert paganin == pytest.approx((128 + 1 + 8 + 11.5 * 10) * frame)
    cfg = Config()
    cfg.compute.memory_limit_gb = 16
    cfg.phase.method = "ctf"
    rows = plan_for(cfg, (1, 1500, 2048, 2048), 0, 4)
    prep = next(r for r in rows if r.step == "preprocess")
    assert "4 distance(s), chunks of angles" in prep.chunking
    assert prep.peak_bytes > 1500 * frame  # the mean's stack (passes 2-3)
    with pytest.raises(MemoryPlanError, match="preprocess"):
        check_plan([prep], 16)
    # 1024^2: the same scan fits (one 5.9 GiB stack for the mean: a single energy's
    # array is the sum, no copy), and pass 1 (256-angle store blocks) is not what bounds it
    small = next(r for r in plan_for(cfg, (1, 1500, 1024, 1024), 0, 4)
                 if r.step == "preprocess")
    check_plan([small], 8)
    pass1_small = phase_pass_bytes(1, 4, 1500, 1024, 1024, store_angles=256)
    assert small.peak_bytes > 1500 * 1024 ** 2 * 4 > pass1_small


def test_run_plans_the_distances_of_a_phase_input(tmp_path):
    """``run --dry-run`` takes the distances from the raw group (or the config before
    acquire) and plans the phase branch."""
    from spectrotomo.pipeline._run import _input_shape

    cfg = config_from_dict({
        "input": {"path": "simulate-holo:small"},
        "output": {"store": str(tmp_path / "holo.zarr")},
        "phase": {"delta_beta": 56.0, "distances_m": [1e-3, 1.6e-3, 2.5e-3], "method": "ctf"}})
    shape, n_x, n_d = _input_shape(cfg, tmp_path / "holo.zarr")  # nothing acquired yet
    assert n_d == 3 and n_x == 0 and len(shape) == 4
    run_pipeline(cfg, steps=["acquire"], log=lambda s: None)
    assert _input_shape(cfg, tmp_path / "holo.zarr")[1:] == (0, 3)
    lines = []
    run_pipeline(cfg, steps=["preprocess"], dry_run=True, log=lines.append)
    assert "3 distance(s), chunks of angles" in "\n".join(lines)
    cfg.phase.method = "none"  # an attenuation input plans no distances
    cfg.input.path = "simulate:small"
    assert _input_shape(cfg, tmp_path / "other.zarr")[2] == 0


def test_center_work_is_planned_and_bounded_whatever_the_scan():
    """The centre search's work beside the mean ("com", "opposite", "vo", "halves") does
    not grow with the angles: 1500 angles of 2048^2 plan what 131 do ("halves"' floor,
    one candidate's 24 rows of 2048^2 slices at 100 B/px, 9.4 GiB); at 512 columns the
    batches of "halves" keep it within its 512 MiB budget (unbatched: ~16 GiB)."""
    from spectrotomo.pipeline._plan import center_work_bytes

    assert center_work_bytes(1500, 2048, 2048) == center_work_bytes(131, 2048, 2048)
    assert center_work_bytes(1500, 2048, 2048) == pytest.approx(24 * 2048 ** 2 * 100)
    assert center_work_bytes(131, 512, 512) <= 614 * 2**20
    # measured (tracemalloc, gpu_bench/center_memory_bench.py): opposite 288 MiB at
    # 360 x 256 x 2048, vo ~205 MiB at 360 x 32 x 512: the plan bounds both
    assert center_work_bytes(360, 256, 2048) > 288 * 2**20
    assert center_work_bytes(360, 32, 512) > 205 * 2**20


def test_quantify_slabs_at_once_fit_the_memory_limit():
    """In one process quantify computes a slab per host thread, as many as the memory limit
    holds (the plan's row counts them); on a cluster one per worker thread."""
    from spectrotomo.pipeline._config import config_from_dict
    from spectrotomo.pipeline._plan import quantify_slab_bytes
    from spectrotomo.pipeline.steps.quantify import quantify_threads

    def threads(limit, cluster="none", slabs=100):
        compute = config_from_dict({"compute": {"memory_limit_gb": limit,
                                                "cluster": cluster}}).compute
        return quantify_threads(compute, n_energies=8, nx=2048, rows=6, slabs=slabs)

    per = quantify_slab_bytes(n_energies=8, nx=2048, rows=6)
    assert threads(16, slabs=1) == 1
    assert threads(0.5) == 1 and threads(16, cluster="local") == 1
    fit = threads(64)
    assert 1 <= fit and INTERPRETER_BYTES + fit * per <= 64 * 2**30
    one = plan_run(n_energies=8, n_angles=131, ny=2048, nx=2048, chunk_rows=6)
    two = plan_run(n_energies=8, n_angles=131, ny=2048, nx=2048, chunk_rows=6, quant_tasks=2)
    row = [next(r for r in rows if r.step == "quantify") for rows in (one, two)]
    assert row[1].peak_bytes - INTERPRETER_BYTES == 2 * (row[0].peak_bytes - INTERPRETER_BYTES)
    assert "2 task(s) at once" in row[1].chunking
