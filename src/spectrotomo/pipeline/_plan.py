"""Memory plan of a run: per step, chunking, peak memory per worker and output size.

The estimates are upper bounds built from array sizes (float32 work arrays,
the FFT/NUFFT oversampling of the reconstruction engine, the subset
enumeration of the LCF); a run whose plan exceeds the configured memory limit
refuses to start instead of dying later. The numbers are checked against the
measured peak in ``gpu_bench/pipeline_bench.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._plan_prep import _prep_peak, center_work_bytes, phase_pass_bytes, valence_bytes

__all__ = ["PlanRow", "MemoryPlanError", "plan_run", "check_plan", "format_plan",
           "preprocess_in_flight", "phase_pass_bytes", "center_work_bytes",
           "report_thread_bytes", "report_chunk_bytes", "report_in_flight",
           "segment_block_bytes", "profile_block_bytes", "blocks_in_flight", "block_threads",
           "step_block_threads", "recon_task_bytes", "fit_chunk_rows", "valence_bytes",
           "quantify_slab_bytes", "quantify_in_flight"]

_F4 = 4  # bytes per float32
_GIB = 2.0**30
#: Resident memory of a Python process with the stages imported (numpy, scipy,
#: finufft, zarr, xarray, dask): 0.15-0.22 GiB measured in a dask worker
#: (gpu_bench/pipeline_bench.py), rounded up. Added to every step's peak.
INTERPRETER_BYTES = 0.25 * _GIB


#: Device memory of one joint reconstruction task / its host work-array estimate below:
#: the cupy pool's peak in use was 1.94x (demo, 128^3) and 2.07x (large, 256^3) of it
#: on an H200 (gpu_bench/device/pipeline_gpu.py, 2026-12-04, RESULTS.pipeline.md), rounded up.
GPU_JOINT_FACTOR = 2.2


class MemoryPlanError(RuntimeError):
    """The planned peak memory of a step exceeds the per-worker limit."""


@dataclass
class PlanRow:
    step: str
    chunking: str
    peak_bytes: float
    output_bytes: float
    #: device memory of one task when it runs on a GPU (None: CPU only)
    gpu_bytes: float | None = None

    def line(self) -> str:
        gpu = "" if self.gpu_bytes is None else f"   GPU/task {self.gpu_bytes / _GIB:7.2f} GiB"
        return (f"{self.step:<12} {self.chunking:<38} peak/worker {self.peak_bytes / _GIB:7.2f} GiB"
                f"   output {self.output_bytes / _GIB:7.3f} GiB{gpu}")


def _most_that_fit(at_most: int, cost, memory_limit_gb: float) -> int:
    """The largest ``k`` in 1..``at_most`` whose ``cost(k)`` (bytes) fits ``memory_limit_gb``
    beside the interpreter; 1 when none does (the plan then refuses the run). ``cost``
    grows with ``k``: energies, threads or rows in flight."""
    budget = memory_limit_gb * _GIB - INTERPRETER_BYTES
    k = max(1, int(at_most))
    while k > 1 and cost(k) > budget:
        k -= 1
    return k


def preprocess_in_flight(*, n_energies: int, n_angles: int, ny: int, nx: int, threads: int,
                         memory_limit_gb: float) -> int:
    """Energies the preprocess step works on at once: one per host thread, as many as
    fit in ``memory_limit_gb`` (GiB) by :func:`_prep_peak`, at least one."""
    return _most_that_fit(min(int(threads), n_energies),
                          lambda k: _prep_peak(n_energies, n_angles, ny, nx, k),
                          memory_limit_gb)


def report_thread_bytes(*, chunk_bytes: float, plane_voxels: int) -> float:
    """Memory of one report thread, bytes: a store chunk being read (compressed, decoded
    and the selection cut from it: 3x ``chunk_bytes``, the largest chunk the report
    reads), the three planes a figure draws (``plane_voxels`` together, float64) and the
    strided sample its colour limits come from (float64 values, mask and finite copy)."""
    from ._report_reads import SAMPLE_VOXELS

    return 3 * chunk_bytes + plane_voxels * 8 + SAMPLE_VOXELS * 24


def report_chunk_bytes(*, ny: int, nx: int, rows: int, seg_chunk: int) -> float:
    """The largest store chunk the report reads, bytes, for a ``ny`` x ``nx`` x ``nx``
    volume: a volume group's (one energy or element x ``rows`` z rows x a y/x tile,
    ``steps._layout.volume_chunks``) or a segmentation block (``seg_chunk``^3), float32 /
    int32. Bounded whatever the detector size (the former chunk of 4 elements x the
    whole plane was 1 GiB at 2048^2)."""
    from .steps._layout import volume_chunks

    volume = volume_chunks(("z", "y", "x"), (ny, nx, nx), min(int(rows), ny))
    segment = min(int(seg_chunk), max(ny, nx)) ** 3
    return max(volume[0] * volume[1] * volume[2], segment) * _F4


def report_in_flight(*, thread_bytes: float, threads: int, memory_limit_gb: float) -> int:
    """Threads of the report step: one per host thread, as many as fit in
    ``memory_limit_gb`` (GiB) at ``thread_bytes`` each, at least one."""
    return _most_that_fit(threads, lambda k: k * thread_bytes, memory_limit_gb)


def segment_block_bytes(chunk: int) -> float:
    """Work arrays of one segment block of edge ``chunk``: the distance transform's
    block grown by half a block on each side ((2 c)^3: bool in, float32 squares, float64
    distances, masks, ~40 B/voxel); cores of c^3 (int64 provisional labels, float32
    smoothing of 2 maps, ~64 B/voxel). Blocks deeper in a particle than c/2 grow their
    halo to their depth: a particle of radius r voxels needs (c + 2 r)^3 x ~14 B for its
    central blocks (not planned here)."""
    return (2 * chunk) ** 3 * 40 + chunk ** 3 * 64


def profile_block_bytes(chunk: int) -> float:
    """One profile block: values (4 elements), regions, mask, float64 work copies (x3)."""
    return chunk ** 3 * 8 * (4 + 3) * 3


def _n_blocks(ny: int, nx: int, chunk: int, rows: int | None = None) -> int:
    """Blocks of a ``ny`` x ``nx`` x ``nx`` volume: ``chunk`` cubes, or slabs of ``rows``."""
    return -(-ny // (rows or chunk)) * (-(-nx // chunk)) ** 2


def blocks_in_flight(*, threads: int, ny: int, nx: int, chunk: int,
                     slabs: bool = True) -> float:
    """``chunk^3`` cubes' worth of segment/profile blocks in memory at once in one process:
    ``threads`` blocks of ``segmentation.block_shape`` (slabs of ``chunk / threads`` z
    rows, at least 32; a volume of one cube: the cube, its threads inside it), at most
    the volume's blocks. One cube up to ``chunk // 32`` threads, whatever the volume.
    ``slabs=False``: a dask worker's tasks, whole cubes, one per thread."""
    from ..segmentation import block_shape

    rows = block_shape(chunk, max(1, int(threads)) if slabs else 1, shape=(ny, nx, nx))[0]
    return max(1, min(int(threads), _n_blocks(ny, nx, chunk, rows))) * rows / chunk


def block_threads(*, threads: int, ny: int, nx: int, chunk: int,
                  memory_limit_gb: float) -> int:
    """Threads of the segment and profile steps' block pools (one process or worker).

    Each thread holds one block's work arrays (:func:`blocks_in_flight`: a slab of the
    ``chunk`` cube per thread): as many threads as fit in ``memory_limit_gb`` beside the
    interpreter (at least 1)."""
    threads = max(1, int(threads))
    per_cube = max(segment_block_bytes(chunk), profile_block_bytes(chunk))
    return _most_that_fit(threads, lambda k: blocks_in_flight(
        threads=k, ny=ny, nx=nx, chunk=chunk) * per_cube + 64 * 2**20, memory_limit_gb)


def step_block_threads(config, shape) -> int:
    """:func:`block_threads` of this host for a ``config``'s segment/profile step on a
    volume of ``shape`` (z, y, x) (a cluster's workers size their own threads)."""
    from .._backend import host_threads

    return block_threads(threads=host_threads(), ny=int(shape[0]), nx=int(shape[-1]),
                         chunk=config.segmentation.chunk,
                         memory_limit_gb=config.compute.memory_limit_gb)


def recon_task_bytes(*, algorithm: str, n_energies: int, n_angles: int, nx: int, rows: int,
                     tasks: int = 1) -> float:
    """Host work arrays of reconstruct tasks of ``rows`` detector rows (``tasks`` at once).

    Gridding FBP: padded sinogram (2x), complex spectrum (2x2), oversampled 2D grid
    (2^2 x 2 complex); iterative solvers add x, residual, gradient, momentum. The joint
    solver ("joint", or "auto": the worst case) holds every energy of the chunk at once:
    data, whitened copy, components, dual."""
    slab_in = n_angles * rows * nx * _F4
    slab_out = rows * nx * nx * _F4
    if algorithm in ("joint", "auto"):
        return (n_energies * (slab_in * 3 + slab_out * 8) + slab_out * 8) * max(1, int(tasks))
    factor = 1.0 if algorithm == "fbp" else 4.0
    return slab_in * 6 + slab_out * (8 + factor)


def fit_chunk_rows(chunk_rows: int, *, algorithm: str, n_energies: int, n_angles: int,
                   ny: int, nx: int, tasks: int, memory_limit_gb: float) -> int:
    """Detector rows per reconstruct chunk: ``chunk_rows``, or as many fewer as the
    chunk's solve (``tasks`` at once) needs to fit ``memory_limit_gb`` beside the
    interpreter (at least 1; a run that does not fit even so is refused by the plan).
    A 2048^2 field of 8 energies needs ~1.2 GiB per row for the joint solver."""
    return _most_that_fit(min(int(chunk_rows), int(ny)), lambda rows: recon_task_bytes(
        algorithm=algorithm, n_energies=n_energies, n_angles=n_angles, nx=nx, rows=rows,
        tasks=tasks), memory_limit_gb)


def plan_run(*, n_energies: int, n_angles: int, ny: int, nx: int, chunk_rows: int,
             algorithm: str = "fbp", n_xanes: int = 0, n_states: int = 3,
             n_workers: int = 1, gpu: bool = False, seg_chunk: int = 128,
             prep_energies: int = 1, seg_threads: int = 1, seg_slabs: bool = True,
             recon_tasks: int = 1, quant_tasks: int = 1, report_threads: int = 1,
             n_distances: int = 0, od_angles: int | None = None) -> list[PlanRow]:
    """Plan the main steps for a tilt series of ``(n_energies, n_angles, ny, nx)``.

    Parameters
    ----------
    n_energies, n_angles, ny, nx : int
        Shape of the raw tilt series (detector rows ``ny``, columns ``nx``).
    chunk_rows : int
        Detector rows reconstructed per chunk (one task).
    algorithm : str
        Reconstruction algorithm; iterative ones hold more work arrays.
    n_xanes : int
        Energies of the XANES scan fitted by LCF (0: no LCF step).
    n_states : int
        Reference spectra per element in the LCF.
    n_workers : int
        Dask workers sharing the chunks (does not change the per-worker peak).
    gpu : bool
        Reconstruction tasks run on a GPU: their device memory is planned too.
    seg_chunk : int
        Block edge (voxels) of the block-wise segment and profile steps.
    prep_energies : int
        Energies preprocessed at once (:func:`preprocess_in_flight`); each holds its
        optical density and a chunk's work arrays (``_plan_prep._prep_bytes``).
    seg_threads : int
        Threads of one process (or dask worker) running segment/profile blocks:
        each holds one block's work arrays (:func:`blocks_in_flight`).
    seg_slabs : bool
        The blocks are slabs of the ``seg_chunk`` cube, one per thread (this process's
        block threads); False: whole cubes (a dask worker's tasks).
    recon_tasks : int
        Joint reconstruction chunks solved at once in one process
        (``steps.reconstruct.joint_task_threads``): each holds its work arrays.
    quant_tasks : int
        Quantify slabs computed at once in one process (:func:`quantify_in_flight`).
    report_threads : int
        Threads of the report step (:func:`report_in_flight`): each reads one store
        chunk, three planes and a bounded sample (:func:`report_thread_bytes`).
    n_distances : int
        Propagation distances of a holotomography (phase) run, 0 for attenuation: its
        preprocess streams chunks of angles at every distance (:func:`phase_pass_bytes`).
    od_angles : int, optional
        Angles per od store chunk (``steps.preprocess.od_chunks``; default all): a phase
        run fills one store chunk of angles at a time.
    """
    rows = min(int(chunk_rows), ny)
    frame = ny * nx * _F4
    projections = n_angles * frame
    prep_peak = _prep_peak(n_energies, n_angles, ny, nx, prep_energies, n_distances,
                           od_angles)
    joint = algorithm in ("joint", "auto")  # auto: limited-angle scans use joint (the worst case)
    recon_peak = recon_task_bytes(algorithm=algorithm, n_energies=n_energies,
                                  n_angles=n_angles, nx=nx, rows=rows, tasks=recon_tasks)
    volume_bytes = n_energies * ny * nx * nx * _F4
    voxels = ny * nx * nx
    quant_peak = quantify_slab_bytes(n_energies=n_energies, nx=nx, rows=rows) * max(
        1, int(quant_tasks))
    lcf_peak = valence_bytes(n_xanes, ny, nx)
    # segment and profile, block by block: one block's work arrays per block in flight
    # (fewer blocks than threads: the idle threads work inside the blocks); profile adds
    # the radix-select histograms (65536 counts per group and slot)
    c = min(int(seg_chunk), max(ny, nx))
    in_flight = blocks_in_flight(threads=seg_threads, ny=ny, nx=nx, chunk=c,
                                 slabs=seg_slabs)  # in cubes
    seg_peak = segment_block_bytes(c) * in_flight
    prof_peak = profile_block_bytes(c) * in_flight + 64 * 2**20
    # report: the largest chunk it reads, a volume group's tile or a segmentation block
    report_chunk = report_chunk_bytes(ny=ny, nx=nx, rows=rows, seg_chunk=c)
    report_peak = report_thread_bytes(chunk_bytes=report_chunk,
                                      plane_voxels=nx * nx + 2 * ny * nx) * max(1, report_threads)
    # on a GPU the same work arrays, and for the joint solver cupy's FFT plans, the
    # Toeplitz kernels and cufinufft's buffers besides: x GPU_JOINT_FACTOR
    recon_gpu = (recon_peak * (GPU_JOINT_FACTOR if joint else 1.0)) if gpu else None
    base = INTERPRETER_BYTES
    prep_peak, recon_peak, quant_peak, lcf_peak, seg_peak, prof_peak, report_peak = (
        base + p for p in (prep_peak, recon_peak, quant_peak, lcf_peak, seg_peak, prof_peak,
                           report_peak))
    prep_chunks = (f"{n_distances} distance(s), chunks of angles" if n_distances
                   else "chunks of frames/rows")
    out = [
        PlanRow("preprocess", f"{prep_energies} energ{'y' if prep_energies == 1 else 'ies'} x "
                f"{n_angles} angles, {prep_chunks}", prep_peak,
                n_energies * projections),
        PlanRow("reconstruct", f"{rows} rows x {nx}^2{f' x {n_energies} energies' if joint else ''}"
                f" per task, {n_workers} worker(s)"
                f"{f' x {recon_tasks} task(s) at once' if joint and recon_tasks > 1 else ''}",
                recon_peak, volume_bytes, gpu_bytes=recon_gpu),
        PlanRow("quantify", f"{rows} z rows x {nx}^2 per task, {n_workers} worker(s)"
                f"{f' x {quant_tasks} task(s) at once' if quant_tasks > 1 else ''}",
                quant_peak, 6 * voxels * _F4),
    ]
    if n_xanes:
        from .steps._xanes_stream import register_bin

        b = register_bin(n_xanes, ny, nx)
        out.append(PlanRow("valence", f"{n_xanes} x {ny}x{nx} scan, registered "
                           f"{'binned x' + str(b) if b > 1 else 'whole'}", lcf_peak,
                           n_states * ny * nx * _F4 * 2))
    out.append(PlanRow("segment", f"blocks of {c}^3 (+ halo) x {seg_threads} thread(s), "
                       f"{ny}x{nx}x{nx}", seg_peak,
                       voxels * 15))  # bool, float32 x2, uint8 x2, int32 x2
    out.append(PlanRow("profile", f"blocks of {c}^3 x {seg_threads} thread(s), {ny}x{nx}x{nx}",
                       prof_peak, 0.0))
    out.append(PlanRow("report", f"store chunks, 3 planes, sample x {report_threads} thread(s)",
                       report_peak, 0.0))
    return out


def quantify_slab_bytes(*, n_energies: int, nx: int, rows: int) -> float:
    """Memory of one quantify task, bytes: its slab of ``rows`` z rows of every energy's
    attenuation (float32), the float64 solve of the edge pairs and the outputs."""
    return rows * nx * nx * _F4 * (n_energies + 2 * 8 + 8)


def quantify_in_flight(*, threads: int, n_energies: int, nx: int, rows: int,
                       memory_limit_gb: float) -> int:
    """Quantify slabs computed at once in one process: one per host thread (``threads``,
    at most the slabs), as many as fit ``memory_limit_gb`` (:func:`quantify_slab_bytes`)."""
    per = quantify_slab_bytes(n_energies=n_energies, nx=nx, rows=rows)
    return _most_that_fit(threads, lambda k: k * per, memory_limit_gb)


def check_plan(rows: list[PlanRow], memory_limit_gb: float) -> None:
    """Raise :class:`MemoryPlanError` naming every step whose peak exceeds the limit."""
    over = [r for r in rows if r.peak_bytes > memory_limit_gb * _GIB]
    if over:
        steps = "; ".join(f"{r.step} needs {r.peak_bytes / _GIB:.2f} GiB" for r in over)
        raise MemoryPlanError(
            f"memory plan exceeds [compute] memory_limit_gb = {memory_limit_gb:g} GiB per worker: "
            f"{steps}. Lower [reconstruct] chunk_rows, crop the field, or raise the limit.")


def format_plan(rows: list[PlanRow]) -> str:
    return "\n".join(r.line() for r in rows)
