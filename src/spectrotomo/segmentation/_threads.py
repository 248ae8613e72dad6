"""Threads inside one block: the cores a block loop leaves idle.

A volume of one block (the demo's 128^3 at the default chunk) gives every block
loop one task, so the threads of :func:`block_workers` would idle. The thread
budget follows the work down: ``block_workers(n)`` grants ``n`` threads, a loop
of ``k`` blocks grants each block ``n // k`` (nothing extra once there are as many
blocks as threads), :func:`concurrently` splits a budget between the stages it
runs. Kernels spend their block's budget with :func:`thread_map` over independent
pieces (layers, lines of a separable filter): the same operations on the same
values, so results do not depend on the threads. Serial runs and tasks on a dask
cluster get a budget of 1.
"""

from __future__ import annotations

import contextvars
import functools
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import numpy as np

__all__ = ["budget", "granted", "share", "thread_map", "gaussian_filter"]

#: threads the code running here may use (1: serial)
_BUDGET: contextvars.ContextVar = contextvars.ContextVar("spectrotomo_threads", default=1)


def budget() -> int:
    """Threads the current block (or stage) may use."""
    return _BUDGET.get()


@contextmanager
def granted(n: int):
    """Grant ``n`` threads to the code inside (``block_workers`` grants its pool's)."""
    token = _BUDGET.set(max(1, int(n)))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def share(fn: Callable, parts: int, index: int = 0) -> Callable:
    """``fn`` running with this budget split ``parts`` ways (``index``: which part; the
    first ``budget % parts`` parts get one more); ``fn`` itself when that is 1 thread."""
    whole = budget()
    n = max(1, whole // max(1, parts) + (index < whole % max(1, parts)))
    if n == 1 and whole == 1:
        return fn

    @functools.wraps(fn)  # the block function's name (gpu_bench/diagnostics/seg_memory.py)
    def run(*args, **kwargs):
        with granted(n):
            return fn(*args, **kwargs)

    return run


def thread_map(fn: Callable[[Any], Any], items: Iterable) -> Iterator:
    """``fn(item)`` for every item on this budget's threads; results in item order (a
    generator: at most budget tasks ahead of the consumer). Serial with a budget of 1.
    ``fn`` runs with a budget of 1."""
    n = budget()
    if n <= 1:
        yield from map(fn, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n, thread_name_prefix="spectrotomo-inner") as pool:
        yield from ordered(lambda f: f, pool.submit, n, fn, items)


#: results a loop holds finished ahead of the one it waits for, per task in flight
#: (:func:`ordered`): the memory of out-of-order results, not of running blocks
AHEAD = 4


def ordered(prepare, submit, width, fn, items):
    """``prepare(fn)(item)`` submitted by ``submit`` for every item; results in item
    order with at most ``width`` tasks unfinished at once (block loops and thread_map).

    A task that ends before the oldest one makes room for the next item: a slow block
    no longer holds the others' threads idle until it ends (head-of-line: the masked
    smoothing of simulate:large ran ~2 CPU s on one thread of two, one central block
    waited for while the cheap outer ones had ended). Finished results wait for their
    turn, at most ``AHEAD * width`` of them. Futures other than ``concurrent.futures``
    ones (a dask cluster's) are taken in order, one ending at a time.
    """
    from concurrent.futures import FIRST_COMPLETED, Future, wait

    fn = prepare(fn)
    it = iter(items)
    pending = deque()  # submitted, in item order
    running = set()  # submitted and not yet finished

    def fill():
        while len(running) < width and len(pending) < AHEAD * width:
            item = next(it, _END)
            if item is _END:
                return
            f = submit(fn, item)
            pending.append(f)
            running.add(f)

    try:
        fill()
        while pending:
            head = pending[0]
            if isinstance(head, Future):
                while not head.done():  # room for more as soon as any task ends
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    running.difference_update(done)
                    fill()
            result = pending.popleft().result()
            running.discard(head)
            fill()
            yield result
    finally:
        for f in pending:  # an error: do not leave tasks writing behind
            f.cancel()


_END = object()


def _slabs(n: int, parts: int) -> list[slice]:
    edges = np.linspace(0, n, min(parts, n) + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def gaussian_filter(values: np.ndarray, sigma, *, mode: str = "reflect",
                    truncate: float = 4.0) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(values, sigma, mode=mode)`` (float32 in, float32
    out), each 1-D pass split over slabs across another axis on this budget's threads.

    The same 1-D correlation of the same lines, axis by axis in scipy's order with the
    same float32 intermediates: bit-identical to scipy's whole-array call, no margins.
    """
    from scipy import ndimage

    sigma = np.broadcast_to(np.asarray(sigma, dtype=float), (values.ndim,))
    axes = [a for a in range(values.ndim) if sigma[a] > 1e-15]
    n = budget()
    if n <= 1 or not axes:
        return ndimage.gaussian_filter(values, sigma, mode=mode, truncate=truncate)
    src = values
    for axis in axes:
        out = np.empty_like(values)
        # split along the longest other axis (the leading axis may be 2 maps)
        other = max((a for a in range(values.ndim) if a != axis), key=lambda a: values.shape[a])

        def one(sl, src=src, out=out, axis=axis, other=other):
            idx = (slice(None),) * other + (sl,)
            ndimage.gaussian_filter1d(src[idx], sigma[axis], axis=axis, output=out[idx],
                                      mode=mode, truncate=truncate)

        for _ in thread_map(one, _slabs(values.shape[other], n)):
            pass
        src = out
    return src
