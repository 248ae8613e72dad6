""":func:`find_pores` and :func:`find_cracks` block by block, with the same labels.

The morphology reads halos as wide as its structuring elements; the global
parts are exact: the solid and background levels are medians by radix
selection, components are merged across block faces and numbered as
``scipy.ndimage.label`` numbers them, and each component's shape measures
(moments summed over blocks, thickness from the exact block-wise distance
transform) decide pore or crack as on the whole volume.
"""

from __future__ import annotations

import numpy as np

from .._model import ValidationError
from ._blockedt import feature_distance
from ._blocklabel import component_moments, label_blocks
from ._blocks import blocks, edges_of, map_blocks, read
from ._blockselect import key_codec, select_kth
from ._pores import _ball

__all__ = ["levels_blocks", "pore_masks_blocks", "find_cracks_blocks"]


def levels_blocks(volume, mask, *, chunk: int) -> tuple[float, float]:
    """(solid, background): nan-medians of ``volume`` inside / outside ``mask``."""
    shape = tuple(mask.shape)
    encode, decode, bits = key_codec(getattr(volume, "dtype", np.float64))
    dtype = np.float32 if bits == 32 else np.float64  # the keys' type: no float64 copy

    def item(core):
        v = read(volume, core, dtype)
        inside = read(mask, core) > 0
        ok = np.isfinite(v)
        return np.where(inside, 0, 1)[ok].astype(np.int64), encode(v[ok])

    def count(core):
        inside = read(mask, core) > 0
        ok = np.isfinite(read(volume, core, dtype))
        return np.array([(ok & inside).sum(), (ok & ~inside).sum()], np.int64)

    counts = map_blocks(count, blocks(shape, chunk), reduce=lambda a, b: a + b,
                        initial=np.zeros(2, np.int64))
    if counts[0] == 0:
        raise ValidationError("volume has no finite value inside the mask")
    groups, ranks = [], []
    for g in (0, 1):
        if counts[g]:
            groups += [g, g]
            ranks += [(counts[g] - 1) // 2, counts[g] // 2]
    keys, _ = select_kth(item, blocks(shape, chunk), groups, ranks, bits=bits)
    vals = decode(keys)
    solid = float(np.mean(vals[:2]))
    background = float(np.mean(vals[2:4])) if counts[1] else 0.0
    return solid, background


#: halo of the thickness transform (voxels): pores and cracks are a few voxels thick; a
#: thicker one is recomputed with a halo as wide as it needs (exact either way), while a
#: chunk // 2 halo made every block's transform up to 8 blocks large
_REACH = 8


def _measures(labels, *, chunk, spacing, min_aspect):
    """(voxel counts, crack-like flags) of every component: ``_pores._keep``'s shape
    measures."""
    shape, n = labels.shape, labels.n
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    counts, cov = component_moments(labels, chunk=chunk, spacing=spacing)
    extent = np.sqrt(12.0 * np.linalg.eigvalsh(cov)[:, -1]) + spacing.min()

    def sink(core, dist):
        lab = labels[core]
        sel = lab > 0
        ids, first = np.unique(lab[sel] - 1, return_inverse=True)
        block_max = np.zeros(ids.size)
        np.maximum.at(block_max, first, dist[sel])
        return ids, block_max

    def fold(acc, part):
        np.maximum.at(acc, part[0], part[1])
        return acc

    maxdist = feature_distance(lambda ext: labels[ext] == 0, lambda core: labels[core] > 0,
                               shape, spacing=spacing, chunk=chunk, sink=sink,
                               edge_feature=True, reduce=fold, initial=np.zeros(n),
                               reach_nm=min(min(edges_of(chunk)) // 2, _REACH) * spacing.min())
    thickness = np.maximum(2.0 * maxdist - spacing.min(), spacing.min())
    return counts, extent >= min_aspect * thickness


def _keep_blocks(labels, *, chunk, spacing, min_size, crack_like, min_aspect):
    """Ids of the components kept by ``_pores._keep`` (same shape measures)."""
    counts, is_crack = _measures(labels, chunk=chunk, spacing=spacing, min_aspect=min_aspect)
    return np.arange(1, labels.n + 1)[(counts >= min_size) & (is_crack == crack_like)]


def pore_masks_blocks(volume, mask, *, spacing, chunk: int, scratch, threshold=None,
                      min_sizes=(2,), min_aspect: float = 3.0, levels=None) -> list:
    """The voxels of :func:`find_pores` ``> 0`` for each of ``min_sizes``: bool scratch
    arrays sharing the morphology, labels and shape measures (the segmentation needs
    its pores and, for the cracks, the pores of any size)."""
    from scipy import ndimage

    shape = tuple(mask.shape)
    spacing = np.asarray(spacing, dtype=float)
    if threshold is None:
        solid, background = levels or levels_blocks(volume, mask, chunk=chunk)
        threshold = background + 0.5 * (solid - background)
    cross = ndimage.generate_binary_structure(len(shape), 1)

    def dark(sl):
        return (read(mask, sl) > 0) & (read(volume, sl, np.float64) < threshold)

    def thick(ext):
        d = dark(ext)
        core = ndimage.binary_opening(d, structure=cross)
        return ndimage.binary_dilation(core, structure=cross) & d

    thick_arr = scratch.filled(shape, bool, thick, halo=3)
    kw = dict(chunk=chunk, spacing=spacing, min_aspect=min_aspect)
    lab = label_blocks(thick_arr, chunk=chunk, scratch=scratch, connectivity=6)
    lab_measures = _measures(lab, **kw)
    rest_arr = scratch.filled(shape, bool, lambda sl: dark(sl) & ~read(thick_arr, sl))
    rest = label_blocks(rest_arr, chunk=chunk, scratch=scratch, connectivity=26)
    rest_measures = _measures(rest, **kw)
    out = []
    for min_size in min_sizes:
        keep, keep_rest = (np.concatenate([[False], (counts >= min_size) & ~is_crack])
                           for counts, is_crack in (lab_measures, rest_measures))
        out.append(scratch.filled(shape, bool, lambda sl, keep=keep, keep_rest=keep_rest:
                                  keep[lab[sl]] | keep_rest[rest[sl]]))
    return out


def find_cracks_blocks(volume, mask, *, spacing, chunk: int, scratch, max_width=None,
                       contrast: float = 0.35, min_size: int = 8, min_aspect: float = 3.0,
                       edge: int = 1, levels=None, pores=None):
    """:func:`find_cracks` block by block; returns a LabelView of the crack labels.

    ``pores``: the voxels of ``find_pores(min_size=1)`` (e.g. from
    :func:`pore_masks_blocks`), to share; computed when not given.
    """
    from scipy import ndimage

    if not 0 < contrast < 1:
        raise ValidationError(f"contrast must be in (0, 1); got {contrast!r}")
    shape = tuple(mask.shape)
    spacing = np.asarray(spacing, dtype=float)
    levels = levels or levels_blocks(volume, mask, chunk=chunk)
    solid_minus_bg = levels[0] - levels[1]
    width_vox = 3.0 if max_width is None else float(max_width) / spacing.min()
    radius = max(1, int(np.ceil(width_vox / 2)))
    ball = _ball(radius, len(shape), spacing / spacing.min())

    def low(core):
        v = read(volume, core, np.float64)
        return np.nanmin(v) if np.isfinite(v).any() else np.inf

    vmin = min(map_blocks(low, blocks(shape, chunk)))
    if pores is None:
        pores, = pore_masks_blocks(volume, mask, spacing=spacing, chunk=chunk, scratch=scratch,
                                   min_sizes=(1,), min_aspect=min_aspect, levels=levels)
    halo = [max(h - 1, edge, 1) for h in ball.shape]  # closing = 2 x half-width

    def candidates(ext):
        v = read(volume, ext, np.float64)
        filled = np.where(np.isfinite(v), v, vmin)
        tophat = ndimage.grey_closing(filled, footprint=ball) - filled
        inside = read(mask, ext) > 0
        core = ndimage.binary_erosion(inside, iterations=edge) if edge > 0 else inside
        near_pore = ndimage.binary_dilation(read(pores, ext) > 0)
        return core & (tophat > contrast * solid_minus_bg) & ~near_pore

    cand = scratch.filled(shape, bool, candidates, halo=halo)
    lab = label_blocks(cand, chunk=chunk, scratch=scratch, connectivity=26)
    keep = _keep_blocks(lab, chunk=chunk, spacing=spacing, min_size=min_size, crack_like=True,
                        min_aspect=min_aspect)
    return lab.keep(keep)
