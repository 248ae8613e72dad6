"""Array back-ends: numpy always, cupy when a working CUDA device exists.

``import cupy`` succeeds on machines without a driver and fails at the first
allocation, so availability is probed with a real allocation, once.
"""

from __future__ import annotations

import contextlib
import functools
import os
from types import ModuleType

import numpy as np

__all__ = ["array_module", "cupy_available", "astra_cuda_available", "to_numpy", "host_threads",
           "blas_single_thread", "glibc_function"]


def array_module(*arrays) -> ModuleType:
    """Return ``cupy`` if any argument is a cupy array, else ``numpy``."""
    for a in arrays:
        if type(a).__module__.split(".")[0] == "cupy":
            import cupy

            return cupy
    return np


@functools.lru_cache(maxsize=1)
def cupy_available() -> bool:
    """True when cupy imports *and* can allocate on a CUDA device."""
    try:
        import cupy

        cupy.zeros(1).sum().item()
        return True
    except Exception:  # ImportError, CUDARuntimeError, driver errors
        return False


@functools.lru_cache(maxsize=1)
def astra_cuda_available() -> bool:
    """True when ASTRA's CUDA algorithms may be called.

    ASTRA's 3D CUDA calls kill the process without a GPU, so this must be
    checked before any of them.
    """
    try:
        import astra

        return bool(astra.use_cuda())
    except Exception:
        return False


def to_numpy(a) -> np.ndarray:
    """Copy a cupy array to the host; numpy arrays pass through."""
    if type(a).__module__.split(".")[0] == "cupy":
        return a.get()
    return np.asarray(a)


def host_threads() -> int:
    """Threads a host computation may use: ``OMP_NUM_THREADS`` when set (a dask
    worker gets its ``threads_per_worker`` there, see ``pipeline._compute``), else
    the CPUs this process may run on.

    Every host thread pool and ``scipy.fft(workers=...)`` call sizes itself with
    this, so that N workers on one node use N x threads_per_worker cores, not N x
    all of them (``workers=-1`` means every CPU of the node).
    """
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit():
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def blas_single_thread():
    """Run the block with BLAS (OpenBLAS/MKL) on one thread per calling thread.

    For the many small matrix products of a batched ``matmul``/``einsum`` (e.g.
    131 products of 128 x 128 matrices) OpenBLAS's own threads cost far more than
    they give: they spin waiting for each other, and inside a host thread pool
    they oversubscribe the cores (2 pool threads x 2 BLAS threads on 2 cores).
    Measured on the 2-core VM at load ~15: ``(131, 128, 128) @ (131, 128, 128)``
    float64 took 0.40 CPU s with 2 BLAS threads, 0.016 with one (25x). Use it
    around such products and parallelise with a host thread pool instead
    (``host_threads``). The limit is process-wide while the block runs.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def glibc_function(name: str):
    """glibc's C function ``name`` (e.g. ``"mallopt"``, ``"malloc_trim"``) via ctypes, or
    None off glibc (macOS, Windows, musl) or where it is missing."""
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):
        return None

