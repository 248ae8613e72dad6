""":func:`profile_table` block by block: count, mean, std, exact median and quartiles.

Counts and sums add over pieces; the standard deviation is two-pass (centred
squares about the global mean, as on the whole volume); the median and quartiles
interpolate the exact order statistics of each group found by radix selection (three
passes over float32 values, five over float64).

Each input is read once per block. A first pass reads every block's mask, region
images and maps once for all tables and keeps, per block, only the particle voxels: the
region index (1-2 bytes) and the values (their own dtype) in raw files of a scratch
directory. Every later pass (sums, squares, selection) reads those back in *pieces* of
at most :data:`PIECE` voxels. Why: the passes re-read the store through dask (the
profile step read each map ~15 times, 4.9 of its 8.4 CPU s), and their per-voxel
arrays (groups, keys: ~30 bytes per value) grew with the particle's share of a block
(a quarter at 128^3 with chunk 64, all of an inner block at 256^3); a piece bounds
them whatever the fill. Memory: one block of inputs in the first pass, one piece per
thread after it.
"""

from __future__ import annotations

import os
from functools import partial

import numpy as np

from .._model import ValidationError
from ._blocks import (Scratch, block_workers, blocks, check_chunk, concurrently, map_blocks,
                      process_chunk, read, tiles_of)
from ._blockselect import key_codec, select_kth
from ._stats import _BY, _regions, assemble_table
from ._threads import thread_map

__all__ = ["PIECE", "profile_table_blocks", "profile_tables_blocks"]

_QUANTILES = (0.25, 0.5, 0.75)  # q25, median, q75

#: particle voxels per piece of the later passes (a 64^3 block holds 4 pieces when full)
PIECE = 1 << 16


def profile_table_blocks(values, regions, *, by: str, mask, chunk: int, bins=None,
                         n_regions: int | None = None, name: str | None = None,
                         workers: int | None = None, client=None, scratch_dir=None):
    """:func:`profile_table` (pooled over the mask) from block-readable arrays.

    Parameters
    ----------
    values : array-like, shape (nz, ny, nx) or (m, nz, ny, nx)
        The map(s); a DataArray template (dims, coords of the leading dim) is
        taken from ``values`` when it is one (read lazily).
    regions : array-like, shape (nz, ny, nx)
        Shell labels, class image or depth (nm), as for :func:`profile_table`.
    by : {"shell", "class", "depth"}
    mask : array-like, shape (nz, ny, nx), bool
        Particle mask: statistics over its voxels.
    chunk : int
        Block edge (voxels): one ``chunk^3`` block in flight per process, a slab of
        ``chunk / workers`` z rows per thread (as :func:`segment_volume`).
    bins : sequence of float
        Depth bin edges (nm), required for ``by="depth"``.
    n_regions : int, optional
        Number of shells (default: the largest shell label).
    name : str, optional
        The quantity's name in the table's attrs (default: the DataArray's).
    workers : int, optional
        Threads reading and reducing blocks (default ``OMP_NUM_THREADS`` or the
        CPU count; 1: serial); sums are folded in piece order whatever it is.
    client : distributed.Client, optional
        Reduce the blocks as tasks on this dask cluster instead.
    scratch_dir : path-like, optional
        Where the particle voxels go between passes (default: the temporary
        directory; with ``client``, one every worker sees). Size: per particle
        voxel, 1-2 bytes per region image and the map's bytes.

    Returns
    -------
    xarray.Dataset
        As :func:`profile_table` with ``labels=mask``: statistics equal to the
        whole-volume ones (sums in another order: ~1e-15 relative).
    """
    return profile_tables_blocks([dict(values=values, regions=regions, by=by, mask=mask,
                                       bins=bins, n_regions=n_regions, name=name)],
                                 chunk=chunk, workers=workers, client=client,
                                 scratch_dir=scratch_dir)[0]


def profile_tables_blocks(jobs, *, chunk: int, workers: int | None = None,
                          client=None, scratch_dir=None) -> list:
    """Several :func:`profile_table_blocks` at once, each input read once per block.

    Jobs passing the same object (``mask``, ``regions``, ``values``) share its reads:
    the first pass reads each distinct input once per block for every table. The
    tables' later passes run side by side on one set of ``workers`` threads (or the
    cluster). Results are those of one call per table.

    Parameters
    ----------
    jobs : sequence of dict
        Keyword arguments of :func:`profile_table_blocks` per table: ``values``,
        ``regions``, ``by``, ``mask`` and optionally ``bins``, ``n_regions``,
        ``name``.
    chunk, workers, client, scratch_dir :
        As :func:`profile_table_blocks`.

    Returns
    -------
    list of xarray.Dataset
        The tables, in the order of ``jobs``.
    """
    jobs = [dict(job) for job in jobs]
    for job in jobs:
        _check(job)
    chunk = check_chunk(chunk)
    if not isinstance(chunk, tuple) and jobs:  # one cube in flight whatever the volume
        chunk = _tiled(process_chunk(chunk, jobs[0]["mask"].shape, workers=workers,
                                     client=client),
                       [tiles_of(job["values"]) for job in jobs])
    with block_workers(workers, client=client), Scratch(chunk, scratch_dir) as scratch:
        cached = {}  # id(mask) -> _Particle: one first pass per distinct mask
        for job in jobs:
            key = id(job["mask"])
            if key not in cached:
                cached[key] = _Particle([j for j in jobs if j["mask"] is job["mask"]],
                                        chunk, scratch, index=len(cached))
        return concurrently(*[partial(_profile, cached[id(job["mask"])], **job)
                              for job in jobs])


def _tiled(block, tiles) -> tuple[int, int, int]:
    """``block``'s voxels as whole y/x tiles of the maps (the largest tile, up to twice the
    block's edge): (rows, tile, tile).

    Why: the maps' store tiles (256^2 x 16 rows at 256^3, 4 elements) are decoded whole
    for any part of them; blocks of 128^2 decoded each 4 times and held the decoded
    chunks of a 128-row block at once (+190 MiB at the first block of 256^3, one thread).
    The first pass writes raw files per block, so its blocks need not be store chunks.
    """
    z, y, x = block
    edge = max([y] + [min(max(t[1:]), 2 * y) for t in tiles if t])
    if edge == y:
        return block
    rows = max(8, z * y * x // (edge * edge))
    return (rows, edge, edge)


def _check(job) -> None:
    by = job.get("by")
    if by not in _BY:
        raise ValidationError(f"profile_table_blocks: by must be one of {_BY}; got {by!r}")
    if by == "depth" and job.get("bins") is None:
        raise ValidationError("profile_table_blocks: by='depth' needs bins (nm edges)")
    if by == "depth":  # the edges' own check, before any block is read
        _regions(np.zeros(1), "depth", np.ones(1, np.int64), None, job["bins"], None)


class _Particle:
    """The particle voxels of one mask's blocks, read once: per block the region index of
    each region image (as each table groups it) and the values of each map, in raw files.

    Attributes
    ----------
    pieces : list of (block, start, stop)
        Runs of at most :data:`PIECE` particle voxels, in block (raster) order.
    """

    def __init__(self, jobs, chunk, scratch, index: int = 0):
        mask = jobs[0]["mask"]
        self.shape = tuple(mask.shape)
        # one directory per mask: every particle names its files from b0-r0 on (a str:
        # pathlib's joins were ~7 % of the step's GIL-holding samples, one per piece read)
        self.dir = str(scratch.path / f"p{index}")
        os.mkdir(self.dir)
        # distinct inputs, named here (ids do not survive pickling to a cluster): a region
        # image per grouping rule (depth bins), a map per object
        self.names = {}
        self.regions, self.values = {}, {}
        for job in jobs:
            rk, vk = _region_key(job), id(job["values"])
            if rk not in self.names:
                self.names[rk] = f"r{len(self.regions)}"
                self.regions[self.names[rk]] = (job["regions"], job["by"], job.get("bins"))
            if vk not in self.names:
                self.names[vk] = f"v{len(self.values)}"
                self.values[self.names[vk]] = job["values"]
        self.dtypes = {k: np.dtype(getattr(v, "dtype", np.float64))
                       for k, v in self.values.items()}
        self.width = {k: int(v.shape[0]) if len(v.shape) > len(self.shape) else 0
                      for k, v in self.values.items()}  # 0: no leading dim
        cores = blocks(self.shape, chunk)
        records = map_blocks(partial(self._read_block, mask), list(enumerate(cores)))
        self.count = [r["n"] for r in records]
        self.max = {k: max((r["max"].get(k, 0) for r in records), default=0)
                    for k in self.regions}
        self.region_dtype = [r["dtypes"] for r in records]
        # the later passes read the files only: light tasks to ship to a cluster
        self.regions = {k: by for k, (_, by, _) in self.regions.items()}
        self.values = None
        self.pieces = [(b, s, min(s + PIECE, n)) for b, n in enumerate(self.count)
                       for s in range(0, n, PIECE)]

    def of(self, job) -> tuple[str, str]:
        """The names of a job's region index and values."""
        return self.names[_region_key(job)], self.names[id(job["values"])]

    def _read_block(self, mask, item):
        """Read one block's inputs once; write its particle voxels (raster order)."""
        b, core = item
        inside = read(mask, core) > 0
        n = int(np.count_nonzero(inside))
        rec = {"n": n, "max": {}, "dtypes": {}}

        def region(name):
            regions, by, bins = self.regions[name]
            reg = read(regions, core)
            if by == "shell":  # the largest label of the whole image, as profile_table
                rec["max"][name] = int(reg.max(initial=0))
            sel = reg[inside]
            idx = (_regions(sel, "depth", np.ones(n, np.int64), None, bins, None)[0]
                   if by == "depth" else sel)
            idx = _compact(np.asarray(idx))
            rec["dtypes"][name] = idx.dtype
            idx.tofile(f"{self.dir}/b{b}-{name}")

        def value(name):
            lead = (slice(None),) * bool(self.width[name])
            v = read(self.values[name], lead + core, self.dtypes[name])
            # voxel-major (n, m): a piece is one contiguous read
            sel = v[:, inside].T if self.width[name] else v[inside][:, None]
            np.ascontiguousarray(sel).tofile(f"{self.dir}/b{b}-{name}")

        # an empty block: only the shells' largest label is wanted from it
        work = [partial(region, k) for k, (_, by, _) in self.regions.items()
                if n or by == "shell"]
        work += [partial(value, k) for k in self.values] if n else []
        for _ in thread_map(lambda fn: fn(), work):  # the block's budget of threads
            pass
        return rec

    def load(self, piece, rname: str, vname: str):
        """(region index (p,), values (p, m)) of one piece."""
        b, s, e = piece
        dtype = self.region_dtype[b][rname]
        idx = np.fromfile(f"{self.dir}/b{b}-{rname}", dtype, count=e - s,
                          offset=s * dtype.itemsize)
        m, dt = max(1, self.width[vname]), self.dtypes[vname]
        vals = np.fromfile(f"{self.dir}/b{b}-{vname}", dt, count=(e - s) * m,
                           offset=s * m * dt.itemsize).reshape(e - s, m)
        return idx, vals


def _region_key(job):
    bins = job.get("bins")
    return (id(job["regions"]), job["by"], tuple(bins) if job["by"] == "depth" else None)


def _profile(particle, *, values, regions, by, mask, bins=None, n_regions=None, name=None):
    """One table from the particle voxels' pieces (sums, centred squares, selection)."""
    import xarray as xr

    rname, vname = particle.of(dict(values=values, regions=regions, by=by, bins=bins))
    m, lead = max(1, particle.width[vname]), bool(particle.width[vname])
    if by == "shell":
        n_reg = particle.max[rname] if n_regions is None else int(n_regions)
        dim, coords = "shell", {"shell": np.arange(1, n_reg + 1)}
    else:  # the class legend / the depth bins
        _, dim, coords, n_reg = _regions(np.zeros(1), by, np.ones(1, np.int64), None, bins,
                                         None)
    encode, decode, bits = key_codec(particle.dtypes[vname])
    size = m * n_reg
    pieces = particle.pieces

    def groups_of(piece):
        """(group index, value) of the counted values of one piece (voxel-major, then
        element: each group's values in raster order; values in their own dtype)."""
        idx, vals = particle.load(piece, rname, vname)
        inside = (idx > 0) & (idx <= n_reg)
        vals = vals[inside]
        finite = np.isfinite(vals)
        grp = (idx[inside].astype(np.int64) - 1)[:, None] + np.arange(m) * n_reg
        return grp[finite], vals[finite]

    def sums(piece):
        g, v = groups_of(piece)
        return np.stack([np.bincount(g, minlength=size).astype(np.float64),
                         np.bincount(g, weights=v, minlength=size)])

    count, total = map_blocks(sums, pieces, reduce=_add, initial=np.zeros((2, size)))
    count = count.astype(np.int64)  # exact: sums of integers below 2^53
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count

    def squares(piece):
        g, v = groups_of(piece)
        c = v - mean[g]
        return np.bincount(g, weights=c * c, minlength=size)

    sq = map_blocks(squares, pieces, reduce=_add, initial=np.zeros(size))
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(sq / count)
    quantiles = {q: np.full(size, np.nan) for q in _QUANTILES}
    has = np.nonzero(count > 0)[0]
    if has.size:
        def item(piece):
            g, v = groups_of(piece)
            return g, encode(v)

        # the two order statistics around each quantile (numpy's linear interpolation)
        pos = {q: q * (count[has] - 1) for q in _QUANTILES}
        lo = {q: np.floor(p).astype(np.int64) for q, p in pos.items()}
        hi = {q: np.minimum(lo[q] + 1, count[has] - 1) for q in _QUANTILES}
        ranks = np.stack([r for q in _QUANTILES for r in (lo[q], hi[q])], axis=1).ravel()
        targets = np.repeat(has, 2 * len(_QUANTILES))
        found, _ = select_kth(item, pieces, targets, ranks, bits=bits)
        vals = decode(found).reshape(has.size, -1, 2)
        for i, q in enumerate(_QUANTILES):
            frac = pos[q] - lo[q]
            quantiles[q][has] = (1 - frac) * vals[:, i, 0] + frac * vals[:, i, 1]
    template = values if isinstance(values, xr.DataArray) else None
    if template is not None and name is not None:
        template = template.rename(name)
    part = [slice(k * n_reg, (k + 1) * n_reg) for k in range(m)]  # element-major groups
    results = [{"mean": mean[sl][None], "std": std[sl][None],
                **{stat: quantiles[q][sl][None]
                   for stat, q in (("q25", 0.25), ("median", 0.5), ("q75", 0.75))},
                "count": count[sl][None], "particle": np.array([1])} for sl in part]
    return assemble_table(results, dim, coords, template, lead=lead, per_particle=False,
                          by=by)


def _add(acc, part):
    return acc + part


def _compact(idx: np.ndarray) -> np.ndarray:
    """Region indices in the smallest unsigned type holding them (int64 if negative)."""
    if idx.size == 0:
        return idx.astype(np.uint8)
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0:
        return idx.astype(np.int64)
    return idx.astype(np.min_scalar_type(hi))
