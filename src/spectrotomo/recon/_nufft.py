"""NUFFT back-ends (finufft on the host, cufinufft on a CUDA device) and host parallelism.

Both back-ends expose the same ``Plan(type, n_modes, n_trans, eps, isign, dtype)`` /
``setpts`` / ``execute`` interface, so the operators are written once.

On the host, batches of slices run in a persistent pool of Python threads,
each with single-threaded FFTs and NUFFTs (finufft and numpy release the GIL):
on a shared machine OpenMP teams inside one transform wait at every barrier
for a core another process holds, and the numpy glue between transforms
would run on one core only. Measured on a loaded 2-core VM: ~30 % more
throughput than one OpenMP-threaded finufft call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from .._backend import host_threads

__all__ = ["make_plan", "cached_plan", "run_batches", "host_threads", "rfft", "irfft"]

_THREAD_MIN_WORK = 2_000_000
_CACHE_SIZE = 8  # plans per thread: a few geometries x (type 1, type 2) x batch sizes
_local = threading.local()
_pool = None
_pool_lock = threading.Lock()


def _in_pool() -> bool:
    return getattr(_local, "in_pool", False)


def _mark_pool_thread():
    _local.in_pool = True


def run_batches(fn, ranges, *, parallel: bool):
    """Call ``fn(start, stop)`` for every range, in the host thread pool when
    ``parallel`` (and more than one range, and not already inside the pool)."""
    if not parallel or len(ranges) < 2 or _in_pool() or host_threads() < 2:
        for s, e in ranges:
            fn(s, e)
        return
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers != host_threads():
            from concurrent.futures import ThreadPoolExecutor

            # Persistent threads keep their plan caches (see cached_plan) between calls.
            _pool = ThreadPoolExecutor(host_threads(), thread_name_prefix="spectrotomo-recon",
                                       initializer=_mark_pool_thread)
        pool = _pool
    for future in [pool.submit(fn, s, e) for s, e in ranges]:
        future.result()


def cached_plan(xp, nufft_type: int, n_modes: tuple[int, int], n_trans: int, eps: float,
                isign: int, geometry_key, x, y):
    """:func:`make_plan`, reused across calls with the same geometry.

    ``geometry_key`` must identify the points ``(x, y)`` (e.g. angles and
    detector padding). Setting up a plan (FFT plan, sorting the points) costs
    as much as transforming a few slices; chunked reconstructions and
    iterative solvers build the same operator over and over. The cache is per
    thread because a finufft plan's work grid must not be shared by
    concurrent executions (pool threads, dask's threads).
    """
    cache = getattr(_local, "plans", None)
    if cache is None:
        cache = _local.plans = OrderedDict()
    key = (xp.__name__, nufft_type, tuple(n_modes), int(n_trans), float(eps), isign,
           geometry_key)
    plan = cache.get(key)
    if plan is None:
        plan = make_plan(xp, nufft_type, n_modes, n_trans, eps, isign, x, y)
        cache[key] = plan
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return plan


def make_plan(xp, nufft_type: int, n_modes: tuple[int, int], n_trans: int, eps: float,
              isign: int, x, y):
    """Create a single-precision 2-D NUFFT plan with points ``(x, y)`` set.

    ``x`` pairs with the first mode axis (image rows, y) and ``y`` with the
    second (image columns, x), both in radians within [-pi, pi].
    """
    if xp is np:
        import finufft

        # upsampfac 1.25: a 1.56x (not 4x) fine grid, ~30 % faster at eps 1e-4; below
        # ~1e-4 single precision needs the 2x grid (finufft narrows the kernel otherwise).
        # 1.5 and 2.0 measured slower for FBP sizes (512^2, 131-360 angles).
        upsampfac = 1.25 if eps >= 9e-5 else 2.0
        # Threads only pay off on big batches; on a busy host OpenMP on a small
        # transform is ~10x slower than one thread. Pool threads run one each.
        work = n_trans * (n_modes[0] * n_modes[1] + x.size)
        threads = host_threads() if work >= _THREAD_MIN_WORK and not _in_pool() else 1
        plan = finufft.Plan(nufft_type, n_modes, n_trans=n_trans, eps=eps, isign=isign,
                            dtype="complex64", nthreads=threads, upsampfac=upsampfac)
    else:
        import cufinufft

        plan = cufinufft.Plan(nufft_type, n_modes, n_trans=n_trans, eps=eps, isign=isign,
                              dtype="complex64")
    plan.setpts(x, y)
    return plan


def rfft(xp, a, n: int):
    """Real FFT along the last axis, zero-padded to ``n`` (threads on the host)."""
    if xp is np:
        import scipy.fft

        return scipy.fft.rfft(a, n=n, axis=-1, workers=_fft_workers(a))
    return xp.fft.rfft(a, n=n, axis=-1)


def irfft(xp, a, n: int):
    """Inverse of :func:`rfft` along the last axis (output length ``n``)."""
    if xp is np:
        import scipy.fft

        return scipy.fft.irfft(a, n=n, axis=-1, workers=_fft_workers(a))
    return xp.fft.irfft(a, n=n, axis=-1)


def _fft_workers(a) -> int:
    return host_threads() if a.size >= _THREAD_MIN_WORK and not _in_pool() else 1
