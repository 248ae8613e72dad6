"""Batch figures against the manifest labels, like the published comparisons:
composition-class proportions per label value (stacked bars) and mean valence
per shell against a label (lines, one per shell), plus median TM/O per shell.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._figure import new_figure
from ._figures import CLASS_COLORS

__all__ = ["plot_batch", "label_axis_title"]

_CLASSES = (("target", 1), ("oxygen-poor", 2), ("oxygen-rich", 3))
#: Axis titles of common manifest labels; other names: suffix rules below.
_KNOWN = {"voltage_v": "voltage (V)", "state_of_charge": "state of charge (%)",
          "soc": "state of charge (%)", "c_rate": "C-rate (1/h)", "cycle": "cycle number",
          "temperature_c": "temperature (°C)"}
_SUFFIX = {"_v": "V", "_mv": "mV", "_nm": "nm", "_um": "µm", "_ev": "eV", "_h": "h", "_s": "s",
           "_pct": "%", "_percent": "%"}


def label_axis_title(key: str) -> str:
    """Axis title with unit for a manifest label name (``voltage_v`` -> ``voltage (V)``)."""
    if key in _KNOWN:
        return _KNOWN[key]
    for suffix, unit in _SUFFIX.items():
        if key.endswith(suffix):
            return f"{key[: -len(suffix)].replace('_', ' ')} ({unit})"
    return key.replace("_", " ")


def _numeric_labels(ds, keys, ok) -> list[str]:
    out = []
    for key in keys:
        if key in ds and ds[key].dtype.kind == "f":
            values = ds[key].values[ok]
            if np.unique(values[np.isfinite(values)]).size >= 2:
                out.append(key)
    return out


def _grouped(x: np.ndarray, y: np.ndarray):
    """Mean of ``y`` rows (scan, ...) per distinct finite ``x``, sorted by ``x``."""
    xs = np.unique(x[np.isfinite(x)])
    means = []
    for v in xs:  # distinct label values: a handful
        rows = y[x == v]
        count = np.isfinite(rows).sum(axis=0)
        means.append(np.where(count > 0, np.nansum(rows, axis=0) / np.maximum(count, 1), np.nan))
    return xs, np.stack(means)


def _class_bars(ds, key, ok, path: Path) -> Path:
    x = ds[key].values[ok]
    fr = np.stack([ds[f"fraction_{name}"].values[ok] for name, _ in _CLASSES], axis=1) * 100
    xs, means = _grouped(x, fr)
    fig = new_figure(figsize=(6.5, 4))
    ax = fig.subplots()
    pos = np.arange(xs.size)
    bottom = np.zeros(xs.size)
    for j, (name, code) in enumerate(_CLASSES):
        ax.bar(pos, means[:, j], bottom=bottom, color=CLASS_COLORS[code], label=name, width=0.6)
        bottom += means[:, j]
    ax.set_xticks(pos, [f"{v:g}" for v in xs])
    ax.set_xlabel(label_axis_title(key))
    ax.set_ylabel("volume fraction of the particle (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"composition classes vs {label_axis_title(key)}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _shell_lines(ds, var, key, ok, ylabel, title, path: Path) -> Path:
    import matplotlib

    xs, means = _grouped(ds[key].values[ok], ds[var].values[ok])
    n = means.shape[1]
    fig = new_figure(figsize=(7, 4))
    ax = fig.subplots()
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, n))
    for k in range(n):
        lo, hi = 100 * k // n, 100 * (k + 1) // n
        ax.plot(xs, means[:, k], "o-", color=colors[k], label=f"shell {k + 1} ({lo}-{hi} %)")
    ax.set_xlabel(label_axis_title(key))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(title="depth from surface", fontsize="small", title_fontsize="small",
              loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_batch(ds, out_dir, *, label_keys) -> list[Path]:
    """Figures of the batch table ``ds`` against every numeric manifest label
    with at least two distinct values among the complete scans.

    Writes ``<out_dir>/figures/classes_vs_<label>.png`` (stacked bars, %),
    ``valence_<El>_by_shell_vs_<label>.png`` and ``tm_o_by_shell_vs_<label>.png``
    (one line per shell, shell 1 outermost). Returns the paths written.
    """
    import matplotlib

    matplotlib.use("Agg")
    ok = ds["status"].values == "complete"
    keys = _numeric_labels(ds, label_keys, ok)
    if not keys or "fraction_target" not in ds:
        return []
    fig_dir = Path(out_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    valence_vars = [v for v in ds.data_vars if str(v).startswith("valence_")
                    and str(v).endswith("_by_shell")]
    for key in keys:
        paths.append(_class_bars(ds, key, ok, fig_dir / f"classes_vs_{key}.png"))
        for var in valence_vars:
            el = str(var).split("_")[1]
            paths.append(_shell_lines(ds, var, key, ok, f"mean {el} valence (2D, per shell)",
                                      f"{el} valence per shell vs {label_axis_title(key)}",
                                      fig_dir / f"{var}_vs_{key}.png"))
        paths.append(_shell_lines(ds, "tm_o_by_shell", key, ok, "median TM/O atomic ratio",
                                  f"TM/O per shell vs {label_axis_title(key)}",
                                  fig_dir / f"tm_o_by_shell_vs_{key}.png"))
    return paths
