""":func:`profile_table` block by block: count, mean, std, exact median and quartiles.

Counts and sums add over blocks; the standard deviation is two-pass (centred
squares about the global mean, as on the whole volume); the median and quartiles
interpolate the exact order statistics of each group found by radix selection (two passes over
float32 values, four over float64). Memory: one block of values and regions.
"""

from __future__ import annotations

import numpy as np

from .._model import ValidationError
from ._blocks import block_workers, blocks, map_blocks, read
from ._blockselect import from_sortable, select_kth, sortable
from ._stats import _regions, assemble_table

__all__ = ["profile_table_blocks"]

_SIGN32 = np.uint32(1) << np.uint32(31)
_QUANTILES = (0.25, 0.5, 0.75)  # q25, median, q75


def _sortable32(values: np.ndarray) -> np.ndarray:
    u = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    return np.where(u & _SIGN32, ~u, u | _SIGN32).astype(np.uint64)


def _from_sortable32(keys) -> np.ndarray:
    k = np.asarray(keys).astype(np.uint32)
    return np.where(k & _SIGN32, k & ~_SIGN32, ~k).view(np.float32).astype(np.float64)


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
        Block edge (voxels); halved (down to 32) while there are fewer than two
        blocks per thread.
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
    with block_workers(workers, client=client):
        return _profile(values, regions, by=by, mask=mask, chunk=chunk, bins=bins,
                        n_regions=n_regions, name=name)


def _profile(values, regions, *, by, mask, chunk, bins, n_regions, name):
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
    f32 = np.dtype(getattr(values, "dtype", np.float64)) == np.float32

    def groups_of(core):
        """(group index, value) of the counted voxels of one block."""
        lab = read(mask, core).astype(np.int64)
        reg = read(regions, core)
        idx = (reg.astype(np.int64) if by != "depth" else
               _regions(reg, "depth", lab, None, bins, None)[0])
        vals = read(values, (slice(None),) * lead + core, np.float64)
        vals = vals if lead else vals[None]
        sel = (idx > 0) & (idx <= n_reg) & (lab > 0) & np.isfinite(vals)
        grp = np.arange(m).reshape((m,) + (1,) * idx.ndim) * n_reg + (idx[None] - 1)
        return np.broadcast_to(grp, vals.shape)[sel], vals[sel]

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
        key = _sortable32 if f32 else sortable

        def item(core):
            g, v = groups_of(core)
            return g, key(v)

        # the two order statistics around each quantile (numpy's linear interpolation)
        pos = {q: q * (count[has] - 1) for q in _QUANTILES}
        lo = {q: np.floor(p).astype(np.int64) for q, p in pos.items()}
        hi = {q: np.minimum(lo[q] + 1, count[has] - 1) for q in _QUANTILES}
        ranks = np.stack([r for q in _QUANTILES for r in (lo[q], hi[q])], axis=1).ravel()
        targets = np.repeat(has, 2 * len(_QUANTILES))
        found, _ = select_kth(item, blocks(shape, chunk), targets, ranks,
                              bits=32 if f32 else 64)
        vals = (_from_sortable32 if f32 else from_sortable)(found).reshape(has.size, -1, 2)
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
