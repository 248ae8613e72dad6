"""Particle mask, depth, shells and masked smoothing, block by block (exact).

Each function gives the same result as its whole-volume counterpart
(:func:`particle_mask`, :func:`depth`, :func:`shells`, :func:`masked_smooth`):
local operations read a halo as wide as their kernel; the global parts are
exact out-of-core algorithms: the Otsu histogram summed over blocks,
connected components merged across faces (:mod:`._blocklabel`), the distance
transform with a halo and a nearest-surface query beyond it (:mod:`._blockedt`),
equal-count shell cuts by radix selection (:mod:`._blockselect`).
"""

from __future__ import annotations

import numpy as np

from .._model import ValidationError
from ._blockedt import feature_distance
from ._blocklabel import label_blocks
from ._blocks import blocks, edges_of, extend, map_blocks, read
from ._blocksep import exact_distance
from ._blockselect import select_kth
from ._threads import budget, gaussian_filter, thread_map

__all__ = ["particle_mask_blocks", "depth_blocks", "shells_blocks", "masked_smooth_blocks"]


def _cross(ndim=3):
    from scipy import ndimage

    return ndimage.generate_binary_structure(ndim, 1)


def _nan_fill(volume, shape, chunk, bright: bool) -> float:
    """The fill value of NaN voxels (the finite min if bright, else max)."""
    def span(core):
        v = read(volume, core, np.float32)
        v = v[np.isfinite(v)]
        return (v.min(), v.max()) if v.size else (np.inf, -np.inf)

    lo, hi = map_blocks(span, blocks(shape, chunk), reduce=_widen, initial=(np.inf, -np.inf))
    if lo > hi:
        raise ValidationError("volume has no finite value")
    return np.float32(lo if bright else hi)


def _widen(acc, span):
    return min(acc[0], span[0]), max(acc[1], span[1])


def _add(acc, part):
    return acc + part


def _add_counts(acc, part):
    ids, counts = part
    acc[ids] += counts
    return acc


def particle_mask_blocks(volume, *, chunk: int, scratch, smooth: float = 1.0,
                         min_size: int = 64, fill_holes: bool = True, bright: bool = True,
                         method="otsu"):
    """:func:`particle_mask` block by block (``opening=0``).

    ``method``: ``"otsu"`` (histogram summed over blocks) or a threshold value.
    Returns (bool zarr array of the mask, threshold).
    """
    from skimage.filters import threshold_otsu

    if isinstance(method, str) and method != "otsu":
        raise ValidationError(f"the block-wise particle mask supports method='otsu' or a "
                              f"threshold value; got {method!r}")
    shape = tuple(volume.shape)
    fill = _nan_fill(volume, shape, chunk, bright)
    smoothed = scratch.array(shape, np.float32)
    finite = scratch.array(shape, bool)
    radius = int(4.0 * smooth + 0.5)  # scipy's truncate=4

    def smooth_block(core):
        ext, inner = extend(core, shape, radius)
        v = read(volume, ext, np.float32)
        f = np.isfinite(v)
        v = np.where(f, v, fill)
        if smooth > 0:  # scipy's filter, its passes split over the block's threads
            v = gaussian_filter(v, smooth)
        smoothed[core], finite[core] = v[inner], f[inner]
        v = v[inner][f[inner]]
        return (v.min(), v.max()) if v.size else (np.float32(np.inf), np.float32(-np.inf))

    lo, hi = map_blocks(smooth_block, blocks(shape, chunk), reduce=_widen,
                        initial=(np.float32(np.inf), np.float32(-np.inf)))
    if isinstance(method, str):
        if lo == hi:
            raise ValidationError("volume is constant: no threshold separates particle and "
                                  "background")

        def histogram(core):
            v = read(smoothed, core)[read(finite, core)]
            return np.histogram(v, bins=256, range=(lo, hi))[0]

        counts = map_blocks(histogram, blocks(shape, chunk), reduce=_add,
                            initial=np.zeros(256, np.int64))
        edges = np.linspace(lo, hi, 257, endpoint=True, dtype=np.float32)
        threshold = float(threshold_otsu(hist=(counts, (edges[:-1] + edges[1:]) / 2.0)))
    else:
        threshold = float(method)

    def cut(sl):
        s = read(smoothed, sl)
        return ((s > threshold) if bright else (s < threshold)) & read(finite, sl)

    raw = mask = scratch.filled(shape, bool, cut)
    if min_size > 1:
        lab = label_blocks(raw, chunk=chunk, scratch=scratch, connectivity=6)
        # per block the labels present only: a dense count per block grows with the volume
        sizes = map_blocks(lambda core: np.unique(lab[core], return_counts=True),
                           blocks(shape, chunk), reduce=_add_counts,
                           initial=np.zeros(lab.n + 1, np.int64))
        keep = sizes >= min_size
        keep[0] = False
        mask = scratch.filled(shape, bool, lambda sl: keep[lab[sl]])
    if fill_holes:
        mask = _fill_holes(mask, shape, chunk, scratch)
    return mask, threshold


def _fill_holes(mask, shape, chunk, scratch):
    """``binary_fill_holes``: background components off the array border become mask."""
    inverse = scratch.filled(shape, bool, lambda sl: ~read(mask, sl))
    lab = label_blocks(inverse, chunk=chunk, scratch=scratch, connectivity=6)

    def on_faces(core):
        block, ids = lab[core], [np.zeros(0, np.int32)]
        for axis, n in enumerate(shape):  # labels on the array's faces reach the outside
            for side in (0, n - 1):
                if core[axis].start <= side < core[axis].stop:
                    ids.append(np.unique(np.take(block, side - core[axis].start, axis=axis)))
        return np.concatenate(ids)

    open_ids = np.zeros(lab.n + 1, bool)
    open_ids[np.concatenate(map_blocks(on_faces, blocks(shape, chunk)))] = True
    open_ids[0] = False
    return scratch.filled(shape, bool, lambda sl: ~open_ids[lab[sl]])


def depth_blocks(mask, *, spacing, chunk: int, scratch):
    """:func:`depth` (``surface="boundary"``, bool mask) block by block; float32 zarr (nm).

    Both distances (to the outermost particle voxels, to the outside) are exact
    separable transforms on pencils (:func:`exact_distance`): memory is a block's
    worth per thread however deep the particle.
    """
    from scipy import ndimage

    shape = tuple(mask.shape)
    spacing = np.asarray(spacing, dtype=float)

    def outer(ext):
        big, inner = extend(ext, shape, 1)
        m = read(mask, big, bool)
        width = [(int(s.start == 0), int(s.stop == n)) for s, n in zip(big, shape)]
        p = np.pad(m, width)  # the array edge is outside
        core = tuple(slice(lo, lo + k) for (lo, _), k in zip(width, m.shape))
        return (p & ~ndimage.binary_erosion(p, structure=_cross(len(shape))))[core][inner]

    kw = dict(spacing=spacing, chunk=chunk, scratch=scratch)
    to_outer = exact_distance(outer, shape, **kw)
    to_outside = exact_distance(lambda ext: ~read(mask, ext, bool), shape, edge_feature=True,
                                **kw)
    out = scratch.array(shape, np.float32)

    def combine(core):
        inside = read(mask, core, bool)
        dist = 0.5 * (read(to_outer, core) + read(to_outside, core))
        out[core] = np.where(inside, dist, 0.0).astype(np.float32)

    map_blocks(combine, blocks(shape, chunk))
    scratch.release(to_outer)
    scratch.release(to_outside)
    return out


def shells_blocks(mask, depth_map, *, n: int, spacing, chunk: int, scratch):
    """:func:`shells` of a bool mask (one particle) block by block; uint8 zarr."""
    shape = tuple(mask.shape)
    spacing = np.asarray(spacing, dtype=float)

    def moments(core):
        where = np.nonzero(read(mask, core, bool))
        return np.array([where[0].size] + [int((w + s.start).sum()) for w, s in zip(where, core)],
                        np.int64)

    count, *sums = map_blocks(moments, blocks(shape, chunk), reduce=_add,
                              initial=np.zeros(len(shape) + 1, np.int64))
    sums = np.array(sums)
    if count == 0:
        raise ValidationError("mask is empty (no voxel inside any particle)")
    centre = sums / count * spacing
    strides = np.array([int(np.prod(shape[a + 1:])) for a in range(len(shape))], np.int64)

    def keys(core):
        where = tuple(w + s.start for w, s in zip(np.nonzero(read(mask, core, bool)), core))
        coords = np.stack([w * s for w, s in zip(where, spacing)])
        radial = np.sqrt(((coords - centre[:, None]) ** 2).sum(axis=0))
        d = read(depth_map, core, np.float32)[read(mask, core, bool)]
        return d, radial, np.stack(where, axis=1) @ strides, where

    def item(core):
        d = keys(core)[0]
        return np.zeros(d.size, np.int64), d.view(np.uint32).astype(np.uint64)

    cuts = [-(-j * count // n) for j in range(1, n)]  # first rank of shell j + 1
    found, residual = select_kth(item, blocks(shape, chunk), [0] * len(cuts), cuts, bits=32)
    cut_depth = found.astype(np.uint32).view(np.float32)
    # within the voxels at each cut depth: outer (larger radius) first, then raster order
    tie_depths = sorted({float(v) for v in cut_depth})

    def tied(core):
        d, radial, flat, _ = keys(core)
        return [np.stack([radial[hit], flat[hit].astype(np.float64)], axis=1)
                for hit in (d == np.float32(v) for v in tie_depths)]

    per_block = map_blocks(tied, blocks(shape, chunk))
    ties = {v: [b[i] for b in per_block] for i, v in enumerate(tie_depths)}
    cut_keys = []
    for v, r in zip(cut_depth, residual):
        tie = np.concatenate(ties[float(v)])
        order = np.lexsort((tie[:, 1], -tie[:, 0]))
        cut_keys.append((np.float32(v), tie[order[r], 0], int(tie[order[r], 1])))
    dtype = np.uint8 if n <= 255 else np.int32

    def put(core):
        d, radial, flat, where = keys(core)
        shell = np.ones(d.size, np.int64)
        for cd, cr, cf in cut_keys:  # n - 1 cuts
            shell += (d > cd) | ((d == cd) & ((radial < cr) | ((radial == cr) & (flat >= cf))))
        block = np.zeros(tuple(s.stop - s.start for s in core), dtype)
        block[tuple(w - s.start for w, s in zip(where, core))] = shell
        return block

    return scratch.filled(shape, dtype, put)


def masked_smooth_blocks(data, mask, *, sigma_nm: float, spacing, surface_nm: float,
                         chunk: int, scratch):
    """:func:`masked_smooth` of ``data`` (m, nz, ny, nx) block by block; float32 zarr."""
    from scipy import ndimage

    shape = tuple(mask.shape)
    spacing = np.asarray(spacing, dtype=float)
    lead = int(data.shape[0])
    # one map per chunk: the smoothing writes map by map (chunks of the sigma = 0 copy too)
    out = scratch.array((lead,) + shape, np.float32, fill=np.nan,
                        chunks=(1,) + edges_of(chunk, 3))
    if sigma_nm == 0:  # no averaging: the data on the mask
        def copy(core):
            arr = read(data, (slice(None),) + core, np.float32)
            out[(slice(None),) + core] = np.where(read(mask, core, bool) & np.isfinite(arr), arr,
                                                  np.nan)

        map_blocks(copy, blocks(shape, chunk))
        return out
    step = float(spacing.min())
    n = int(round(surface_nm / step))
    # layer numbers 0..n+1: uint8 up to 254 layers (a quarter of int32's block bytes)
    layers = scratch.array(shape, np.uint8 if n + 1 <= 255 else np.int32)

    def put_layers(core, dist):
        m = read(mask, core, bool)
        layer = np.minimum(np.ceil(dist / step - 1e-6), n + 1).astype(np.int32) if n else 1
        layers[core] = np.where(m, np.maximum(layer, 1), 0)

    feature_distance(lambda ext: ~read(mask, ext, bool), lambda core: read(mask, core, bool),
                     shape, spacing=spacing, chunk=chunk, sink=put_layers,
                     reach_nm=(n + 1) * step, exact_beyond_reach=False)
    sigma = (0.0,) + tuple(sigma_nm / spacing)
    halo = [int(4.0 * s + 0.5) for s in sigma[1:]]  # scipy's truncate=4

    def smooth_block(item):
        """One block's maps ``which``, map by map: a map's extended values, its finite
        mask and the layer numbers are the inputs (~6 B per extended voxel, not ~19 with
        every map and an int32 layer image at once: the block's peak, ~halved)."""
        core, which = item
        ext, inner = extend(core, shape, halo)
        lay = read(layers, ext)
        ids = [k for k in np.unique(lay[inner]) if k != 0]
        for i in which:
            smooth_map(core, i, ext, inner, lay, ids)

    def smooth_map(core, i, ext, inner, lay, ids):
        res = np.full(tuple(s.stop - s.start for s in core), np.nan, np.float32)
        values = read(data, (i,) + ext, np.float32)  # may be a view of the input
        finite = np.isfinite(values)
        values = np.where(finite, values, np.float32(0.0))

        def layer(k):
            """One depth layer of the map, filtered in place."""
            region = lay == k
            w = (region & finite).astype(np.float32)
            num = values * w
            ndimage.gaussian_filter(num, sigma[1:], mode="constant", output=num)
            ndimage.gaussian_filter(w, sigma[1:], mode="constant", output=w)
            empty = w <= 1e-6
            with np.errstate(invalid="ignore", divide="ignore"):
                np.divide(num, w, out=num)
            num[empty] = np.nan
            return region[inner], num[inner]

        # independent layers: on the block's threads (same values)
        for region, smooth in thread_map(layer, ids):
            np.copyto(res, smooth, where=region)
        out[(i,) + core] = res

    # with a block per thread or more, a block's maps are separate tasks (each writes its
    # own chunks): the loop's last task, which runs alone, is half a block's smoothing
    # (~0.35 CPU s at 256^3), and as many maps are in flight as blocks were. Fewer
    # blocks than threads (a one-cube volume): whole blocks, whose threads split the
    # layers (one map in flight per block, not one per thread).
    cores = blocks(shape, chunk)
    items = ([(core, (i,)) for core in cores for i in range(lead)] if len(cores) >= budget()
             else [(core, range(lead)) for core in cores])
    map_blocks(smooth_block, items)
    return out
