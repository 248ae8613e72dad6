"""The ``reconstruct`` step: od -> recon, slice-parallel, streamed chunk by chunk
through the store.

Each chunk is one task (:func:`~spectrotomo.pipeline._compute.run_tasks`): it
reads its own input block from the store, computes, and writes its own
chunk-aligned region with a done marker; the coordinator only creates the
arrays, lists the missing regions and marks the group complete. So memory per
task is one chunk (whatever the volume size), any dask worker that sees the
store can take a task, and a killed run resumes at the first unwritten chunk.
"""

from __future__ import annotations

import time

import numpy as np

from ... import io
from ..._backend import cupy_available, host_threads, to_numpy
from ..._model import volume
from .._compute import run_tasks, uses_cluster, uses_gpu
from .._plan import fit_chunk_rows
from ._layout import kept_chunks, volume_chunks

__all__ = ["reconstruct", "reconstruct_region", "reconstruct_rows", "resolve_algorithm",
           "log_resume", "AUTO_FULL_RANGE_DEG", "PROGRESS_EVERY_S",
           "XANES_COMPONENTS", "XANES_SOLVER_OPTIONS", "xanes_components", "joint_options"]

#: ``algorithm = "auto"``: scans spanning at least this range (deg) are reconstructed
#: with FBP; narrower (limited-angle) scans with the joint regularised solver. At
#: -65..+65 deg FBP puts mass into the missing wedge (amounts 25-30 % low, particles
#: 8-20 voxels long); the joint solver is within ~3 % at 5-11x FBP's CPU time
#: (gpu_bench/RESULTS.recon.md, limited_angle_bench).
AUTO_FULL_RANGE_DEG = 170.0


#: Spectral components the joint solver keeps per XANES edge of a XANES tomography
#: (fit-then-reconstruct: the leading components of the noise-whitened energies,
#: ``reconstruct_joint(components=)``); the default of ``[reconstruct] xanes_components``.
#: Measured (valence3d_bench, gpu_bench/RESULTS.spectra.md): k = 4-8 equal within 0.0004
#: interior Mn valence MAE, all 25 no better at ~12x the time.
XANES_COMPONENTS = 6

#: Options of the joint solve of a XANES tomography (a dual-energy series keeps the
#: solver's defaults, tuned on its amounts and classes). Why: the interior valence error
#: is the missing wedge, not noise -- ideal data (seed 0, same solver and LCF) 0.032 at
#: -65..+65 deg, 0.010 at -90..+89 deg; 2e4 photons add 0.002 -- seen as stripes of
#: valence error along the missing direction. The wedge is filled on the coarse levels,
#: and a XANES scan's chemistry (a valence gradient under the surface, grains of another
#: valence) is small next to the structure: it needs more coarse iterations to fill
#: (``coarse_iterations`` 30 -> 60) and keeps more contrast under a weaker TV (``weight``
#: 0.25 -> 0.1) whose extra noise the full grid's larger dual steps remove
#: (``fine_step_ratio`` 100 -> 10). Tuning seeds 0 / 1 / 23 / 57 (in memory, report's
#: rule): interior Mn valence MAE 0.033 / 0.029 / 0.035 / 0.036 -> 0.030 / 0.027 / 0.029 /
#: 0.031 at ~1.3x the solve's CPU time (weight 0.1 alone: -1..-5 %; coarse 100: equal at
#: 1.6x; 200: -0.0005 at 2.5x). Held-out seeds: gpu_bench/RESULTS.spectra.md.
#: The solver's coarse-level support (``support_fraction``, its default 0.3) applies
#: too: on 7 held-out seeds it moved the MAE by -0.003..+0.001 and the mask IoU by
#: +0.002..+0.004 (RESULTS.spectra.md, 2026-12-04), so it is not overridden here.
XANES_SOLVER_OPTIONS = {"weight": 0.1, "coarse_iterations": 60, "fine_step_ratio": 10.0}


def xanes_components(energies, *, per_edge: int = XANES_COMPONENTS) -> int | None:
    """Components of the joint solve for a series at ``energies`` (eV): None (all) unless
    some edge window holds more than ``per_edge`` energies (a XANES scan), whose
    energies then count ``per_edge`` together (``[reconstruct] xanes_components``)."""
    from ...spectra import MIN_XANES_ENERGIES, window_counts

    counts = window_counts(energies)
    extra = sum(max(n - per_edge, 0) for n in counts.values() if n >= MIN_XANES_ENERGIES)
    return len(energies) - extra if extra else None


def joint_options(energies, *, per_edge: int = XANES_COMPONENTS) -> dict:
    """Options of :func:`~spectrotomo.recon.reconstruct_joint` for a series at ``energies``
    (eV): none for a dual-energy series (the solver's defaults); for a XANES tomography
    :data:`XANES_SOLVER_OPTIONS` and ``components`` (:func:`xanes_components`, unless
    ``per_edge`` keeps every energy)."""
    from ...spectra import xanes_elements

    if not xanes_elements(energies):
        return {}
    k = xanes_components(energies, per_edge=per_edge)
    return {**XANES_SOLVER_OPTIONS, **({"components": k} if k else {})}


#: Seconds between progress lines of a long reconstruct step (in-process runs).
PROGRESS_EVERY_S = 30.0


class _ProgressLog:
    """Throttled iteration lines of long solves for the log (in-process runs; the
    chunks done are logged by ``run_tasks``)."""

    def __init__(self, log, every_s: float | None = None):
        self.log = log
        self.every_s = PROGRESS_EVERY_S if every_s is None else every_s
        self.last = time.monotonic()

    def iteration(self, where: str, done: int, n: int, elapsed: float) -> None:
        now = time.monotonic()
        if done < n and now - self.last >= self.every_s:
            self.last = now
            self.log(f"reconstruct: {where}: iteration {done} of {n} ({elapsed:.0f} s)")


def _watch(progress: _ProgressLog | None, where: str):
    """A solver ``progress`` callback that keeps (done, total) and feeds ``progress``;
    returns (callback, seen)."""
    seen = [0, 0]

    def on_iteration(done, n, elapsed):
        seen[:] = done, n
        if progress is not None:
            progress.iteration(where, done, n, elapsed)

    return on_iteration, seen


def resolve_algorithm(algorithm: str, angles) -> str:
    """The algorithm a run uses: ``"auto"`` -> ``"fbp"`` for scans of at least
    :data:`AUTO_FULL_RANGE_DEG`, else ``"joint"``; any other name unchanged."""
    if algorithm != "auto":
        return algorithm
    span = float(np.ptp(np.asarray(angles, dtype=float)))
    return "fbp" if span >= AUTO_FULL_RANGE_DEG else "joint"


def reconstruct_rows(zs: slice, *, store, params: dict, progress: _ProgressLog | None = None):
    """Reconstruct rows ``zs`` of every energy of ``recon/mu`` at once with the joint
    limited-angle solver (:func:`spectrotomo.recon.reconstruct_joint`); ``params``
    as for :func:`reconstruct_region` plus ``noise`` (per energy, the sample's);
    ``options`` holds ``nonneg`` and :func:`joint_options`.
    Returns (iterations done, iterations asked) of all levels when ``max_seconds``
    stopped the solve early, else None (as :func:`reconstruct_region`)."""
    from ...recon import reconstruct_joint

    block = io.read_region(store, "od", "od", (slice(None), slice(None), zs))
    options = {"iterations": params["iterations"]} if params["iterations"] else {}
    options.update(params["options"])  # nonneg, joint_options(): XANES or none
    on_iteration, seen = _watch(progress, f"all energies, rows {zs.start}-{zs.stop - 1}")
    # the early stop is returned and logged by the step (no warning: the warnings
    # filters are process-wide, and chunks solve on threads)
    vol = reconstruct_joint(_on_device(block, params["device"]), params["angles"],
                            center=params["center"], pixel_size=params["pixel_size"],
                            noise=params["noise"],
                            max_seconds=params["max_seconds"], progress=on_iteration,
                            warn_on_stop=False,
                            **options)
    io.write_region(store, "recon", "mu", (slice(None), zs), to_numpy(vol).astype(np.float32))
    return tuple(seen) if seen[0] < seen[1] else None


# --------------------------------------------------------------------------- #
# reconstruct: one task per (energy, row chunk)
# --------------------------------------------------------------------------- #
def reconstruct_region(region, *, store, params: dict, progress: _ProgressLog | None = None):
    """Reconstruct one ``(energy, z)`` region of ``recon/mu`` from ``od/od``.

    ``params``: ``angles`` (deg), ``center`` (column index), ``algorithm``,
    ``iterations``, ``max_seconds`` (cap per chunk solve), ``pixel_size`` (nm),
    the algorithm's ``options`` and ``device`` (auto | cpu | gpu: where the
    slices are reconstructed; the GPU is the current cupy device, e.g. one per
    dask-cuda worker or batch slot). ``progress`` (in-process runs only) logs
    the iterations of long solves.

    Returns
    -------
    (int, int) or None
        (iterations done, iterations asked) when ``max_seconds`` stopped the solve
        early, else None: the step logs and records it, also from a worker.
    """
    from ...recon import reconstruct as recon_fn

    e, zs = region[0], region[1]
    sino = io.read_region(store, "od", "od", (e.start, slice(None), zs))  # (angles, rows, cols)
    on_iteration, seen = _watch(progress, f"energy {e.start}, rows {zs.start}-{zs.stop - 1}")
    kwargs = {}
    if params["algorithm"] != "fbp":
        # the early stop is returned and logged by the step, not warned
        kwargs = {"iterations": params["iterations"], "max_seconds": params["max_seconds"],
                  "progress": on_iteration, "warn_on_stop": False}
    vol = recon_fn(_on_device(sino, params["device"]), params["angles"],
                   algorithm=params["algorithm"], center=params["center"],
                   pixel_size=params["pixel_size"], **kwargs, **params["options"])
    io.write_region(store, "recon", "mu", region, to_numpy(vol).astype(np.float32)[None])
    return tuple(seen) if seen[0] < seen[1] else None


def _on_device(block: np.ndarray, device: str):
    """``block`` on the GPU (current cupy device) for ``device`` gpu, or where
    ``auto`` finds a usable GPU in this (worker) process; else unchanged."""
    if device == "cpu" or (device == "auto" and not cupy_available()):
        return block
    if not cupy_available():
        raise RuntimeError("[compute] device = \"gpu\" but cupy finds no usable CUDA device in "
                           "this process; install spectrotomo[gpu] or use device = \"auto\"")
    import cupy

    return cupy.asarray(block)


#: Joint chunk solves run at once in one process (no cluster, CPU): a solve's coarse
#: levels run on its own thread (one block of rows each), its full-grid row blocks in
#: the process's host pool (shared, so two solves do not oversubscribe the cores); two
#: at once measured 1.29x faster (4 demo chunks, idle 2-core VM, session 3,
#: gpu_bench/RESULTS.pipeline.md). Memory is planned x this (``plan_run(recon_tasks=)``).
JOINT_TASKS_AT_ONCE = 2


def joint_task_threads(compute) -> int:
    """Joint chunk solves run at once in this process for ``[compute]`` ``compute``:
    1 on a cluster (its workers parallelise) or a GPU, else up to
    :data:`JOINT_TASKS_AT_ONCE` (never more than the host's threads)."""
    if uses_cluster(compute) or uses_gpu(compute):
        return 1
    return max(1, min(JOINT_TASKS_AT_ONCE, host_threads()))


def reconstruct(ctx) -> None:
    """od -> recon: every energy, chunk by chunk of rows, resumable per chunk."""
    cfg = ctx.config.reconstruct
    od = io.read_group(ctx.store, "od")
    n_e, _, ny, nx = od["od"].shape
    px = float(od.attrs["pixel_size"])
    algorithm = resolve_algorithm(cfg.algorithm, od["angle"].values)
    dims, shape = ("energy", "z", "y", "x"), (n_e, ny, nx, nx)
    chunks = _mu_chunks(ctx, n_e, od["od"].shape[1], ny, nx)
    rows = chunks[1]
    if rows < min(cfg.chunk_rows, ny):
        ctx.log(f"reconstruct: chunks of {rows} rows instead of [reconstruct] chunk_rows = "
                f"{cfg.chunk_rows}: the solve of a chunk fits [compute] memory_limit_gb = "
                f"{ctx.config.compute.memory_limit_gb:g} GiB")
    template = volume(np.zeros((n_e, 1, 1, 1), np.float32), energies=od["energy"].values,
                      voxel_size=px, name="mu")
    coords = {"energy": od["energy"], "z": od["y"].rename(y="z"), "y": od["x"].rename(x="y"),
              "x": od["x"]}
    solver_options = (joint_options(od["energy"].values, per_edge=cfg.xanes_components)
                      if algorithm == "joint" else {})
    k = solver_options.get("components")
    io.init_array(ctx.store, "recon", "mu", shape=shape, dtype="float32",
                  chunks=chunks, dims=dims, coords=coords,
                  attrs={**template.attrs, "algorithm": algorithm,
                         "algorithm_requested": cfg.algorithm,
                         "device": ctx.config.compute.device,
                         "center": od.attrs["center"],
                         **({"spectral_components": k} if k else {}),
                         **{f"joint_{n}": v for n, v in solver_options.items()
                            if n != "components"}},
                  overwrite=ctx.overwrite)
    params = {"angles": od["angle"].values, "center": float(od.attrs["center"]),
              "device": ctx.config.compute.device,
              "algorithm": algorithm, "iterations": cfg.iterations,
              "max_seconds": cfg.max_seconds, "pixel_size": px,
              "options": {"filter": cfg.filter} if algorithm == "fbp"
              else {"nonneg": cfg.nonneg, **solver_options}}
    # tasks of whole slabs of rows over the y/x tiles (a slab is one chunk along z: no
    # two tasks write one chunk)
    regions = io.missing_regions(ctx.store, "recon", "mu", whole=("y", "x"))
    log_resume(ctx, "reconstruct", regions, n_e * -(-ny // rows))
    # iteration lines of long solves need this process's log: in-process runs only
    # (run_tasks logs the chunks done, also from workers)
    extra = {"progress": _ProgressLog(ctx.log)} if ctx.client is None else {}
    if algorithm == "joint":  # one task per row chunk, all energies together
        regions = sorted({r[1].start: r[1] for r in regions}.values(), key=lambda z: z.start)
        params.update(noise=_sample_noise(ctx.store, ny, rows))
        ctx.log(f"reconstruct: joint limited-angle solver ({float(np.ptp(params['angles'])):.0f}"
                f" deg scan), {len(regions)} chunks of {rows} rows x {n_e} energies"
                + (f" in {k} spectral components (XANES tomography)" if k else ""))
        task, threads = reconstruct_rows, joint_task_threads(ctx.config.compute)
    else:
        task, threads = reconstruct_region, 1
    stops = run_tasks(ctx.client, task, regions, desc="reconstruct", log=ctx.log,
                      threads=threads, store=str(ctx.store), params=params, **extra)
    attrs = _record_stops(ctx, [s for s in stops if s is not None], len(regions))
    io.mark_complete(ctx.store, "recon", attrs=attrs or None)


def _mu_chunks(ctx, n_e: int, n_angles: int, ny: int, nx: int) -> tuple[int, ...]:
    """Chunks of ``recon/mu`` (energy, z, y, x): those of an unfinished ``recon/mu`` a killed
    run left (a resume keeps its layout and rows, whatever the memory limit or threads
    now), else one energy x the planned rows x y/x tiles (``_layout.volume_chunks``): rows
    are ``chunk_rows`` fitted to ``memory_limit_gb`` for the *configured* algorithm, as the
    run's plan (``auto`` costed as the joint solver: the plan's quantify and report rows
    assume these chunks)."""
    rows = planned_chunk_rows(ctx.config, (n_e, n_angles, ny, nx))
    return kept_chunks(ctx, "recon", "mu",
                       volume_chunks(("energy", "z", "y", "x"), (n_e, ny, nx, nx), rows))


def planned_chunk_rows(config, shape) -> int:
    """``[reconstruct] chunk_rows`` fitted to ``memory_limit_gb`` for a raw series of
    ``shape`` (energy, angle, y, x): what the run's plan and a fresh reconstruct use."""
    n_e, n_angles, ny, nx = shape
    return fit_chunk_rows(config.reconstruct.chunk_rows, algorithm=config.reconstruct.algorithm,
                          n_energies=n_e, n_angles=n_angles, ny=ny, nx=nx,
                          tasks=joint_task_threads(config.compute),
                          memory_limit_gb=config.compute.memory_limit_gb)


def _record_stops(ctx, stopped: list, total: int) -> dict:
    """Log and keep (warnings, group attrs) the chunk solves ``max_seconds`` stopped."""
    if not stopped:
        return {}
    done = [s[0] for s in stopped]
    message = (f"{len(stopped)} of {total} chunk solves stopped at [reconstruct] max_seconds = "
               f"{ctx.config.reconstruct.max_seconds:g} s after {min(done)}-{max(done)} of "
               f"{stopped[0][1]} iterations")
    ctx.log(f"reconstruct: warning: {message}")
    ctx.results.setdefault("warnings", []).append(f"reconstruct: {message}")
    return {"stopped_early": message}


def _sample_noise(store, ny: int, rows: int) -> np.ndarray:
    """Per-energy noise of the optical density from the central chunk of rows, so that
    every chunk's solve gets the same regularisation weights (memory: one chunk)."""
    from ...recon import od_noise

    start = (ny // 2 // rows) * rows
    block = io.read_region(store, "od", "od", (slice(None), slice(None),
                                                slice(start, min(start + rows, ny))))
    return od_noise(block)


def log_resume(ctx, step: str, todo: list, total: int) -> None:
    if len(todo) < total:
        ctx.log(f"{step}: resuming, {total - len(todo)} of {total} chunks already written")
