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

import numpy as np

from ... import io
from ..._backend import cupy_available, to_numpy
from ..._model import volume
from .._compute import run_tasks

__all__ = ["reconstruct", "reconstruct_region", "reconstruct_rows", "resolve_algorithm",
           "log_resume", "AUTO_FULL_RANGE_DEG"]

#: ``algorithm = "auto"``: scans spanning at least this range (deg) are reconstructed
#: with FBP; narrower (limited-angle) scans with the joint regularised solver. At
#: -65..+65 deg FBP puts mass into the missing wedge (amounts 25-30 % low, particles
#: 8-20 voxels long); the joint solver is within 3 % at 12-16x FBP's time
#: (gpu_bench/RESULTS.recon.md, limited_angle_bench).
AUTO_FULL_RANGE_DEG = 170.0


def resolve_algorithm(algorithm: str, angles) -> str:
    """The algorithm a run uses: ``"auto"`` -> ``"fbp"`` for scans of at least
    :data:`AUTO_FULL_RANGE_DEG`, else ``"joint"``; any other name unchanged."""
    if algorithm != "auto":
        return algorithm
    span = float(np.ptp(np.asarray(angles, dtype=float)))
    return "fbp" if span >= AUTO_FULL_RANGE_DEG else "joint"


def reconstruct_rows(zs: slice, *, store, params: dict) -> None:
    """Reconstruct rows ``zs`` of every energy of ``recon/mu`` at once with the joint
    limited-angle solver (:func:`spectrotomo.recon.reconstruct_joint`); ``params``
    as for :func:`reconstruct_region` plus ``noise`` (per energy, the sample's)."""
    from ...recon import reconstruct_joint

    block = io.read_region(store, "od", "od", (slice(None), slice(None), zs))
    options = {"iterations": params["iterations"]} if params["iterations"] else {}
    vol = reconstruct_joint(_on_device(block, params["device"]), params["angles"],
                            center=params["center"], pixel_size=params["pixel_size"],
                            noise=params["noise"], nonneg=params["nonneg"], **options)
    io.write_region(store, "recon", "mu", (slice(None), zs), to_numpy(vol).astype(np.float32))


# --------------------------------------------------------------------------- #
# reconstruct: one task per (energy, row chunk)
# --------------------------------------------------------------------------- #
def reconstruct_region(region, *, store, params: dict) -> None:
    """Reconstruct one ``(energy, z)`` region of ``recon/mu`` from ``od/od``.

    ``params``: ``angles`` (deg), ``center`` (column index), ``algorithm``,
    ``iterations``, ``pixel_size`` (nm), the algorithm's ``options`` and
    ``device`` (auto | cpu | gpu: where the slices are reconstructed; the GPU
    is the current cupy device, e.g. one per dask-cuda worker or batch slot).
    """
    from ...recon import reconstruct as recon_fn

    e, zs = region[0], region[1]
    sino = io.read_region(store, "od", "od", (e.start, slice(None), zs))  # (angles, rows, cols)
    vol = recon_fn(_on_device(sino, params["device"]), params["angles"],
                   algorithm=params["algorithm"], center=params["center"],
                   iterations=params["iterations"], pixel_size=params["pixel_size"],
                   **params["options"])
    io.write_region(store, "recon", "mu", region, to_numpy(vol).astype(np.float32)[None])


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


def reconstruct(ctx) -> None:
    """od -> recon: every energy, chunk by chunk of rows, resumable per chunk."""
    cfg = ctx.config.reconstruct
    od = io.read_group(ctx.store, "od")
    n_e, _, ny, nx = od["od"].shape
    px = float(od.attrs["pixel_size"])
    rows = min(cfg.chunk_rows, ny)
    template = volume(np.zeros((n_e, 1, 1, 1), np.float32), energies=od["energy"].values,
                      voxel_size=px, name="mu")
    coords = {"energy": od["energy"], "z": od["y"].rename(y="z"), "y": od["x"].rename(x="y"),
              "x": od["x"]}
    algorithm = resolve_algorithm(cfg.algorithm, od["angle"].values)
    io.init_array(ctx.store, "recon", "mu", shape=(n_e, ny, nx, nx), dtype="float32",
                  chunks=(1, rows, nx, nx), dims=("energy", "z", "y", "x"), coords=coords,
                  attrs={**template.attrs, "algorithm": algorithm,
                         "algorithm_requested": cfg.algorithm,
                         "device": ctx.config.compute.device,
                         "center": od.attrs["center"]}, overwrite=ctx.overwrite)
    params = {"angles": od["angle"].values, "center": float(od.attrs["center"]),
              "device": ctx.config.compute.device,
              "algorithm": algorithm, "iterations": cfg.iterations, "pixel_size": px,
              "options": {"filter": cfg.filter} if algorithm == "fbp"
              else {"nonneg": cfg.nonneg}}
    regions = io.missing_regions(ctx.store, "recon", "mu")
    log_resume(ctx, "reconstruct", regions, n_e * -(-ny // rows))
    if algorithm == "joint":  # one task per row chunk, all energies together
        slabs = sorted({r[1].start: r[1] for r in regions}.values(), key=lambda z: z.start)
        params.update(nonneg=cfg.nonneg, noise=_sample_noise(ctx.store, ny, rows))
        ctx.log(f"reconstruct: joint limited-angle solver ({float(np.ptp(params['angles'])):.0f}"
                f" deg scan), {len(slabs)} chunks of {rows} rows x {n_e} energies")
        run_tasks(ctx.client, reconstruct_rows, slabs, desc="reconstruct", log=ctx.log,
                  store=str(ctx.store), params=params)
    else:
        run_tasks(ctx.client, reconstruct_region, regions, desc="reconstruct", log=ctx.log,
                  store=str(ctx.store), params=params)
    io.mark_complete(ctx.store, "recon")


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
