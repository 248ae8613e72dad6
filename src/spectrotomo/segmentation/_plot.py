"""PNG plots of shell, class and depth profiles (matplotlib, Agg canvas)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._model import ValidationError

__all__ = ["plot_profile"]


def plot_profile(table, path, *, title: str | None = None, dpi: int = 120) -> Path:
    """Plot a :func:`profile_table` result (mean +/- std per region) to a PNG.

    Parameters
    ----------
    table : xarray.Dataset
        Output of :func:`profile_table` (dims ``shell``, ``class`` or ``depth``,
        optionally ``particle`` and one leading dim, each drawn as a line).
    path : str or path-like
        PNG file to write (parent folders are created).
    title : str, optional
    dpi : int

    Returns
    -------
    pathlib.Path
        The written file.

    Notes
    -----
    Uses a bare ``Figure`` with the Agg canvas: no pyplot state, safe in
    worker threads and on machines without a display.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    by = table.attrs.get("by")
    if by not in ("shell", "class", "depth") or "mean" not in table:
        raise ValidationError("table must come from profile_table (attrs['by'] and 'mean')")
    x, labels, xlabel = _axis(table, by)
    mean, std = table["mean"], table["std"]
    others = [d for d in mean.dims if d != by]
    stacked_mean = mean.transpose(*others, by).values.reshape(-1, x.size)
    stacked_std = std.transpose(*others, by).values.reshape(-1, x.size)
    names = _line_names(mean, others)
    fig = Figure(figsize=(5.5, 3.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for m, s, name in zip(stacked_mean, stacked_std, names):
        ax.errorbar(x, m, yerr=s, marker="o", capsize=3, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30 if by != "shell" else 0, ha="right"
                       if by != "shell" else "center")
    ax.set_xlabel(xlabel)
    units = table.attrs.get("units", "")
    ax.set_ylabel(f"{table.attrs.get('quantity', 'value')}" + (f" ({units})" if units else ""))
    if len(names) > 1:
        ax.legend(fontsize="small")
    ax.set_title(title or f"{table.attrs.get('quantity', 'value')} per {by}")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


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
