"""Exact Euclidean distance transform out of core: separable passes on pencils.

Why this algorithm: the squared Euclidean distance transform is separable
(Felzenszwalb & Huttenlocher 2012; Meijster et al. 2000): a 1-D lower envelope
of parabolas along axis 0, then along axis 1 on that result, then along axis 2
gives the exact squared distance to the nearest feature voxel. Each 1-D pass
needs whole lines along its own axis only, so it runs on pencils -- the full
extent along the pass's axis times a small cross-section -- read from and
written to a zarr scratch array. A pencil holds at most ``chunk^3`` voxels
(its cross-section narrows as the volume grows), so memory per thread is one
block's worth whatever the volume or the depth of the particles: the halo
method of :mod:`._blockedt` needs the block grown by its depth instead (the
whole particle for its central blocks).

Distances are summed like ``scipy.ndimage.distance_transform_edt`` (squares of
the scaled integer offsets, float64, axis 0 first, then a square root), so on
voxels where the nearest feature is unique they are the same bits.
"""

from __future__ import annotations

import itertools
import threading
from typing import Callable

import numpy as np

from .._backend import host_threads
from ._blocks import edges_of, map_blocks

__all__ = ["exact_distance", "warm_kernel"]

_KERNEL = None
_KERNEL_LOCK = threading.Lock()  # the first passes of a loop start on every thread at once


def _kernel():
    """The numba-compiled 1-D envelope (compiled once per process, cached on disk)."""
    with _KERNEL_LOCK:
        return _KERNEL or _compile()


def warm_kernel() -> None:
    """Load the kernel (numba's import and disk cache: 0.3-0.8 s, mostly under the GIL)
    in a background thread, while stages that do not need it run: the first pass of
    :func:`exact_distance` otherwise loads it with every block thread waiting on
    ``_KERNEL_LOCK``. A failure is left to that first pass, which raises it."""
    def load():
        try:  # calls of _pass's argument types: numba's dispatch of those signatures too
            for dtype in (np.float64, np.float32):  # exact_distance's, _blockedt's
                f = np.zeros((1, 2), dtype)
                _kernel()(f, np.empty_like(f), 1.0, False)
        except Exception:  # noqa: BLE001 - raised again by the first pass that needs it
            pass

    threading.Thread(target=load, name="spectrotomo-numba-warm", daemon=True).start()


def _compile():
    """Compile (or load from numba's disk cache) the kernel; under ``_KERNEL_LOCK``."""
    global _KERNEL
    import numba

    @numba.njit(nogil=True, cache=True)
    def envelope(f, out, s, edge):  # pragma: no cover - compiled
        """Rows of ``f`` (lines, n): out[i] = min_q f[q] + (s (i - q))^2; with ``edge``
        the positions -1 and n hold features (f = 0)."""
        lines, n = f.shape
        v = np.empty(n + 2, np.int64)  # parabola apexes of the lower envelope
        z = np.empty(n + 3, np.float64)  # their left boundaries
        for line in range(lines):
            k = -1
            for q in range(-1, n + 1):
                if q == -1 or q == n:
                    if not edge:
                        continue
                    fq = 0.0
                else:
                    fq = f[line, q]
                    if not np.isfinite(fq):
                        continue
                while True:
                    if k < 0:
                        k = 0
                        v[0] = q
                        z[0] = -np.inf
                        break
                    p = v[k]
                    fp = 0.0 if (p == -1 or p == n) else f[line, p]
                    x = ((fq + (s * q) ** 2) - (fp + (s * p) ** 2)) / (2.0 * s * s * (q - p))
                    if x <= z[k]:
                        k -= 1
                        continue
                    k += 1
                    v[k] = q
                    z[k] = x
                    break
            if k < 0:
                out[line, :] = np.inf
                continue
            z[k + 1] = np.inf
            j = 0
            for i in range(n):
                while z[j + 1] < i:
                    j += 1
                p = v[j]
                fp = 0.0 if (p == -1 or p == n) else f[line, p]
                d = s * (i - p)
                out[line, i] = fp + d * d
        return out

    _KERNEL = envelope
    return _KERNEL


def _pass(values: np.ndarray, axis: int, s: float, edge: bool) -> np.ndarray:
    """One 1-D envelope pass along ``axis`` of a pencil (float64 or float32 in and out;
    float64 arithmetic)."""
    lines = np.ascontiguousarray(np.moveaxis(values, axis, -1))
    shape = lines.shape
    flat = lines.reshape(-1, shape[-1])
    out = np.empty_like(flat)
    _kernel()(flat, out, float(s), bool(edge))
    return np.moveaxis(out.reshape(shape), -1, axis)


def pencil_width(shape, chunk, threads: int | None = None) -> int:
    """Cross-section edge (voxels) of the pencils: at most the block's shortest edge, at
    most a block's voxels per pencil (``chunk``: a cube's edge or the block's 3 edges),
    and narrow enough that every pass has two pencils per thread."""
    threads = host_threads() if threads is None else threads
    longest = max(shape)
    edges = edges_of(chunk)
    w = min(min(edges), max(8, int(np.sqrt(np.prod(edges, dtype=float) / longest))))
    while w > 8 and min(_count(shape, w, a) for a in range(len(shape))) < 2 * threads:
        w = max(8, w // 2)
    return w


def _count(shape, w, axis) -> int:
    return int(np.prod([-(-n // w) for b, n in enumerate(shape) if b != axis]))


def _pencils(shape, w, axis) -> list[tuple[slice, ...]]:
    ranges = [[slice(0, n)] if b == axis else
              [slice(a, min(a + w, n)) for a in range(0, n, w)] for b, n in enumerate(shape)]
    return [tuple(s) for s in itertools.product(*ranges)]


def exact_distance(feature: Callable, shape, *, spacing, chunk: int, scratch,
                   edge_feature: bool = False):
    """Distance (nm) from every voxel to the nearest feature voxel, out of core.

    Parameters
    ----------
    feature : callable(slices) -> bool ndarray
        The feature set on any region (e.g. ``lambda sl: ~mask[sl]``).
    shape : tuple of int
        Volume shape (voxels).
    spacing : sequence of float
        Voxel size in nm per axis.
    chunk : int or tuple of 3 int
        Block edge(s) (voxels): a pencil holds at most a block's voxels.
    scratch : Scratch
        Where the passes' float64 arrays go (two volumes while the passes run; the
        spare one is released at the end).
    edge_feature : bool
        The voxels beyond the array edge are features (a mask padded by one
        voxel of feature).

    Returns
    -------
    zarr array, shape ``shape``, float64
        Distance in nm (0 on features, inf where there is no feature at all).
    """
    spacing = np.asarray(spacing, dtype=float)
    w = pencil_width(shape, chunk)
    first, second = (scratch.array(shape, np.float64, chunks=(w,) * len(shape), compress=False)
                     for _ in range(2))

    def pass0(sl):
        f = np.where(feature(sl), 0.0, np.inf)
        first[sl] = _pass(f, 0, spacing[0], edge_feature)

    def later(sl, src, dst, axis):
        d2 = _pass(src[sl], axis, spacing[axis], edge_feature)
        dst[sl] = np.sqrt(d2, out=d2) if axis == len(shape) - 1 else d2  # no copy

    map_blocks(pass0, _pencils(shape, w, 0))
    src, dst = first, second
    for axis in range(1, len(shape)):  # axis 0 first: scipy's order of the squared sum
        map_blocks(lambda sl: later(sl, src, dst, axis), _pencils(shape, w, axis))
        src, dst = dst, src
    scratch.release(dst)  # the spare pass buffer: only the result is kept
    return src
