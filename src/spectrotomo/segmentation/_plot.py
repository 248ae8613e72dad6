"""PNG plots of shell, class and depth profiles (matplotlib, Agg canvas)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._figure import new_figure, write_png
from .._model import ValidationError

__all__ = ["plot_profile", "draw_profile"]


def plot_profile(table, path, *, title: str | None = None, dpi: int = 120,
                 smoothed=None) -> Path:
    """Plot a :func:`profile_table` result to a PNG: the median per region with the
    interquartile range as a band.

    Parameters
    ----------
    table : xarray.Dataset
        Output of :func:`profile_table` (dims ``shell``, ``class`` or ``depth``,
        optionally ``particle`` and one leading dim, each drawn as a line).
        Tables without ``q25``/``q75`` (older stores) draw the median only.
    path : str or path-like
        PNG file to write (parent folders are created).
    title : str, optional
    dpi : int
    smoothed : xarray.Dataset, optional
        A second table over the same regions (e.g. the smoothed TM/O the
        composition classes are formed from): its median is drawn dashed.

    Returns
    -------
    pathlib.Path
        The written file.

    Notes
    -----
    Median and quartiles, not mean +- std: a ratio of two noisy amounts has
    a few wild voxels (std 3.6 for a mean of 0.4 in the small preset) that
    make a std bar meaningless.  Uses a bare ``Figure`` with the Agg canvas
    (``spectrotomo._figure.new_figure``): no pyplot state, safe in worker
    threads and on machines without a display.
    """
    by = table.attrs.get("by")
    if by not in ("shell", "class", "depth") or "median" not in table:
        raise ValidationError("table must come from profile_table (attrs['by'] and 'median')")
    x, labels, xlabel = _axis(table, by)
    fig = new_figure(figsize=(5.5, 3.8), dpi=dpi)  # laid out at the dpi written
    ax = fig.add_subplot()
    names = draw_profile(ax, table, x)
    if smoothed is not None:
        draw_profile(ax, smoothed, x, band=False, linestyle="--", marker="s",
                     label=f"{smoothed.attrs.get('quantity', 'smoothed')} (median)")
    if by == "depth" and np.all(x > 0):  # bins widen with depth (30 nm .. 2.5 um)
        ax.set_xscale("log")
        ax.minorticks_off()
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30 if by != "shell" else 0, ha="right"
                       if by != "shell" else "center")
    ax.set_xlabel(xlabel)
    units = table.attrs.get("units", "")
    ax.set_ylabel(f"{table.attrs.get('quantity', 'value')}" + (f" ({units})" if units else ""))
    if len(names) > 1 or smoothed is not None or names[0] is not None:
        ax.legend(fontsize="small")
    ax.set_title(title or f"{table.attrs.get('quantity', 'value')} per {by}: median, "
                 "interquartile range")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_png(fig, path, dpi=dpi)


def draw_profile(ax, table, x=None, *, band: bool = True, label: str | None = None,
                 **line_kw) -> list:
    """Draw a profile table's median per region (and its interquartile range as a
    shaded band) on a matplotlib axis; one line per entry of any other dim.

    Returns the line names (``[None]`` for a single unnamed line).
    """
    by = table.attrs["by"]
    if x is None:
        x = _axis(table, by)[0]
    median = table["median"]
    others = [d for d in median.dims if d != by]

    def stack(name):
        return table[name].transpose(*others, by).values.reshape(-1, np.size(x))

    quartiles = band and "q25" in table and "q75" in table
    lo, hi = (stack("q25"), stack("q75")) if quartiles else (None, None)
    names = _line_names(median, others)
    line_kw.setdefault("marker", "o")
    for k, (m, name) in enumerate(zip(stack("median"), names)):
        line, = ax.plot(x, m, label=label or name or "median", **line_kw)
        if quartiles:
            ax.fill_between(x, lo[k], hi[k], color=line.get_color(), alpha=0.2, lw=0,
                            label="interquartile range" if len(names) == 1 else None)
    return names


def _axis(table, by):
    if by == "shell":
        n = table.sizes["shell"]
        labels = [f"{100 * (k - 1) // n}-{100 * k // n} %" for k in range(1, n + 1)]
        return np.arange(1, n + 1), labels, "shell (surface -> centre, equal volume)"
    if by == "class":
        return np.arange(1, table.sizes["class"] + 1), list(table["class_name"].values), "class"
    centres = table["depth"].values
    return centres, [f"{c:.0f}" for c in centres], "depth below surface (nm)"


def _line_names(mean, others):
    if not others:
        return [None]
    grids = np.meshgrid(*[mean[d].values for d in others], indexing="ij")
    flat = [g.ravel() for g in grids]
    return [", ".join(f"{d}={v[i]}" for d, v in zip(others, flat)) for i in range(flat[0].size)]
