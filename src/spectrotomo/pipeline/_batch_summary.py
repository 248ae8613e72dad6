"""Per-scan metrics of a finished store and the batch summary table.

One row per scan: manifest labels, status, composition-class fractions,
porosity and crack fractions, median TM/O overall and per shell (the mean of a
per-voxel ratio is dominated by rim voxels where O is small), mean valence
per element overall and per shell, run parameters and time; where the store
holds a simulated ``truth`` group, the same quantities from the truth
(``truth_`` columns) so that a batch of simulated scans checks itself.

Valence maps are 2D (the XANES scan at 0 deg projects along the beam, the
volume's ``y`` axis): their shells are equal-area shells of the projected
particle mask, as the 2D studies report them. Means are over the pixels where
the fit defines a valence (its quality mask; thin rims often have none, so a
shell can be NaN); the truth is averaged over the same pixels, thickness-weighted.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from .. import io
from ._figures import class_fraction_table as _class_fractions

__all__ = ["scan_metrics", "summary_dataset", "write_summary"]

_CLASSES = ("target", "oxygen-poor", "oxygen-rich")


def _mean_by_shell(values: np.ndarray, shells: np.ndarray, n: int) -> list[float]:
    ok = np.isfinite(values) & (shells > 0)
    sums = np.bincount(shells[ok].astype(np.int64), weights=values[ok], minlength=n + 1)
    counts = np.bincount(shells[ok].astype(np.int64), minlength=n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return [float(v) for v in (sums / counts)[1:n + 1]]


def _median_by_shell(values: np.ndarray, shells: np.ndarray, n: int) -> list[float]:
    ok = np.isfinite(values) & (shells > 0)
    # n shells: a small fixed set
    return [float(np.median(values[ok & (shells == k)])) if (ok & (shells == k)).any()
            else float("nan") for k in range(1, n + 1)]


def _projected_shells(mask3d: np.ndarray, n: int, px: float) -> np.ndarray:
    from .. import segmentation as seg

    mask2d = mask3d.any(axis=1)  # beam along y at 0 deg: (z, x) like the XANES image
    return np.asarray(seg.shells(mask2d, n=n, spacing=px)) if mask2d.any() else \
        np.zeros(mask2d.shape, np.int32)


def _valence_metrics(val: xr.Dataset, shells2d: np.ndarray, n: int, prefix: str = "") -> dict:
    out = {}
    for el in val["element"].values:
        v = np.asarray(val["valence"].sel(element=el).values, float)
        inside = np.isfinite(v) & (shells2d > 0)
        out[f"{prefix}valence_{el}"] = float(v[inside].mean()) if inside.any() else float("nan")
        out[f"{prefix}valence_{el}_by_shell"] = _mean_by_shell(v, shells2d, n)
    return out


def _truth_metrics(truth: xr.Dataset, seg_ds: xr.Dataset, shells2d, n, measured) -> dict:
    """Truth of the same quantities; 2D valences over the pixels where the
    measured valence is defined (``measured``: element -> bool map)."""
    solid = truth["occupancy"].values >= 0.5
    ratio = truth["tm_o_ratio"].values
    shells3d = seg_ds["shell"].values
    inside = solid & np.isfinite(ratio)
    out = {"truth_tm_o": float(np.median(ratio[inside])),
           "truth_tm_o_by_shell": _median_by_shell(np.where(inside, ratio, np.nan), shells3d, n)}
    fr = _class_fractions(truth["composition_class"].values)
    out.update({f"truth_fraction_{k}": fr[k] for k in _CLASSES})
    # thickness-weighted projection: what the 2D XANES scan measures
    for el, valid in measured.items():
        if el not in truth["element"].values:
            continue
        dens = truth["density"].sel(element=el).values
        amount = dens.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            v2d = np.where(amount > 0, (dens * truth["valence"].sel(element=el).values).sum(axis=1)
                           / amount, np.nan)
        v2d = np.where(valid, v2d, np.nan)
        inside = np.isfinite(v2d) & (shells2d > 0)
        out[f"truth_valence_{el}"] = float(v2d[inside].mean()) if inside.any() else float("nan")
        out[f"truth_valence_{el}_by_shell"] = _mean_by_shell(v2d, shells2d, n)
    return out


def _chemistry_metrics(chem: xr.Dataset, seg_ds: xr.Dataset, summary: dict, n: int) -> dict:
    mask = seg_ds["mask"].values.astype(bool)
    ratio = chem["tm_o_ratio"].values
    inside = mask & np.isfinite(ratio)
    out = {f"fraction_{k}": float(summary["class_fractions"][k]) for k in _CLASSES}
    out["tm_o"] = float(np.median(ratio[inside])) if inside.any() else float("nan")
    out["tm_o_by_shell"] = _median_by_shell(np.where(inside, ratio, np.nan),
                                            seg_ds["shell"].values, n)
    out["target_tm_o"] = float(seg_ds["composition_class"].attrs.get("target_tm_o", np.nan))
    return out


def scan_metrics(store, report_dir, config) -> dict:
    """Metrics of one finished scan (flat dict; per-shell values as lists).

    Parameters
    ----------
    store : path-like
        The scan's finished sample store.
    report_dir : path-like
        Its report directory (``summary.json`` from the report step).
    config : Config
        The scan's run configuration (run parameters in the table).
    """
    summary = json.loads((Path(report_dir) / "summary.json").read_text())
    groups = io.list_groups(store)
    seg_ds = io.read_group(store, "segmentation").load()
    od = io.read_group(store, "od")
    n = int(config.segmentation.n_shells)
    px = float(seg_ds.attrs["pixel_size"])
    mask = seg_ds["mask"].values.astype(bool)
    out = {"porosity": float(summary["porosity"]),
           "crack_fraction": float(summary["crack_fraction"])}
    if "chemistry" in groups:  # absorption runs; phase-contrast runs have none
        out.update(_chemistry_metrics(io.read_group(store, "chemistry"), seg_ds, summary, n))
    if summary.get("mean_electron_density") is not None:
        out["mean_electron_density"] = float(summary["mean_electron_density"])
    out.update({
        "center_px": float(od.attrs["center"]),
        "algorithm": str(io.read_group(store, "recon")["mu"].attrs.get(
            "algorithm", config.reconstruct.algorithm)),  # what "auto" resolved to
        "iterations": (-1 if config.reconstruct.iterations is None
                       else config.reconstruct.iterations),
        "filter": config.reconstruct.filter,
        "phase_method": config.phase.method,
        "tolerance": float(config.segmentation.tolerance),
        "pixel_size_nm": px,
    })
    shells2d = _projected_shells(mask, n, px)
    measured: dict[str, np.ndarray] = {}
    if "valence" in groups:
        val = io.read_group(store, "valence").load()
        measured = {str(e): np.isfinite(val["valence"].sel(element=e).values)
                    for e in val["element"].values}
        out.update(_valence_metrics(val, shells2d, n))
    if "truth" in groups and "composition_class" in seg_ds:
        out.update(_truth_metrics(io.read_group(store, "truth").load(), seg_ds, shells2d, n,
                                  measured))
    return out


def summary_dataset(rows: list[dict], *, n_shells: int) -> xr.Dataset:
    """The batch table as a Dataset on dims ``scan`` (and ``shell`` 1..n, outer first).

    ``rows``: one flat dict per scan (labels, status, seconds, metrics); list
    values of length ``n_shells`` become ``(scan, shell)`` variables; keys
    missing from a row are NaN (numbers) or "" (text).
    """
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    data = {}
    for key in keys:
        values = [row.get(key) for row in rows]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, list) for v in present):
            arr = np.full((len(rows), n_shells), np.nan)
            for i, v in enumerate(values):
                if v is not None:
                    arr[i, :len(v)] = v[:n_shells]
            data[key] = (("scan", "shell"), arr)
        elif present and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                             for v in present):
            data[key] = (("scan",), np.array([np.nan if v is None else float(v) for v in values]))
        else:
            data[key] = (("scan",), np.array(["" if v is None else str(v) for v in values],
                                             dtype=str))
    labels = [row["label"] for row in rows]
    ds = xr.Dataset(data, coords={"scan": np.array(labels, dtype=str),
                                  "shell": np.arange(1, n_shells + 1)})
    ds["shell"].attrs["long_name"] = "equal-volume (3D) / equal-area (2D) shell, 1 = outermost"
    for key in ds.data_vars:
        if key.startswith(("fraction_", "truth_fraction_")) or key in ("porosity",
                                                                       "crack_fraction"):
            ds[key].attrs["units"] = "1"
        elif key == "seconds":
            ds[key].attrs["units"] = "s"
        elif key == "center_px":
            ds[key].attrs["units"] = "px"
        elif key == "pixel_size_nm":
            ds[key].attrs["units"] = "nm"
    return ds


def write_summary(rows: list[dict], out_dir, *, n_shells: int) -> xr.Dataset:
    """Write ``batch_summary.csv`` (one row per scan, shells as ``_shellK`` columns)
    and ``batch_summary.nc`` (netCDF3 via scipy) into ``out_dir``."""
    import csv

    out_dir = Path(out_dir)
    ds = summary_dataset(rows, n_shells=n_shells)
    columns: list[str] = []
    flat_rows = []
    for row in rows:
        flat = {}
        for key, value in row.items():
            if isinstance(value, list):
                flat.update({f"{key}_shell{k + 1}": v for k, v in enumerate(value[:n_shells])})
            else:
                flat[key] = value
        columns += [k for k in flat if k not in columns]
        flat_rows.append(flat)
    with open(out_dir / "batch_summary.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(flat_rows)
    ds.to_netcdf(out_dir / "batch_summary.nc", engine="scipy")
    return ds
