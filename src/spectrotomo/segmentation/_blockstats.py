""":func:`profile_table` block by block: count, mean, std, exact median and quartiles.

Counts and sums add over blocks; the standard deviation is two-pass (centred
squares about the global mean, as on the whole volume); the median and quartiles
interpolate the exact order statistics of each group found by radix selection (two passes over
float32 values, four over float64). Memory: one block of values and regions.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .._model import ValidationError
from ._blocks import block_workers, blocks, concurrently, map_blocks, read
from ._blockselect import key_codec, select_kth
from ._stats import _regions, assemble_table

__all__ = ["profile_table_blocks", "profile_tables_blocks"]

_QUANTILES = (0.25, 0.5, 0.75)  # q25, median, q75


def profile_table_blocks(values, regions, *, by: str, mask, chunk: int, bins=None,
                         n_regions: int | None = None, name: str | None = None,
                         workers: int | None = None, client=None):
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
        Block edge (voxels).
    bins : sequence of float
        Depth bin edges (nm), required for ``by="depth"``.
    n_regions : int, optional
        Number of shells (default: the largest shell label, one extra pass).
    name : str, optional
        The quantity's name in the table's attrs (default: the DataArray's).
    workers : int, optional
        Threads reading and reducing blocks (default ``OMP_NUM_THREADS`` or the
        CPU count; 1: serial); sums are folded in block order whatever it is.
    client : distributed.Client, optional
        Reduce the blocks as tasks on this dask cluster instead.

    Returns
    -------
    xarray.Dataset
        As :func:`profile_table` with ``labels=mask``: statistics equal to the
        whole-volume ones (sums in another order: ~1e-15 relative).
    """
    return profile_tables_blocks([dict(values=values, regions=regions, by=by, mask=mask,
                                       bins=bins, n_regions=n_regions, name=name)],
                                 chunk=chunk, workers=workers, client=client)[0]


def profile_tables_blocks(jobs, *, chunk: int, workers: int | None = None,
                          client=None) -> list:
    """Several :func:`profile_table_blocks` at once, sharing the threads (or cluster).

    The tables are independent: they run side by side, their block loops on
    one set of ``workers`` threads, so a volume of fewer blocks than threads
    keeps every thread busy (each table alone is a chain of passes over its
    blocks). Results are those of one call per table.

    Parameters
    ----------
    jobs : sequence of dict
        Keyword arguments of :func:`profile_table_blocks` per table: ``values``,
        ``regions``, ``by``, ``mask`` and optionally ``bins``, ``n_regions``,
        ``name``.
    chunk, workers, client :
        As :func:`profile_table_blocks`.

    Returns
    -------
    list of xarray.Dataset
        The tables, in the order of ``jobs``.
    """
    with block_workers(workers, client=client):
        return concurrently(*[partial(_profile, chunk=chunk, **job) for job in jobs])


def _profile(values, regions, *, by, mask, chunk, bins=None, n_regions=None, name=None):
    import xarray as xr

    shape = tuple(mask.shape)
    lead = len(values.shape) - len(shape)
    if by == "depth" and bins is None:
        raise ValidationError("profile_table_blocks: by='depth' needs bins (nm edges)")
    if by == "shell" and n_regions is None:
        n_regions = max(map_blocks(lambda core: int(read(regions, core).max(initial=0)),
                                   blocks(shape, chunk)))
    if by == "shell":
        dim, coords, n_reg = "shell", {"shell": np.arange(1, n_regions + 1)}, n_regions
    else:  # the class legend / the depth bins: any block gives the coords
        first = blocks(shape, chunk)[0]
        _, dim, coords, n_reg = _regions(read(regions, first), by,
                                         read(mask, first).astype(np.int64), None, bins, None)
    m = int(values.shape[0]) if lead else 1
    encode, decode, bits = key_codec(getattr(values, "dtype", np.float64))

    def groups_of(core):
        """(group index, value) of the counted voxels of one block (element-major, then
        raster order; values in their own dtype: float32 sums and keys are exact)."""
        lab = read(mask, core)
        reg = read(regions, core)
        idx = (reg.astype(np.int64) if by != "depth" else
               _regions(reg, "depth", lab.astype(np.int64), None, bins, None)[0])
        inside = (idx > 0) & (idx <= n_reg) & (lab > 0)  # the 3-D selection once, not per map
        vals = read(values, (slice(None),) * lead + core)
        vals = vals[:, inside] if lead else vals[inside][None]
        finite = np.isfinite(vals)
        grp = np.arange(m)[:, None] * n_reg + (idx[inside] - 1)[None]
        return grp[finite], vals[finite]

    size = m * n_reg

    def sums(core):
        g, v = groups_of(core)
        return np.stack([np.bincount(g, minlength=size).astype(np.float64),
                         np.bincount(g, weights=v, minlength=size)])

    count, total = map_blocks(sums, blocks(shape, chunk), reduce=_add,
                              initial=np.zeros((2, size)))
    count = count.astype(np.int64)  # exact: sums of integers below 2^53
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count

    def squares(core):
        g, v = groups_of(core)
        c = v - mean[g]
        return np.bincount(g, weights=c * c, minlength=size)

    sq = map_blocks(squares, blocks(shape, chunk), reduce=_add, initial=np.zeros(size))
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(sq / count)
    quantiles = {q: np.full(size, np.nan) for q in _QUANTILES}
    has = np.nonzero(count > 0)[0]
    if has.size:
        def item(core):
            g, v = groups_of(core)
            return g, encode(v)

        # the two order statistics around each quantile (numpy's linear interpolation)
        pos = {q: q * (count[has] - 1) for q in _QUANTILES}
        lo = {q: np.floor(p).astype(np.int64) for q, p in pos.items()}
        hi = {q: np.minimum(lo[q] + 1, count[has] - 1) for q in _QUANTILES}
        ranks = np.stack([r for q in _QUANTILES for r in (lo[q], hi[q])], axis=1).ravel()
        targets = np.repeat(has, 2 * len(_QUANTILES))
        found, _ = select_kth(item, blocks(shape, chunk), targets, ranks, bits=bits)
        vals = decode(found).reshape(has.size, -1, 2)
        for i, q in enumerate(_QUANTILES):
            frac = pos[q] - lo[q]
            quantiles[q][has] = (1 - frac) * vals[:, i, 0] + frac * vals[:, i, 1]
    template = values if isinstance(values, xr.DataArray) else None
    if template is not None and name is not None:
        template = template.rename(name)
    results = [{"mean": mean[k * n_reg:(k + 1) * n_reg][None],
                "std": std[k * n_reg:(k + 1) * n_reg][None],
                **{name: quantiles[q][k * n_reg:(k + 1) * n_reg][None]
                   for name, q in (("q25", 0.25), ("median", 0.5), ("q75", 0.75))},
                "count": count[k * n_reg:(k + 1) * n_reg][None],
                "particle": np.array([1])} for k in range(m)]
    return assemble_table(results, dim, coords, template, lead=bool(lead), per_particle=False,
                          by=by)



def _add(acc, part):
    return acc + part
