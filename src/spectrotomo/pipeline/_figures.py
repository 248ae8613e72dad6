"""Report figures: orthogonal slices, label maps, histograms (matplotlib, Agg).

Each function takes one xarray object whose ``attrs["units"]`` labels the colour
bar and whose ``x``/``y``/``z`` coords (nm) give the axes, and writes one PNG.
Volumes may be lazy (dask, as read from a store): only the three drawn planes, a
strided sample for the colour limits and block counts for histograms are read
(:mod:`~spectrotomo.pipeline._report_reads`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from .._figure import new_figure, write_png
from ..segmentation import CLASS_LEGEND
from ._report_reads import SAMPLE_VOXELS, array_of, masked_histogram, sample, strided

__all__ = ["orthoslices", "orthoslices_along", "label_orthoslices", "histogram", "center_scores",
           "robust_limits", "masked_cmap", "CLASS_NAMES", "CLASS_COLORS", "class_fraction_table", "class_counts",
           "class_fractions_of_counts", "SAMPLE_VOXELS"]

#: Composition class value -> display name and colour, from the segmentation's one
#: legend (:data:`spectrotomo.segmentation.CLASS_LEGEND`).
CLASS_NAMES = {k: ("background" if k == 0 else name.replace("_", "-"))
               for k, (name, _) in CLASS_LEGEND.items()}
CLASS_COLORS = {k: colour for k, (_, colour) in CLASS_LEGEND.items()}

#: Dots per inch of the slice maps and histograms (a 4.2 in panel: 378 px); each figure
#: is made at the dpi it is written at, so that it is laid out and drawn on one renderer
DPI = 90


def class_fraction_table(classes: np.ndarray) -> dict[str, float]:
    """Volume fraction of each class (target, oxygen-poor, oxygen-rich) among the
    classified voxels, keyed by display name."""
    return class_fractions_of_counts(class_counts(classes))


def class_counts(classes: np.ndarray) -> np.ndarray:
    """Voxels of class 0 (background), 1, 2, 3 and above in a block of labels
    (int64, length 5): sums over blocks count a whole volume."""
    labels = np.asarray(classes).ravel()
    if labels.dtype.kind not in "ui":  # float labels (NaN outside, as da.where gives)
        labels = np.where(np.isfinite(labels), labels, 0).astype(np.int64)
    counts = np.bincount(np.clip(labels, 0, None), minlength=4)  # negative fill: background
    return np.append(counts[:4], counts[4:].sum()).astype(np.int64)


def class_fractions_of_counts(counts) -> dict[str, float]:
    """:func:`class_fraction_table` from :func:`class_counts` (summed over blocks)."""
    n = max(int(counts[1:].sum()), 1)
    return {CLASS_NAMES[c]: float(np.int64(counts[c]) / n) for c in (1, 2, 3)}


def _central_planes(da: xr.DataArray, *also, lead: int = 0
                    ) -> tuple[list[tuple[str, xr.DataArray]], list]:
    """The central z, y and x planes (or the one 2D map) and ``also`` (e.g. a strided
    sample), read together: of a lazy volume only the chunks they touch, each once.
    ``lead`` leading dims (e.g. element) before (z, y, x) are kept whole."""
    import dask

    if da.ndim - lead == 2:
        planes = [("y-x", da)]
    elif da.dims[lead:] != ("z", "y", "x"):
        raise ValueError(f"orthoslices: expected dims (z, y, x) or (y, x); got {da.dims}")
    else:
        nz, ny, nx = da.shape[lead:]
        planes = [(f"z = {float(da.z[nz // 2]):.0f} nm", da.isel(z=nz // 2)),
                  (f"y = {float(da.y[ny // 2]):.0f} nm", da.isel(y=ny // 2)),
                  (f"x = {float(da.x[nx // 2]):.0f} nm", da.isel(x=nx // 2))]
    read = dask.compute(*(p for _, p in planes), *also, scheduler="sync")
    return [(label, p) for (label, _), p in zip(planes, read)], list(read[len(planes):])


def _as_bool(mask, like=None):
    """A mask (numpy, dask or xarray) as a boolean array of its kind, lazy if it is; a
    lazy one in the (z, y, x) chunks of ``like`` (lazy values it masks) when given.

    Masking values of other chunks (the segmentation's 128^3 cubes, the chemistry's
    slabs of ``chunk_rows`` whole planes) splits both along each other's edges: at 256^3
    every chemistry chunk was decoded once per quarter of it, 4x (the element maps'
    planes and sample 0.85 -> 0.59-0.65 CPU s in the mask's chunks instead). The mask,
    1 B per voxel, is the cheaper one to read more than once.
    """
    data = array_of(mask)
    if not hasattr(data, "compute"):
        return np.asarray(data, dtype=bool)
    data = data.astype(bool)
    chunks = getattr(array_of(like), "chunks", None)
    if chunks is not None and len(chunks) >= data.ndim:
        data = data.rechunk(chunks[len(chunks) - data.ndim:])
    return data


def _extent(plane: xr.DataArray) -> list[float]:
    """imshow ``extent`` (left, right, bottom, top) in nm: the pixel edges, half a step
    beyond the first and last coordinates. A plane one pixel thick (a ``--slice``
    preview's side views) takes the other axis's step: centre to centre it would
    have no height (matplotlib warns of singular limits)."""
    r, c = (np.asarray(plane[d].values, dtype=float) for d in plane.dims)
    steps = [a[1] - a[0] for a in (r, c) if a.size > 1]
    fallback = abs(steps[0]) if steps else 1.0

    def edges(a):
        half = (a[1] - a[0] if a.size > 1 else fallback) / 2
        return float(a[0] - half), float(a[-1] + half)

    (top, bottom), (left, right) = edges(r), edges(c)
    return [left, right, bottom, top]


def _draw_planes(planes, draw):
    """One axis per plane, labelled in nm; ``draw(ax, plane)`` renders it."""
    fig = new_figure(figsize=(4.2 * len(planes), 4), dpi=DPI)
    axes = fig.subplots(1, len(planes), squeeze=False)
    artist = None
    for ax, (label, plane) in zip(axes[0], planes):
        artist = draw(ax, plane)
        ax.set_title(label)
        ax.set_xlabel(f"{plane.dims[1]} (nm)")
        ax.set_ylabel(f"{plane.dims[0]} (nm)")
    return fig, axes, artist


def robust_limits(values, mask=None, percentiles=(1.0, 99.0)) -> tuple[float, float]:
    """Colour limits: the ``percentiles`` of the finite values inside ``mask`` (the
    particle), so the empty surroundings' outliers (TM/O of +-1e5 where both amounts
    are noise) do not flatten the map.

    Of a volume over :data:`~spectrotomo.pipeline._report_reads.SAMPLE_VOXELS` voxels
    (numpy, dask or xarray), a strided sample of at most that many (the same voxels of
    ``mask``): limits within the sample's spacing of the whole volume's.
    """
    if mask is not None and np.shape(mask) == np.shape(values):
        mask = sample(mask)
    values = np.asarray(sample(values), dtype=float)
    if mask is not None:
        values = values[np.broadcast_to(np.asarray(mask, dtype=bool), values.shape)]
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, percentiles)
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 0.5, float(hi) + 0.5)


def masked_cmap(name: str):
    """A copy of colour map ``name`` that draws NaN transparent."""
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad=(0, 0, 0, 0))


def orthoslices(da: xr.DataArray, path, *, title: str | None = None, cmap: str = "viridis",
                mask=None, percentiles=(1.0, 99.0)) -> Path:
    """Write the three central orthogonal slices of a (z, y, x) map with a colour bar.

    Colour limits are the ``percentiles`` of the finite values inside ``mask``
    (e.g. the particle; default every voxel; of a volume over
    :data:`~spectrotomo.pipeline._report_reads.SAMPLE_VOXELS` voxels, a strided
    sample of that many); voxels outside ``mask`` and NaN are drawn transparent.
    ``da`` and ``mask`` may be lazy (dask): the planes and the sample are read
    together, each chunk once.
    """
    if mask is not None:
        da = da.where(_as_bool(mask, like=da))
    planes, (values,) = _central_planes(da, strided(da))
    return _draw_orthoslices(da, planes, values, path, title=title, cmap=cmap,
                             masked=mask is not None, percentiles=percentiles)


def orthoslices_along(da: xr.DataArray, dim: str, paths, *, titles, cmap: str = "viridis",
                      mask=None, percentiles=(1.0, 99.0)) -> list[Path]:
    """:func:`orthoslices` of each ``da.isel({dim: i})`` (e.g. each element's amount of
    a (element, z, y, x) map) to ``paths[i]``, titled ``titles[i]``: the same figures,
    but the planes and samples of all read at once. The chemistry stores all elements
    in one chunk: one figure per element read (and decoded) every chunk once per
    element (4x at 256^3, where the samples touch every chunk)."""
    if mask is not None:
        da = da.where(_as_bool(mask, like=da))
    da = da.transpose(dim, ...)
    # each map's stride as its own sample's (the cap per map)
    planes, (values,) = _central_planes(da, strided(da, cap=SAMPLE_VOXELS * da.sizes[dim]),
                                        lead=1)
    return [_draw_orthoslices(da.isel({dim: i}), [(label, p.isel({dim: i}))
                                                  for label, p in planes],
                              values[i], path, title=title, cmap=cmap,
                              masked=mask is not None, percentiles=percentiles)
            for i, (path, title) in enumerate(zip(paths, titles))]


def _draw_orthoslices(da, planes, values, path, *, title, cmap, masked, percentiles) -> Path:
    """The figure of :func:`orthoslices` from its planes (read) and the sample
    ``values`` its colour limits come from."""
    vmin, vmax = robust_limits(values, percentiles=percentiles)
    colours = masked_cmap(cmap)
    fig, axes, im = _draw_planes(planes, lambda ax, plane: ax.imshow(
        plane.values, cmap=colours, vmin=vmin, vmax=vmax, extent=_extent(plane),
        interpolation="nearest"))
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.85, extend="both",
                 label=f"{da.name or ''} ({da.attrs.get('units', '?')})")
    fig.suptitle(f"{title or da.name}  (colours: {percentiles[0]:g}-{percentiles[1]:g} % "
                 f"{'inside the particle' if masked else 'of all voxels'})")
    return write_png(fig, path, dpi=DPI)


def label_orthoslices(labels: xr.DataArray, path, *, names: dict[int, str],
                      colors: dict[int, str], title: str | None = None) -> Path:
    """Write central slices of an integer label image with a legend of ``names``."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    planes, _ = _central_planes(labels)  # colours of the labels drawn: those in the planes
    n = max(max(names), max((int(np.nanmax(p.values)) for _, p in planes if p.size),
                            default=0)) + 1
    palette = [colors.get(i, "#000000") for i in range(n)]
    cmap = ListedColormap(palette)
    fig, axes, _ = _draw_planes(planes, lambda ax, plane: ax.imshow(
        plane.values, cmap=cmap, vmin=-0.5, vmax=n - 0.5, extent=_extent(plane),
        interpolation="nearest"))
    handles = [Patch(color=colors.get(i, "#000000"), label=names[i]) for i in sorted(names)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles))
    fig.suptitle(title or str(labels.name))
    return write_png(fig, path, dpi=DPI)


def histogram(da: xr.DataArray, path, *, mask=None, bins: int = 100,
              title: str | None = None, percentiles=(0.5, 99.5)) -> Path:
    """Write a histogram of the finite values of ``da`` (inside ``mask`` if given):
    every voxel, counted block by block (a lazy volume is never read whole), over the
    ``percentiles`` of the values (:func:`robust_limits`: TM/O reaches ~1e5 in voxels
    whose O amount is noise, which squeezed the distribution into one bar); the title
    says how many fell outside."""
    mask = None if mask is None else _as_bool(mask)
    limits = robust_limits(da, mask, percentiles=percentiles)
    counts, edges, (below, above) = masked_histogram(da, mask, bins=bins, range=limits)
    fig = new_figure(figsize=(5, 3.5), dpi=DPI)
    ax = fig.subplots()
    # the counts as weights of one value per bin: the bars ax.hist draws of the values
    ax.hist(edges[:-1], bins=edges, weights=counts, color="#4472c4")
    ax.set_xlabel(f"{da.name or ''} ({da.attrs.get('units', '?')})")
    ax.set_ylabel("voxels")
    outside = f", {below + above} outside" if below + above else ""
    ax.set_title(title or f"{da.name} histogram (n = {int(counts.sum())}{outside})")
    fig.tight_layout()
    return write_png(fig, path, dpi=DPI)


def center_scores(scores: xr.Dataset, path) -> Path:
    """Write the rotation-centre search's QC curve: metric versus candidate.

    ``scores`` holds ``center_score_x`` and ``center_score`` along
    ``center_candidate`` (their ``long_name`` attrs label the axes) and
    ``attrs["center"]`` (px) and ``attrs["center_method"]``, as the
    pipeline's ``od`` group stores them.
    """
    x, metric = scores["center_score_x"], scores["center_score"]
    order = np.argsort(x.values)
    fig = new_figure(figsize=(5, 3.2), dpi=100)
    ax = fig.subplots()
    ax.plot(x.values[order], metric.values[order], ".-", lw=0.8)
    method, center = scores.attrs["center_method"], float(scores.attrs["center"])
    if x.attrs.get("units") == "px":
        ax.axvline(center, color="C3", lw=1, label=f"centre {center:.2f} px")
        ax.legend()
    ax.set_title(f"rotation centre {center:.2f} px ({method})")
    ax.set_xlabel(x.attrs["long_name"])
    ax.set_ylabel(metric.attrs["long_name"])
    fig.tight_layout()
    return write_png(fig, path, dpi=100)
