"""The ``segment`` step: recon + chemistry -> segmentation (mask, classes, shells,
depth, pores, cracks)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ... import io
from ..._model import add_provenance, spatial_map
from .._context import RunContext

__all__ = ["segment", "class_ratio"]


_METALS = ("Mn", "Co", "Ni")


def class_ratio(chem: xr.Dataset, solid: np.ndarray, px: float, cfg) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """TM/O of amounts averaged over the solid (``[segmentation] smoothing_nm``).

    Per-voxel ratios of limited-angle FBP edge jumps are far too noisy for a
    +-5 % class band (measured ratio noise ~0.08 at 20 nm voxels, ~0.2 at 12 nm
    against a band half-width of 0.02); averaging the amounts over the solid
    only (no pores, no outside), along the surface within
    ``surface_layer_nm``, brings the class fractions within ~1 pp of the truth
    (gpu_bench/RESULTS.md). Returns the ratio (NaN outside) and the solid
    voxels where it is defined.
    """
    from ...segmentation import masked_smooth

    amount = chem["amount"]
    metals = [el for el in _METALS if el in amount["element"].values]
    stack = np.stack([amount.sel(element=metals).sum("element", skipna=False).values,
                      amount.sel(element="O").values])
    tm, o = masked_smooth(stack, solid, sigma_nm=cfg.smoothing_nm, spacing=px,
                          surface_nm=cfg.surface_layer_nm)
    defined = solid & np.isfinite(tm) & np.isfinite(o) & (o > 0)
    ratio = np.where(defined, tm / np.where(defined, o, 1.0), np.nan).astype(np.float32)
    return ratio, defined


def segment(ctx: RunContext) -> None:
    """recon + chemistry -> segmentation: mask, classes, shells, depth, pores, cracks."""
    from ... import segmentation as seg

    cfg = ctx.config.segmentation
    mu = io.read_group(ctx.store, "recon")["mu"].load()
    if "chemistry" not in io.list_groups(ctx.store):  # phase-contrast run: no chemistry
        ctx.log("segment: no chemistry group; composition classes not computed")
        return _segment_structure(ctx, mu)
    chem = io.read_group(ctx.store, "chemistry").load()
    px = float(mu.attrs["pixel_size"])
    mean_mu = mu.mean("energy").values
    mask = seg.particle_mask(mean_mu)
    target = cfg.target_tm_o
    if target is None:
        groups = io.list_groups(ctx.store)
        target = (io.read_group(ctx.store, "truth").attrs.get("target_tm_o")
                  if "truth" in groups else None)
    if target is None:
        raise ValueError("segment: [segmentation] target_tm_o is not set and the input has no "
                         "target composition; set it in the config")
    depth_nm = seg.depth(mask, spacing=px)
    shells = seg.shells(mask, n=cfg.n_shells, spacing=px, depth_map=depth_nm)
    pores = seg.find_pores(mean_mu, mask, spacing=px)
    cracks = seg.find_cracks(mean_mu, mask, spacing=px)
    ratio, solid = class_ratio(chem, mask & (pores == 0) & (cracks == 0), px, cfg)
    classes = seg.composition_classes(ratio, float(target), cfg.tolerance, mask=solid)

    def m(data, name, units, **attrs):
        return spatial_map(np.asarray(data), voxel_size=px, units=units, name=name, attrs=attrs)

    out = xr.Dataset({
        "mask": m(mask, "mask", "1"),
        "tm_o_ratio_smoothed": m(ratio, "tm_o_ratio_smoothed", "1",
                                 smoothing_nm=cfg.smoothing_nm,
                                 surface_layer_nm=cfg.surface_layer_nm),
        "composition_class": m(classes, "composition_class", "1", target_tm_o=float(target),
                               tolerance=cfg.tolerance,
                               flag_meanings="background target oxygen_poor oxygen_rich"),
        "depth": m(depth_nm, "depth", "nm"),
        "shell": m(shells, "shell", "1"),
        "pores": m(pores, "pores", "1"),
        "cracks": m(cracks, "cracks", "1"),
    }, attrs={"pixel_size": px, "pixel_size_units": "nm"})
    add_provenance(out, "pipeline.segment", inputs=[str(ctx.store)], target_tm_o=float(target),
                   tolerance=cfg.tolerance, n_shells=cfg.n_shells,
                   smoothing_nm=cfg.smoothing_nm, surface_layer_nm=cfg.surface_layer_nm)
    io.write(ctx.store, "segmentation", out, overwrite=ctx.overwrite)


def _segment_structure(ctx: RunContext, mu: xr.DataArray) -> None:
    """Mask, depth, shells, pores and cracks only (no chemistry to classify)."""
    from ... import segmentation as seg

    cfg = ctx.config.segmentation
    px = float(mu.attrs["pixel_size"])
    mean_mu = mu.mean("energy").values
    mask = seg.particle_mask(mean_mu)
    depth_nm = seg.depth(mask, spacing=px)
    maps = {"mask": (mask, "1"), "depth": (depth_nm, "nm"),
            "shell": (seg.shells(mask, n=cfg.n_shells, spacing=px, depth_map=depth_nm), "1"),
            "pores": (seg.find_pores(mean_mu, mask, spacing=px), "1"),
            "cracks": (seg.find_cracks(mean_mu, mask, spacing=px), "1")}
    out = xr.Dataset({name: spatial_map(np.asarray(data), voxel_size=px, units=units, name=name)
                      for name, (data, units) in maps.items()},
                     attrs={"pixel_size": px, "pixel_size_units": "nm"})
    add_provenance(out, "pipeline.segment", inputs=[str(ctx.store)], n_shells=cfg.n_shells)
    io.write(ctx.store, "segmentation", out, overwrite=ctx.overwrite)
