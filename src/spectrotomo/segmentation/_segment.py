"""The whole segmentation of one volume, block by block with bounded memory.

:func:`segment_volume` chains the block-wise stage functions: particle mask,
depth below the surface, equal-volume shells, pores, cracks and, given element
amounts, the composition classes of the locally averaged TM/O ratio. Inputs
are read block by block (lazy store arrays are never loaded whole); results
are block-readable arrays in a :class:`Scratch` directory, each equal to what
the whole-volume functions give (labels identical; see the tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .._model import ValidationError
from ._blocklabel import label_blocks
from ._blockpores import find_cracks_blocks, levels_blocks, pore_masks_blocks
from ._blocks import (Scratch, block_workers, blocks, check_chunk, concurrently, edges_of,
                      map_blocks, process_chunk, read, tiles_of)
from ._blocksep import warm_kernel
from ._blockseg import depth_blocks, masked_smooth_blocks, particle_mask_blocks, shells_blocks
from ._classes import composition_classes
from ._layerpool import apply_layer_pooling, check_pooling, layer_sums, pools

__all__ = ["SegmentResult", "segment_volume", "MeanOver", "MetalOxygen"]

METALS = ("Mn", "Co", "Ni")


class MeanOver:
    """Lazy mean over the first axis of a 4-D array-like, read block by block."""

    def __init__(self, arr):
        self.arr, self.shape = arr, tuple(arr.shape[1:])
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, sl):
        # one energy's block at a time (not all n): float32 sums in energy order, then / n,
        # the additions and division of numpy's float32 mean over axis 0 (same bits)
        sl = tuple(sl)
        acc = np.array(read(self.arr, (0,) + sl, np.float32), dtype=np.float32)  # ours
        for e in range(1, int(self.arr.shape[0])):
            acc += read(self.arr, (e,) + sl, np.float32)
        return np.true_divide(acc, np.float32(self.arr.shape[0]), out=acc)

    @property
    def tiles(self):
        """The input's chunk edges on its 3 spatial axes, or None (not chunked)."""
        return tiles_of(self.arr)


class MetalOxygen:
    """(2, nz, ny, nx) view of amounts (element, nz, ny, nx): summed metals, then O."""

    def __init__(self, amounts, elements):
        elements = [str(e) for e in elements]
        self.metals = [elements.index(e) for e in METALS if e in elements]
        if not self.metals or "O" not in elements:
            raise ValidationError(f"amounts must hold O and at least one of {METALS}; "
                                  f"got elements {elements}")
        self.o = elements.index("O")
        self.arr, self.shape = amounts, (2,) + tuple(amounts.shape[1:])

    def __getitem__(self, sl):
        # the block's z rows one input tile of rows at a time, into the (2, ...) result;
        # the metals added in order (numpy's sum over the element axis: same bits). Why:
        # a whole block at once decoded all its tiles at once and held every element, the
        # metals' copy and the stack (~5x the result): the first stage's peak at 256^3.
        # (No ``tiles`` for _stored: blocks spanning the 256^2 tiles decode each tile
        # once, -1.2 CPU s at 256^3, but held 4x the result: peak 0.415 -> 0.50 GiB.)
        sl = tuple(sl) + (slice(None),) * (4 - len(sl))
        start, stop, _ = sl[1].indices(self.shape[1])
        rows = (tiles_of(self.arr) or (max(1, stop - start),))[0]
        out, z = None, start
        while z < stop:
            end = min(stop, (z // rows + 1) * rows)  # the next tile boundary
            a = read(self.arr, (slice(None), slice(z, end)) + sl[2:])
            if out is None:
                out = np.empty((2, stop - start) + a.shape[2:], a.dtype)
            tm, o = out[0, z - start:end - start], out[1, z - start:end - start]
            tm[...] = a[self.metals[0]]
            for m in self.metals[1:]:
                tm += a[m]
            o[...] = a[self.o]
            z = end
        return out[sl[0]]


@dataclass
class SegmentResult:
    """Block-readable results (``arrays[name][slices]``) and what produced them."""

    arrays: dict
    threshold: float
    scratch: Scratch
    attrs: dict = field(default_factory=dict)

    def close(self) -> None:
        self.scratch.close()


def segment_volume(volume, *, spacing, chunk: int = 128, n_shells: int = 5, amounts=None,
                   elements=None, target: float | None = None, tolerance: float = 0.05,
                   smoothing_nm: float = 30.0, surface_layer_nm: float = 40.0,
                   layer_pooling: float = 0.6, scratch_dir=None, workers: int | None = None,
                   client=None, on_final: Callable[[dict], Any] | None = None) -> SegmentResult:
    """Mask, depth, shells, pores, cracks (and classes) of a volume, block by block.

    Parameters
    ----------
    volume : array-like, shape (nz, ny, nx) or (n_energy, nz, ny, nx), float
        Attenuation (1/nm); a 4-D input is averaged over its first axis per
        block. Anything sliceable (numpy, zarr, dask, lazy xarray).
    spacing : float or sequence of 3 float
        Voxel size, nm.
    chunk : int
        Block edge (voxels); memory is one ``chunk^3`` block plus halos per process,
        whatever the volume: each thread works on a slab of ``chunk / workers`` z rows
        (:func:`._blocks.block_shape`; at least 32), the threads of a one-cube volume
        inside its cube. A cluster's tasks (``client``) take whole cubes.
    n_shells : int
        Equal-volume shells (1 outermost).
    amounts : array-like, shape (n_element, nz, ny, nx), optional
        Element amounts (atoms/nm^3); with ``elements`` and ``target`` gives
        ``tm_o_ratio_smoothed`` and ``composition_class``.
    elements : sequence of str
        Element of each ``amounts`` entry (O and at least one of Mn, Co, Ni).
    target, tolerance : float
        Target TM/O and relative tolerance of the classes.
    smoothing_nm, surface_layer_nm : float
        :func:`masked_smooth` ``sigma_nm`` and ``surface_nm`` of the amounts.
    layer_pooling : float in [0, 1]
        :func:`surface_layer_pooling` of the ratio within ``surface_layer_nm``
        (0: off).
    scratch_dir : path-like, optional
        Where the intermediate arrays go (default: the temporary directory).
    workers : int, optional
        Threads running the blocks (default ``OMP_NUM_THREADS`` or the CPU
        count; 1: serial). With fewer blocks than threads the idle ones run
        independent stages side by side and split exact work inside a block
        (:mod:`._threads`). Results do not depend on it.
    client : distributed.Client, optional
        Run the blocks as tasks on this dask cluster instead (``scratch_dir``
        and the inputs on a file system every worker sees).
    on_final : callable(dict name -> array), optional
        Called (on this thread) with the results as they become final, before the
        later stages run: mask, depth, shell, pores and cracks, then the ratio and
        classes. E.g. to copy them out while the classes are computed (the
        segment step); it must return promptly, and the arrays stay readable until
        ``close()``.

    Returns
    -------
    SegmentResult
        ``arrays``: ``mask`` (bool), ``depth`` (float32 nm), ``shell``
        (uint8), ``pores``, ``cracks`` (int32 labels) and with amounts
        ``tm_o_ratio_smoothed`` (float32, NaN off the solid) and
        ``composition_class`` (uint8). Call ``close()`` when copied.
    """
    chunk = check_chunk(chunk)
    layer_pooling = check_pooling(layer_pooling)
    # one cube in flight whatever the volume: a slab per thread
    chunk = process_chunk(chunk, volume.shape[-3:], workers=workers, client=client)
    vol = MeanOver(volume) if len(volume.shape) == 4 else volume
    if len(vol.shape) != 3:
        raise ValidationError(f"volume must be 3-D (or 4-D with energies); got {volume.shape}")
    sp = np.broadcast_to(np.asarray(spacing, dtype=float), (3,)).copy()
    if client is None:  # the depth's kernel, loaded while the first stages run
        warm_kernel()
    scratch = Scratch(chunk, scratch_dir)
    try:
        with block_workers(workers, client=client):
            res = _segment(vol, amounts, sp, chunk, scratch, n_shells=n_shells,
                           elements=elements, target=target, tolerance=tolerance,
                           smoothing_nm=smoothing_nm, surface_layer_nm=surface_layer_nm,
                           layer_pooling=layer_pooling, on_final=on_final or _ignore)
    except BaseException:
        scratch.close()
        raise
    # the intermediates go while the caller copies the results
    scratch.discard_except(getattr(a, "provisional", a) for a in res.arrays.values())
    return res


def _ignore(arrays) -> None:
    return None


def _stored(arr, scratch):
    """A lazy view (``MeanOver``, ``MetalOxygen``) written once to scratch, float32.

    Why: the stages read the energy-averaged volume ~14 times (halos, selection
    passes), each read of ``MeanOver`` decoding every energy (demo: 0.25 CPU s per
    read against 0.02 s from scratch); the amounts' metal sums twice. Same values (a
    voxel's mean or sum does not depend on the block it is read with).
    """
    # blocks spanning whole input tiles in y/x (at most 2 blocks' edge): a block of 128^2
    # in y/x read 256^2 store tiles whole, 4x the voxels it kept (256^3: 4.3 CPU s)
    tiles = getattr(arr, "tiles", None)
    edges = edges_of(scratch.chunk)
    block = tuple(c * (min(2, -(-t // c)) if tiles and a > 0 else 1)
                  for a, (c, t) in enumerate(zip(edges, tiles or edges)))
    # noise barely compresses
    return scratch.filled(arr.shape, np.float32, lambda sl: arr[sl], compress=False,
                          block=block)


def _segment(vol, amounts, sp, chunk, scratch, *, n_shells, elements, target, tolerance,
             smoothing_nm, surface_layer_nm, layer_pooling, on_final) -> SegmentResult:
    if amounts is not None and target is None:
        raise ValidationError("segment_volume: amounts given without a target TM/O")
    stack = None if amounts is None else MetalOxygen(amounts, elements)  # checks elements
    if isinstance(vol, MeanOver):
        vol = _stored(vol, scratch)
    # the amounts' metal/O stack is copied beside the mask (which does not need it)
    (mask, threshold), stack = concurrently(
        lambda: particle_mask_blocks(vol, chunk=chunk, scratch=scratch),
        lambda: stack and _stored(stack, scratch))
    kw = dict(spacing=sp, chunk=chunk, scratch=scratch)

    def by_depth():
        depth = depth_blocks(mask, **kw)
        return depth, shells_blocks(mask, depth, n=n_shells, **kw)

    def by_level():
        levels = levels_blocks(vol, mask, chunk=chunk)
        # pores (min_size 2) and the pores of any size the cracks exclude share their work
        any_pore, pores = pore_masks_blocks(vol, mask, levels=levels, min_sizes=(1, 2), **kw)
        return levels, label_blocks(pores, chunk=chunk, scratch=scratch, connectivity=6), \
            find_cracks_blocks(vol, mask, levels=levels, pores=any_pore, **kw)

    # two independent stages at once: a volume of one block has one block per loop
    (depth, shell), (levels, pores, cracks) = concurrently(by_depth, by_level)
    arrays = {"mask": mask, "depth": depth, "shell": shell, "pores": pores, "cracks": cracks}
    on_final(dict(arrays))
    if stack is not None:
        classes = _classes(stack, arrays, sp, chunk, scratch, target=target,
                           tolerance=tolerance, smoothing_nm=smoothing_nm,
                           surface_nm=surface_layer_nm, pooling=layer_pooling)
        on_final(dict(classes))
        arrays.update(classes)
    return SegmentResult(arrays, threshold, scratch, {"levels": levels})


def _classes(stack, arrays, sp, chunk, scratch, *, target, tolerance, smoothing_nm,
             surface_nm, pooling) -> dict:
    """TM/O of amounts averaged over the solid, pooled along the near-surface depth layers
    (:func:`surface_layer_pooling`), and its classes."""
    shape = tuple(arrays["mask"].shape)
    solid = scratch.array(shape, bool)
    step = float(sp.min())
    pool = pools(pooling, surface_nm, step)

    def put_solid(core):
        block = (read(arrays["mask"], core) & (arrays["pores"][core] == 0)
                 & (arrays["cracks"][core] == 0))
        solid[core] = block
        if pool:  # amount sums per near-surface depth layer, for the layer means
            tm, o = read(stack, (slice(None),) + core)
            return layer_sums(tm, o, read(arrays["depth"], core), block,
                              surface_nm=surface_nm, step_nm=step)
        return 0.0

    layer = map_blocks(put_solid, blocks(shape, chunk), reduce=lambda a, b: a + b, initial=0.0)
    smooth = masked_smooth_blocks(stack, solid, sigma_nm=smoothing_nm, spacing=sp,
                                  surface_nm=surface_nm, chunk=chunk, scratch=scratch)
    ratio = scratch.array(shape, np.float32, fill=np.nan)
    classes = scratch.array(shape, np.uint8)

    def put_classes(core):
        tm, o = read(smooth, (slice(None),) + core)
        defined = read(solid, core) & np.isfinite(tm) & np.isfinite(o) & (o > 0)
        r = np.where(defined, tm / np.where(defined, o, 1.0), np.nan).astype(np.float32)
        if pool:
            r = apply_layer_pooling(r, read(arrays["depth"], core), layer,
                                    surface_nm=surface_nm, step_nm=step, pooling=pooling)
        ratio[core] = r
        classes[core] = composition_classes(r, float(target), tolerance, mask=defined)

    map_blocks(put_classes, blocks(shape, chunk))
    return {"tm_o_ratio_smoothed": ratio, "composition_class": classes}
