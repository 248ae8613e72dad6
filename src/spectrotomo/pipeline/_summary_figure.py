"""One summary figure per sample, laid out like the seed study's Fig. 2/3 (Liu et
al. 2024): composition classes on a central slice with their volume fractions,
the TM/O map the classes come from, the 2D valence maps, and the profiles from
the surface to the centre in five equal-volume (3D) / equal-area (2D) shells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import io
from .._figure import new_figure, write_png
from ._figures import _extent, masked_cmap, robust_limits
from ._figures import CLASS_COLORS, CLASS_NAMES, class_counts, class_fractions_of_counts
from ._report_reads import block_sums

__all__ = ["summary_figure"]


def _slice_panel(ax, plane, *, cmap, limits, title, units, fig):
    im = ax.imshow(plane.values, cmap=masked_cmap(cmap), vmin=limits[0], vmax=limits[1],
                   extent=_extent(plane), interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"{plane.dims[1]} (nm)", fontsize=8)
    ax.set_ylabel(f"{plane.dims[0]} (nm)", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8, extend="both").set_label(units, fontsize=8)


def _classes_panel(ax, classes, fig):
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    z = classes.sizes["z"] // 2
    plane = classes.isel(z=z).compute(scheduler="sync")
    plane = plane.astype(float).where(plane > 0)
    cmap = ListedColormap([CLASS_COLORS[k] for k in (1, 2, 3)]).with_extremes(bad=(0, 0, 0, 0))
    ax.imshow(plane.values, cmap=cmap, vmin=0.5, vmax=3.5, extent=_extent(plane),
              interpolation="nearest")
    ax.set_title(f"composition classes, z = {float(classes.z[z]):.0f} nm", fontsize=10)
    ax.set_xlabel("x (nm)", fontsize=8)
    ax.set_ylabel("y (nm)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(handles=[Patch(color=CLASS_COLORS[k], label=CLASS_NAMES[k]) for k in (1, 2, 3)],
              fontsize=7, loc="lower right", framealpha=0.8)


def _fractions_panel(ax, fractions: dict):
    names = list(fractions)
    values = [100 * fractions[n] for n in names]
    bars = ax.bar(names, values, color=[CLASS_COLORS[k] for k in (1, 2, 3)])
    ax.bar_label(bars, fmt="%.1f %%", fontsize=8)
    ax.set_ylabel("volume fraction (%)", fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_title("class volume fractions", fontsize=10)
    ax.tick_params(labelsize=8)


def _valence_shells(val, el):
    """Valence per 2D equal-area shell of the element's quality mask (a profile table)."""
    from .. import segmentation as seg

    quality = val["quality_mask"].sel(element=el).values if "quality_mask" in val else \
        np.isfinite(val["valence"].sel(element=el).values)
    if quality.sum() < 5:
        return None
    return seg.profile_table(val["valence"].sel(element=el), by="shell", labels=quality,
                             spacing=float(val.attrs.get("pixel_size", 1.0)))


def _profile_axes(ax, title, ylabel):
    n = 5
    ax.set_xticks(np.arange(1, n + 1))
    ax.set_xticklabels([f"{100 * (k - 1) // n}-{100 * k // n} %" for k in range(1, n + 1)],
                       fontsize=7)
    ax.set_xlabel("shell, surface -> centre", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def summary_figure(store, path, *, title: str | None = None,
                   fractions: dict | None = None) -> Path:
    """Write the sample's summary figure (PNG).

    Row 1: composition classes on the central z slice, the smoothed TM/O ratio
    they are formed from (colours 1-99 % inside the particle, outside
    transparent), class volume fractions.  Row 2: the 2D effective-valence
    maps per element.  Row 3: TM/O per equal-volume shell and valence per
    equal-area shell, each the median with the interquartile range as a band.

    Parameters
    ----------
    store : path-like
        A finished store with ``chemistry``, ``segmentation`` and ``profiles``
        (``valence`` optional).
    path : path-like
        PNG to write.
    title : str, optional
    fractions : dict, optional
        The class volume fractions (:func:`~spectrotomo.pipeline._figures.class_fraction_table`)
        when the caller has them; else counted here, block by block.

    The volumes are read by planes, blocks and a bounded sample (colour limits), never
    whole (:mod:`~spectrotomo.pipeline._report_reads`).
    """
    from .. import segmentation as seg
    from .steps.profile import profile_table_of

    groups = io.list_groups(store)
    seg_ds = io.read_group(store, "segmentation")  # the variables drawn, lazy
    seg_ds = seg_ds[[v for v in ("mask", "composition_class", "tm_o_ratio_smoothed")
                     if v in seg_ds]]
    profiles = io.read_group(store, "profiles").load()
    val = None
    if "valence" in groups:  # 2D maps: read whole
        val = io.read_group(store, "valence")
        val = val[[v for v in ("valence", "quality_mask") if v in val]].load()
    if fractions is None:
        fractions = class_fractions_of_counts(block_sums(class_counts,
                                                         seg_ds["composition_class"]))
    elements = list(val["element"].values) if val is not None else []
    ncol = max(3, len(elements))
    fig = new_figure(figsize=(4.0 * ncol, 11.5), layout="constrained", dpi=90)
    grid = fig.add_gridspec(3, ncol)
    mask = seg_ds["mask"]
    z = seg_ds.sizes["z"] // 2
    _classes_panel(fig.add_subplot(grid[0, 0]), seg_ds["composition_class"], fig)
    ratio = seg_ds["tm_o_ratio_smoothed"] if "tm_o_ratio_smoothed" in seg_ds else \
        io.read_group(store, "chemistry")["tm_o_ratio"]
    ratio = ratio.where(mask.data)
    _slice_panel(fig.add_subplot(grid[0, 1]), ratio.isel(z=z).compute(scheduler="sync"),
                 cmap="viridis", limits=robust_limits(ratio), units="TM/O (1)", fig=fig,
                 title=f"TM/O{' (smoothed)' if ratio.name.endswith('smoothed') else ''}, "
                       f"z = {float(seg_ds.z[z]):.0f} nm")
    _fractions_panel(fig.add_subplot(grid[0, 2]), fractions)
    for k, el in enumerate(elements):
        da = val["valence"].sel(element=el)
        quality = val["quality_mask"].sel(element=el) if "quality_mask" in val else None
        da = da.where(quality) if quality is not None else da
        _slice_panel(fig.add_subplot(grid[1, k]), da, cmap="plasma",
                     limits=robust_limits(da), units="valence (e)", fig=fig,
                     title=f"{el} effective valence (2D, projected)")
    if not elements:
        fig.add_subplot(grid[1, :]).text(0.5, 0.5, "no valence group (no XANES scan)",
                                         ha="center", va="center").axes.set_axis_off()
    bottom = grid[2, :].subgridspec(1, 2)
    ax = fig.add_subplot(bottom[0, 0])
    seg.draw_profile(ax, profile_table_of(profiles, "tm_o_ratio", "shell"),
                     label="TM/O per voxel (median)")
    if "tm_o_ratio_smoothed_median_by_shell" in profiles:
        seg.draw_profile(ax, profile_table_of(profiles, "tm_o_ratio_smoothed", "shell"),
                         band=False, linestyle="--", marker="s", label="smoothed TM/O "
                         "(classes)")
    _profile_axes(ax, "TM/O per equal-volume shell (3D)", "TM/O (1)")
    ax = fig.add_subplot(bottom[0, 1])
    for el in elements:
        table = _valence_shells(val, el)
        if table is not None:
            seg.draw_profile(ax, table, label=f"{el} (median)")
    _profile_axes(ax, "valence per equal-area shell (2D)", "effective valence (e)")
    fig.suptitle(title or f"{Path(store).name}: composition, valence, surface -> centre",
                 fontsize=12)
    # laid out once, in its one draw (savefig: a draw to lay out, then one to render)
    return write_png(fig, path, dpi=90)
