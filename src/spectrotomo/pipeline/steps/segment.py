"""The ``segment`` step: recon + chemistry -> segmentation (mask, classes, shells,
depth, pores, cracks)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import xarray as xr

from ... import io
from ..._backend import host_threads
from ..._model import add_provenance
from ...segmentation import legend_attrs
from .._context import RunContext
from .._plan import step_block_threads
from .acquire import nominal

__all__ = ["segment", "class_ratio", "smoothing_options"]


_METALS = ("Mn", "Co", "Ni")


#: CF flag attributes of the stored class image, from the segmentation's one legend
#: (value 0 stored as plain "background"); io.export_store reads names and colours here.
_CLASS_FLAGS = legend_attrs(background="background")

def smoothing_options(cfg) -> dict:
    """The classifier's averaging keywords of ``[segmentation]`` (``segment_volume`` and
    :func:`class_ratio` take them; the stored ratio and the provenance record them)."""
    return dict(smoothing_nm=cfg.smoothing_nm, surface_layer_nm=cfg.surface_layer_nm,
                layer_pooling=cfg.layer_pooling)


def class_ratio(chem: xr.Dataset, solid: np.ndarray, px: float, cfg, *,
                depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TM/O of amounts averaged over the solid, pooled along the near-surface depth layers,
    whole volume in memory (diagnostics; the step itself runs ``segment_volume`` by blocks,
    with the same result).

    Per-voxel ratios of limited-angle edge jumps are far too noisy for a +-5 % class band
    (measured ratio noise ~0.09 x target per voxel at 20 nm, 0.014 after the 30 nm average,
    gpu_bench/RESULTS.recon.md "class accuracy"); averaging the amounts over the solid only
    (no pores, no outside), along the surface within ``surface_layer_nm``
    (``segmentation.masked_smooth``), then shrinking near-surface ratios towards their
    iso-depth layer's mean by ``layer_pooling`` (``segmentation.surface_layer_pooling``).

    Parameters
    ----------
    chem : xarray.Dataset
        The ``chemistry`` group (``amount`` (element, z, y, x), atoms/nm^3).
    solid : numpy.ndarray, shape (nz, ny, nx), bool
        Particle mask minus pores and cracks.
    px : float
        Voxel size, nm.
    cfg : the ``[segmentation]`` config section
        ``smoothing_nm``, ``surface_layer_nm``, ``layer_pooling``.
    depth : numpy.ndarray, shape (nz, ny, nx), float
        Depth below the particle surface, nm (``segmentation.depth`` of the particle mask,
        as the step's ``depth``).

    Returns
    -------
    ratio : numpy.ndarray, float32, NaN off the solid
    defined : numpy.ndarray, bool: the solid voxels where the ratio is defined
    """
    from ...segmentation import masked_smooth, surface_layer_pooling

    amount = chem["amount"]
    metals = [el for el in _METALS if el in amount["element"].values]
    stack = np.stack([amount.sel(element=metals).sum("element", skipna=False).values,
                      amount.sel(element="O").values])
    tm, o = masked_smooth(stack, solid, sigma_nm=cfg.smoothing_nm, spacing=px,
                          surface_nm=cfg.surface_layer_nm)
    defined = solid & np.isfinite(tm) & np.isfinite(o) & (o > 0)
    ratio = np.where(defined, tm / np.where(defined, o, 1.0), np.nan).astype(np.float32)
    ratio = surface_layer_pooling(ratio, stack[0], stack[1], depth, mask=solid, spacing=px,
                                  surface_nm=cfg.surface_layer_nm, pooling=cfg.layer_pooling)
    return ratio, defined


#: variable -> (units, extra attrs) of the segmentation group
_SEG_VARS = {"mask": "1", "tm_o_ratio_smoothed": "1", "composition_class": "1",
             "depth": "nm", "shell": "1", "pores": "1", "cracks": "1"}


def _target(ctx) -> float:
    target = nominal(ctx, ctx.config.segmentation.target_tm_o, "target_tm_o")
    if target is None:
        raise ValueError("segment: [segmentation] target_tm_o is not set and the input has no "
                         "target composition; set it in the config")
    return float(target)


def segment(ctx: RunContext) -> None:
    """recon + chemistry -> segmentation: mask, classes, shells, depth, pores, cracks.

    Block by block (``[segmentation] chunk`` voxels): the inputs are read lazily
    from the store and every output is written region by region, so memory per
    worker does not grow with the volume (segmentation.segment_volume). Blocks run
    on this process's threads, or as tasks on the ``[compute]`` cluster when one
    is configured (scratch arrays next to the store, which the workers see).
    """
    from ... import segmentation as seg

    cfg = ctx.config.segmentation
    mu = io.read_group(ctx.store, "recon")["mu"]
    px = float(mu.attrs["pixel_size"])
    kw, extra = {}, {}
    if "chemistry" in io.list_groups(ctx.store):
        amount = io.read_group(ctx.store, "chemistry")["amount"]
        target = _target(ctx)
        smoothing = smoothing_options(cfg)
        kw = dict(amounts=amount.data, elements=list(amount["element"].values), target=target,
                  tolerance=cfg.tolerance, **smoothing)
        extra = {"tm_o_ratio_smoothed": smoothing,
                 "composition_class": dict(target_tm_o=target, tolerance=cfg.tolerance,
                                           **_CLASS_FLAGS)}
    else:  # phase-contrast run: no chemistry
        ctx.log("segment: no chemistry group; composition classes not computed")
    with ThreadPoolExecutor(1, thread_name_prefix="segment-write") as writer:
        pending = []

        def write(arrays):  # each batch of final results, while the later stages run
            # the last batch (the classes, or the only one without chemistry) has the cores
            last = "composition_class" in arrays or not kw
            pending.append(writer.submit(_write_segmentation, ctx, mu, arrays, extra,
                                         cfg.chunk, threads=host_threads() if last else 1))

        try:
            res = seg.segment_volume(mu.data, spacing=px, chunk=cfg.chunk,
                                     n_shells=cfg.n_shells, scratch_dir=ctx.store.parent,
                                     client=ctx.client, on_final=write,
                                     workers=step_block_threads(ctx.config, mu.shape[-3:]),
                                     **kw)
        except BaseException:
            for f in pending:  # the scratch is gone: no write left to start
                f.cancel()
            raise
        try:
            for f in pending:
                f.result()
        finally:
            res.close()
    attrs = {"pixel_size": px, "pixel_size_units": "nm"}
    add_provenance(SimpleNamespace(attrs=attrs), "pipeline.segment", inputs=[str(ctx.store)],
                   n_shells=cfg.n_shells, chunk=cfg.chunk,
                   **({} if not kw else dict(target_tm_o=kw["target"], tolerance=cfg.tolerance,
                                             **smoothing)))
    io.mark_complete(ctx.store, "segmentation", attrs=attrs)


def _write_segmentation(ctx, mu, arrays: dict, extra: dict, chunk: int, *,
                        threads: int) -> None:
    """Copy block-wise results into the ``segmentation`` group, region by region.

    Runs on the step's writer thread as each batch becomes final (segment_volume's
    ``on_final``): the first five arrays while the classes are computed, on one thread
    (the block threads have the cores; one region in flight); the last batch on
    ``threads`` threads (``host_threads()``, as segment_volume's blocks: the zarr codecs
    release the GIL). Why: the copy (7 ``init_array`` calls, ~0.07 CPU s each under
    the GIL, and the regions' codecs) ran after the blocks with ~1 thread busy (~1.4 s
    at 256^3). The first failed write cancels the writes not started.
    """
    from .._compute import run_tasks

    px = float(mu.attrs["pixel_size"])
    dims = ("z", "y", "x")
    shape = tuple(mu.sizes[d] for d in dims)
    for name, arr in arrays.items():
        attrs = {"pixel_size": px, "pixel_size_units": "nm", "units": _SEG_VARS[name],
                 **extra.get(name, {})}
        io.init_array(ctx.store, "segmentation", name, shape=shape, dtype=arr.dtype,
                      chunks=(chunk,) * 3, dims=dims, coords={d: mu[d] for d in dims},
                      attrs=attrs, overwrite=True)

    def write(job):
        name, region = job
        io.write_region(ctx.store, "segmentation", name, region,
                        np.asarray(arrays[name][region]))

    jobs = [(name, region) for name in arrays
            for region in io.missing_regions(ctx.store, "segmentation", name)]
    # memory: one region per thread in flight
    run_tasks(None, write, jobs, desc="segment (write)", threads=threads)
