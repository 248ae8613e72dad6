"""Bounded reads of store volumes for the report: block reductions, strided samples
and masked histograms, so that its memory does not grow with the volume.

The report's volumes come from :func:`spectrotomo.io.read_group` as dask arrays in the
store's chunks. Counts and means are sums over those chunks (exact: integer counts,
float64 sums); colour limits come from a strided sample of at most
:data:`SAMPLE_VOXELS` voxels; histograms count every voxel, block by block, in two
passes (range, then counts). Memory: one block per thread in flight (a segmentation
chunk, 128^3 by default; for the element maps one element x ``chunk_rows`` z rows x a
y/x tile of at most 256 px, ``steps._layout.volume_chunks``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

__all__ = ["SAMPLE_VOXELS", "array_of", "block_map", "block_sums", "sample", "strided",
           "masked_histogram"]

#: Voxels of the strided sample that colour limits (percentiles) are taken from: a
#: volume of more voxels is read every ``s``-th voxel along each axis, ``s`` the
#: smallest stride that keeps the sample within this (128^3 and smaller, the demo:
#: every voxel; 256^3: every 2nd; 2048^3: every 16th). At 2^24 (256^3 whole) the samples
#: held 0.4 GiB per figure thread and the report's peak grew 0.35 -> 0.91 GiB from 128^3
#: to 256^3 (gpu_bench/diagnostics/report_scale.py); 2 million voxels put the 1/99 %
#: percentiles within sampling noise of the whole volume's.
SAMPLE_VOXELS = 2**21


def array_of(x):
    """The array behind an xarray object (dask or numpy), else ``x``."""
    import xarray as xr

    return x.data if isinstance(x, (xr.DataArray, xr.Variable)) else x


def block_map(fn: Callable, *arrays, pool=None) -> list:
    """``fn(*blocks)`` for every block of ``arrays``, in block (raster) order.

    Parameters
    ----------
    fn : callable
        Takes one numpy block of each array (same shapes) and returns something small.
    *arrays : dask / numpy arrays or xarray DataArrays, all of one shape
        Blocked as the first dask array among them (numpy inputs: one block).
    pool : concurrent.futures.Executor, optional
        Threads the blocks run on (dask's threaded scheduler on this pool; do not call
        from one of its own threads); None: one after the other in this thread.
    """
    import dask
    import dask.array as da

    arrays = [array_of(a) for a in arrays]
    lead = next((a for a in arrays if isinstance(a, da.Array)), None)
    chunks = lead.chunks if lead is not None else tuple((n,) for n in np.shape(arrays[0]))
    arrays = [da.asarray(a).rechunk(chunks) for a in arrays]
    parts = [dask.delayed(fn)(*blocks)
             for blocks in zip(*(a.to_delayed().ravel() for a in arrays))]
    if pool is None:
        return list(dask.compute(*parts, scheduler="sync"))
    return list(dask.compute(*parts, scheduler="threads", pool=pool))


def block_sums(fn: Callable, *arrays, pool=None) -> np.ndarray:
    """Sum over the blocks (in block order) of ``fn(*blocks)``, a 1-D array of counts
    or float64 sums: see :func:`block_map`."""
    return functools.reduce(np.add, (np.asarray(p) for p in block_map(fn, *arrays, pool=pool)))


def sample(values, *, cap: int = SAMPLE_VOXELS) -> np.ndarray:
    """Every ``s``-th voxel along each axis of ``values`` (dask/numpy/xarray; from
    ``s // 2``), ``s`` the smallest stride that leaves at most ``cap`` voxels (1: all of
    them), as numpy.
    Read chunk by chunk: memory is the sample plus one chunk."""
    part = strided(array_of(values), cap=cap)
    if hasattr(part, "compute"):
        part = part.compute(scheduler="sync")
    return np.asarray(part)


def strided(values, *, cap: int = SAMPLE_VOXELS):
    """:func:`sample`, not read yet: a lazy ``values`` gives a lazy sample (to read with
    other parts of it at once, each chunk once). Only the last three (spatial) axes are
    strided: leading ones (elements, energies) are kept whole."""
    full = np.array(np.shape(values))
    shape, lead = full[-3:], full[:-3]
    stride = 1
    # (ceil(n / stride) per axis: -(-n // s); the product taken after the negation, which
    # an even number of axes turned positive before: 2-D and 4-D inputs were never strided)
    while np.prod(-(-shape // stride)) * int(np.prod(lead)) > cap and stride < shape.max():
        stride += 1
    # centred: every stride-th voxel from stride // 2, so that both ends of each axis are
    # as near as the spacing allows (from 0, a gradient's top end went missing: its 1 %
    # limit moved 3.6 % of the colour range at stride 3; centred 0.2 %)
    return (values[(slice(None),) * lead.size + (slice(stride // 2, None, stride),) * shape.size]
            if stride > 1 else values)


def masked_histogram(values, mask=None, *, bins: int = 100,
                     range: tuple[float, float] | None = None):
    """Counts and bin edges of the finite ``values`` inside ``mask``, ``bins`` equal bins
    from their minimum to their maximum (or over ``range``), counted block by block: what
    ``numpy.histogram(v, bins, range)`` gives on those values gathered (range (0, 1) when
    there are none; min +- 0.5 when they are all equal). With ``range`` also the number
    of values below and above it: ``(counts, edges, (below, above))``."""

    def _selected(v, m):
        v = np.asarray(v, dtype=float)
        keep = np.isfinite(v) if m is None else np.isfinite(v) & np.asarray(m, dtype=bool)
        return v[keep]

    arrays = (values,) if mask is None else (values, mask)

    def _range(v, m=None):
        v = _selected(v, m)
        return (v.min(), v.max(), v.size) if v.size else (np.inf, -np.inf, 0)

    if range is None:
        ranges = block_map(_range, *arrays)
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        if not sum(r[2] for r in ranges):
            lo, hi = 0.0, 1.0
        elif lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
    else:
        lo, hi = float(range[0]), float(range[1])
    edges = np.linspace(lo, hi, bins + 1)

    def _counts(v, m=None):  # the bins, then the values below and above them
        v = _selected(v, m)
        return np.append(np.histogram(v, bins=edges)[0], [(v < lo).sum(), (v > hi).sum()])

    counts = block_sums(_counts, *arrays)
    if range is None:
        return counts[:-2], edges
    return counts[:-2], edges, (int(counts[-2]), int(counts[-1]))
