"""glibc malloc settings of a run's processes: one arena in this process and its workers,
and the workers' mmap/trim thresholds (what distributed's nanny changes). Off glibc
(macOS, Windows, musl) nothing is done."""

from __future__ import annotations

__all__ = ["MALLOC_ARENA_MAX", "WORKER_MMAP_THRESHOLD", "limit_malloc_arenas",
           "tune_worker_malloc"]


#: glibc malloc arenas in a run's processes (this one and the workers it starts). glibc
#: gives each thread that allocates its own arena (up to 8 per core), and freed block
#: arrays stay in the arena of the thread that freed them: the block threads, each
#: block's dask read threads and zarr's I/O thread each kept their own high-water mark,
#: so segment/profile peaks grew with the blocks' fill (gpu_bench/RESULTS.seg.md "scale").
#: One arena: the threads reuse one another's freed memory.
MALLOC_ARENA_MAX = 1
_M_ARENA_MAX = -8  # mallopt's parameter number (glibc malloc.h)


def limit_malloc_arenas(n: int = MALLOC_ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas in this process at ``n`` (``mallopt(M_ARENA_MAX, n)``).

    Arenas made before the call stay, and threads started after it are handed those
    (glibc reuses existing arenas in turn), so it must come before any thread allocates:
    :func:`~spectrotomo.pipeline.run_pipeline` calls it first thing, before its checks
    read the store (zarr's I/O threads). Called after them instead, the profile step's
    peak was 0.38 vs 0.29 GiB at 256^3 (0.30 vs 0.26 at 128^3; session 9). A
    ``MALLOC_ARENA_MAX`` in the environment wins: glibc applied it at start-up and
    nothing is changed.

    Returns
    -------
    bool
        Whether the cap is set: False off glibc (macOS, Windows, musl), where
        nothing is done.
    """
    import os

    mallopt = _mallopt()
    if "MALLOC_ARENA_MAX" in os.environ or mallopt is None:
        return False
    return mallopt(_M_ARENA_MAX, int(n)) == 1


def _mallopt():
    """glibc's ``mallopt``, or None off glibc (macOS, Windows, musl)."""
    from .._backend import glibc_function

    return glibc_function("mallopt")


#: glibc's malloc thresholds in a worker (``mallopt``): what its dynamic thresholds reach
#: in a process left to its defaults (the mmap threshold rises to at most 32 MiB on 64-bit
#: glibc, the trim threshold to twice it). distributed's nanny starts workers with
#: ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes the mmap threshold at 128 KiB: every
#: work array above it was mapped and unmapped per use, and page-faulted in again. The
#: joint reconstruction of simulate:large cost 69 user + 56 system CPU s in one process
#: started with that variable vs ~62 without (gpu_bench/RESULTS.pipeline.md, session 7).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
WORKER_MMAP_THRESHOLD = 32 * 2**20
_malloc_tuned = False


def tune_worker_malloc() -> bool:
    """Set :data:`WORKER_MMAP_THRESHOLD` (and twice it as the trim threshold) in this
    process, once; the tasks call it on the workers (:func:`run_tasks`). Returns whether
    the thresholds are set (False off glibc)."""
    global _malloc_tuned
    mallopt = None if _malloc_tuned else _mallopt()
    if mallopt is None:
        return _malloc_tuned
    _malloc_tuned = (mallopt(_M_MMAP_THRESHOLD, WORKER_MMAP_THRESHOLD) == 1
                     and mallopt(_M_TRIM_THRESHOLD, 2 * WORKER_MMAP_THRESHOLD) == 1)
    return _malloc_tuned
