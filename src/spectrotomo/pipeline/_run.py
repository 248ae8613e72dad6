"""Run the pipeline: plan, lock the store, run each step (skipping complete ones), log.

The store lock refuses a second concurrent run of the same store (and takes
over the lock of a run killed on this host, saying so in the log); steps whose
group is complete are skipped, so rerunning after a kill resumes.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Iterable

from .. import io
from ._compute import limit_malloc_arenas, local_dask, open_client, uses_cluster, uses_gpu
from ._config import Config
from .._backend import blas_single_thread, host_threads
from ._monitor import StepMonitor, StepRecord, dask_progress, stamped
from ._plan import (check_plan, format_plan, plan_run, preprocess_in_flight, report_chunk_bytes,
                    report_in_flight, report_thread_bytes, step_block_threads)
from ._context import RunContext
from ._validate import validate_run
from .steps import CHUNKED_STEPS, STEPS
from .steps.acquire import SIMULATED_GROUPS, input_shape
from .steps.preprocess import is_phase_run, od_chunks
from .steps.quantify import quantify_threads
from .steps.reconstruct import joint_task_threads, planned_chunk_rows
from .steps.report import write_report

__all__ = ["run", "plan_for", "ALL_STEPS"]

ALL_STEPS = (*STEPS, "report")


#: Groups a step writes besides its STEPS groups (acquire of a simulated input): a
#: damaged one makes the step run again.
_ALSO_WRITES = {"acquire": tuple(g for g in SIMULATED_GROUPS.values() if g != "raw")}


def _writes(names) -> set[str]:
    """Every group the steps ``names`` write."""
    return {g for n in names if n in STEPS for g in (*STEPS[n][1], *_ALSO_WRITES.get(n, ()))}


def plan_for(config: Config, shape: tuple[int, int, int, int], n_xanes: int = 0,
             n_distances: int = 0):
    """Memory plan for a raw tilt series of ``shape`` (energy, angle, y, x), with
    ``n_distances`` propagation distances per angle for a holotomography (0: none)."""
    n_e, n_a, ny, nx = shape
    prep = preprocess_in_flight(n_energies=n_e, n_angles=n_a, ny=ny, nx=nx,
                                threads=host_threads(),
                                memory_limit_gb=config.compute.memory_limit_gb)
    rows = planned_chunk_rows(config, shape)
    return plan_run(n_energies=n_e, n_angles=n_a, ny=ny, nx=nx, prep_energies=prep,
                    chunk_rows=rows,
                    algorithm=config.reconstruct.algorithm, n_xanes=n_xanes,
                    n_workers=config.compute.n_workers, gpu=uses_gpu(config.compute),
                    seg_chunk=config.segmentation.chunk,
                    seg_threads=_block_threads(config, ny=ny, nx=nx),
                    seg_slabs=not uses_cluster(config.compute),
                    recon_tasks=joint_task_threads(config.compute),
                    quant_tasks=quantify_threads(config.compute, n_energies=n_e, nx=nx,
                                                 rows=rows, slabs=-(-ny // rows)),
                    report_threads=_report_threads(config, shape),
                    n_distances=n_distances,
                    od_angles=od_chunks(shape, config.reconstruct.chunk_rows)[1])


def _report_threads(config: Config, shape: tuple[int, int, int, int]) -> int:
    """Threads of the report step for a raw series of ``shape`` (a ``ny`` x ``nx`` x ``nx``
    volume in the planned chunks, as
    :func:`~spectrotomo.pipeline.steps.report.write_report` chooses them)."""
    ny, nx = shape[2], shape[3]
    chunk = report_chunk_bytes(ny=ny, nx=nx, rows=planned_chunk_rows(config, shape),
                               seg_chunk=config.segmentation.chunk)
    per_thread = report_thread_bytes(chunk_bytes=chunk, plane_voxels=nx * nx + 2 * ny * nx)
    return report_in_flight(thread_bytes=per_thread, threads=host_threads(),
                            memory_limit_gb=config.compute.memory_limit_gb)


def _block_threads(config: Config, *, ny: int, nx: int) -> int:
    """Threads running segment/profile blocks in one process: a worker's, else this
    host's, as many as fit the memory limit (as the steps choose them)."""
    if uses_cluster(config.compute):
        return config.compute.threads_per_worker
    return step_block_threads(config, (ny, nx, nx))


def _input_shape(config: Config, store: Path) -> tuple[tuple[int, ...], int, int]:
    """((energy, angle, y, x), XANES energies, propagation distances: 0 unless the run
    retrieves phase) of the input: the store's raw group, else the configured input."""
    groups = io.list_groups(store) if Path(store).exists() else {}
    if "raw" in groups:
        raw = io.read_group(store, "raw")
        n_x = io.read_group(store, "raw_xanes").sizes["energy"] if "raw_xanes" in groups else 0
        sizes = raw["projections"].sizes  # holotomography adds a distance dim
        n_d = sizes.get("distance", 1) if is_phase_run(config, raw) else 0
        return tuple(sizes[d] for d in ("energy", "angle", "y", "x")), n_x, n_d
    if "od" in groups:  # a store prepared elsewhere, starting at the reconstruction
        return tuple(io.read_group(store, "od")["od"].shape), 0, 0
    shape, n_x = input_shape(config)
    n_d = max(1, len(config.phase.distances_m or [])) if is_phase_run(config) else 0
    return shape, n_x, n_d


def _also_to_file(log: Callable[[str], None], path: Path) -> Callable[[str], None]:
    """``log`` that also appends each message, time-stamped (UTC), to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def both(message: str) -> None:
        log(message)
        with open(path, "a") as fh:
            fh.write(stamped(message))

    return both


def run(config: Config, *, steps: Iterable[str] | None = None, dry_run: bool = False,
        report_dir: str | Path | None = None, log: Callable[[str], None] = print) -> dict:
    """Run ``steps`` (default: all) of the pipeline for ``config``.

    Returns a dict with the per-step records and, after the report step, the summary.
    Every log line (plan, cluster, each step's time and peak memory) is also
    appended, time-stamped, to ``<report_dir>/run.log``.
    Before anything is written, :func:`~spectrotomo.pipeline._validate.validate_run`
    checks the whole config and the input's metadata: it raises one
    :class:`~spectrotomo.pipeline.ConfigError` listing every problem, and its
    warnings go to the log (run.log) and ``results["warnings"]`` (the report's
    summary). Raises :class:`~spectrotomo.pipeline._plan.MemoryPlanError`
    before any work when the plan exceeds ``config.compute.memory_limit_gb``.
    """
    store = Path(config.output.store)
    report_dir = Path(report_dir) if report_dir else store.with_suffix("").parent / (
        store.with_suffix("").name + "-report")
    names = list(steps or ALL_STEPS)
    unknown = [s for s in names if s not in ALL_STEPS]
    if unknown:
        raise ValueError(f"unknown step(s) {unknown}; expected any of {list(ALL_STEPS)}")
    # before any thread: the validation's zarr reads start zarr's I/O threads, whose
    # arenas later threads shared (see _malloc.limit_malloc_arenas)
    limit_malloc_arenas()
    warnings = validate_run(config, steps=names, store=store)  # refuses before any write
    shape, n_xanes, n_distances = _input_shape(config, store)
    plan = plan_for(config, shape, n_xanes, n_distances)
    log("memory plan (per worker):\n" + format_plan(plan))
    check_plan([row for row in plan if row.step in names], config.compute.memory_limit_gb)
    if dry_run:
        for message in warnings:
            log(f"warning: {message}")
        return {"plan": plan, "records": [], "warnings": warnings}
    log = _also_to_file(log, report_dir / "run.log")
    log(f"run of steps {names} on store {store}")
    for message in warnings:
        log(f"warning: {message}")
    ctx = RunContext(config=config, store=store, report_dir=report_dir, log=log)
    ctx.results["warnings"] = list(warnings)
    records: list[StepRecord] = []
    # a killed run's stale lock is taken over (and logged)
    # local_dask: this process's own dask work (whole-volume steps, lazy reads) stays on
    # the threaded scheduler even when the caller holds a default distributed Client;
    # only run_tasks sends chunk tasks to [compute]'s cluster
    # BLAS on one thread: the steps parallelise with their own pools (host_threads), so
    # OpenBLAS's threads only oversubscribe the cores and spin on small products
    # (demo at load ~20: reconstruct 21.4 -> 11.3 CPU s, the run 72 -> 62, same outputs)
    with io.store_lock(store, log=log), ExitStack() as cluster, local_dask(), \
            blas_single_thread():
        # record the planned steps; verify complete groups before skipping them
        io.record_run_steps(store, names)
        rebuilt = set(io.drop_damaged_groups(store, rebuildable=_writes(names), log=log))
        for name in names:
            if name == "report":
                with StepMonitor("report") as mon:
                    ctx.results["summary"] = write_report(ctx)
                records.append(mon.record)
                log(mon.record.line())
                io.record_step_done(store, name)
                continue
            fn, groups = STEPS[name]
            done = Path(store).exists() and all(io.is_complete(store, g) for g in groups) \
                and not rebuilt.intersection(_writes([name]))
            if done and not config.output.overwrite:
                records.append(StepRecord(name, 0.0, 0.0, skipped=True))
                log(records[-1].line())
                io.record_step_done(store, name)
                continue
            if name in CHUNKED_STEPS and ctx.client is None:  # start a cluster only if used
                ctx.client = cluster.enter_context(open_client(config.compute, log))
            with StepMonitor(name, children=ctx.client is not None) as mon, \
                    dask_progress(name, log):
                fn(ctx)
            records.append(mon.record)
            log(mon.record.line())
            io.record_step_done(store, name)
    ctx.results["records"] = records
    return ctx.results
