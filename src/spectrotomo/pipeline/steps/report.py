"""Report: figures, the ``profiles`` group as tables, and a summary (CSV + JSON) from
a finished store,
plus errors against ground truth when the store holds a simulated ``truth`` group.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import xarray as xr

from ... import io
from .._figures import (CLASS_COLORS, CLASS_NAMES, center_scores, class_fraction_table,
                       histogram, label_orthoslices, orthoslices)
from .._truth_frame import registered_z_shift, truth_in_frame
from .._valence3d_report import truth_interior, valence3d_errors, valence3d_report

__all__ = ["write_report", "truth_errors", "ome_zarr_dir", "CLASS_NAMES", "CLASS_COLORS"]

#: Report file stem of each profiled quantity (``<stem>_by_<by>.csv``/``.png``).
_PROFILE_FILES = {"tm_o_ratio": "tm_o", "electron_density": "electron_density",
                  "valence3d": "valence3d"}


def _profile_tables(store, out_dir: Path, draw=None) -> dict:
    """CSV (and PNG, drawn by ``draw(fn, *args, **kwargs)`` unless None) tables of the
    scalar maps in the ``profiles`` group, and the median of each per shell for the
    summary."""
    from ... import segmentation as seg
    from .profile import profile_table_of

    if "profiles" not in io.list_groups(store):
        raise ValueError(f"report: store {store} has no 'profiles' group; run the profile "
                         "step first (spectrotomo profile CONFIG)")
    profiles = io.read_group(store, "profiles").load()
    summary = {}
    for quantity, stem in _PROFILE_FILES.items():
        for by in ("shell", "depth", "class"):
            if f"{quantity}_mean_by_{by}" not in profiles:
                continue
            table = profile_table_of(profiles, quantity, by)
            seg.to_csv(table, out_dir / f"{stem}_by_{by}.csv")
            smoothed = None
            if f"{quantity}_smoothed_mean_by_{by}" in profiles:  # what the classes use
                smoothed = profile_table_of(profiles, f"{quantity}_smoothed", by)
                seg.to_csv(smoothed, out_dir / f"{stem}_smoothed_by_{by}.csv")
            if draw:
                draw(seg.plot_profile, table, out_dir / f"{stem}_by_{by}.png", smoothed=smoothed)
            if by == "shell":
                # nested per element for valence3d (element, shell)
                summary[f"{stem}_mean_by_shell"] = table["mean"].values.astype(float).tolist()
                summary[f"{stem}_median_by_shell"] = table["median"].values.astype(
                    float).tolist()
    return summary


def _amount_bias(chem: xr.Dataset, truth: xr.Dataset) -> dict[str, float]:
    """Mean estimated / true amount - 1 per element, over the fully solid interior
    (> 3 voxels deep, no pores): the absolute calibration of the element maps
    (limited-angle FBP under-recovers interiors; ratios are unaffected)."""
    inner = truth_interior(truth)
    out = {}
    for el in chem["element"].values:
        if el not in truth["element"].values or not inner.any():
            continue
        est = chem["amount"].sel(element=el).values[inner]
        true = truth["density"].sel(element=el).values[inner]
        out[str(el)] = float(np.nanmean(est) / true.mean() - 1.0)
    return out


#: The truth variables the 3D errors compare in the reconstruction's frame (mask,
#: classes, amounts over the interior, 3D valence); the others are not shifted.
_FRAME_VARIABLES = ("particle", "occupancy", "depth", "void", "crack", "composition_class",
                    "density", "valence")


def truth_errors(store) -> dict:
    """Errors of a finished run against the simulator's ground truth in ``store``.

    Volumes are compared with the truth shifted into the registered frame
    (:func:`~spectrotomo.pipeline._truth_frame.truth_in_frame`, sub-voxel along z;
    ``truth_frame_shift_z_vox`` says by how much).
    """
    groups = io.list_groups(store)
    if "truth" not in groups:
        return {}
    truth = io.read_group(store, "truth")  # only what the errors use (not state_fraction)
    truth = truth[[v for v in (*_FRAME_VARIABLES, "electron_density") if v in truth]].load()
    raw = io.read_group(store, "raw")
    errors = {}
    # the 3D comparisons (mask, amounts, classes, 3D valence) in the frame the volume
    # was reconstructed in; the 2D valence scan and the phase runs keep the truth's own
    frame = truth
    if "od" in groups:
        od = io.read_group(store, "od")
        frame = truth_in_frame(truth, registered_z_shift(raw, od), variables=_FRAME_VARIABLES)
        errors["truth_frame_shift_z_vox"] = float(frame.attrs["frame_shift_z_vox"])
        errors["center_error_px"] = abs(float(od.attrs["center"]) - float(raw.attrs["true_center"]))
        if "true_shift" in raw and raw["true_shift"].dims[0] == "angle":
            est = od["jitter"].values - od["jitter"].values.mean(0)
            true = raw["true_shift"].values - raw["true_shift"].values.mean(0)
            errors["jitter_rms_error_px"] = float(np.sqrt(((est - true) ** 2).sum(1).mean()))
        if "energy_scale" in od and "true_scale" in raw:
            errors["magnification_error_pct"] = _magnification_error(od, raw)
    if "density" in groups and "electron_density" in truth:
        errors.update(_density_errors(store, truth))
    if "segmentation" in groups and "chemistry" in groups:
        seg_ds = io.read_group(store, "segmentation")
        est_cls = seg_ds["composition_class"].values
        true_cls = frame["composition_class"].values
        est = class_fraction_table(est_cls)
        true = class_fraction_table(true_cls)
        diff = [abs(est[k] - true[k]) for k in est]
        # max: the worst single published proportion; sum: twice the total-variation
        # distance (every misassigned percentage point counted where it went and came from)
        errors["class_fraction_error_pp"] = max(diff) * 100
        errors["class_fraction_error_sum_pp"] = sum(diff) * 100
        both = (est_cls > 0) & (true_cls > 0)
        # fractions can match by cancellation; per-voxel agreement says how local they are
        errors["class_voxel_agreement"] = (float((est_cls[both] == true_cls[both]).mean())
                                           if both.any() else None)
        errors["class_fractions"] = est
        errors["class_fractions_truth"] = true
    if "segmentation" in groups:
        errors.update(_mask_errors(io.read_group(store, "segmentation")["mask"].values, frame))
    if "chemistry" in groups:
        errors["amount_relative_bias"] = _amount_bias(io.read_group(store, "chemistry"), frame)
    if "valence" in groups:
        errors.update(_energy_offset_errors(io.read_group(store, "valence")))
        val = io.read_group(store, "valence")["valence"].sel(element="Mn").values
        n_mn = truth["density"].sel(element="Mn").values
        v_mn = truth["valence"].sel(element="Mn").values
        # projected (thickness-weighted) truth: the 2D scan sees sum over y at 0 deg
        amount = n_mn.sum(axis=1)
        true2d = np.where(amount > 0, (n_mn * v_mn).sum(axis=1) / np.maximum(amount, 1e-12),
                          np.nan)
        thick = amount > 0.3 * np.nanmax(amount)
        ok = thick & np.isfinite(val)
        errors["mn_valence_mae"] = float(np.abs(val[ok] - true2d[ok]).mean()) if ok.any() else None
    if "valence3d" in groups:
        errors.update(valence3d_errors(store, frame))
    return errors


def _mask_errors(mask: np.ndarray, truth: xr.Dataset) -> dict:
    """Particle-mask IoU against the true particle (holes filled, as the mask is) and
    the extent error per axis (z, y, x) in voxels: a limited-angle reconstruction
    stretches the particle along the missing-wedge direction (y)."""
    from scipy import ndimage

    est = np.asarray(mask, dtype=bool)
    true = ndimage.binary_fill_holes(truth["particle"].values.astype(bool))
    extent = {}
    for axis, name in enumerate(("z", "y", "x")):
        other = tuple(a for a in range(3) if a != axis)
        pe, pt = np.flatnonzero(est.any(axis=other)), np.flatnonzero(true.any(axis=other))
        extent[name] = int((pe[-1] - pe[0]) - (pt[-1] - pt[0])) if pe.size and pt.size else None
    union = (est | true).sum()
    return {"mask_iou": float((est & true).sum() / union) if union else None,
            "extent_error_vox": extent}


def _energy_offset_errors(valence: xr.Dataset) -> dict:
    """Fitted vs true energy offset of the references (Mn window; simulated scans)."""
    if "true_energy_offset_ev" not in valence.attrs or "Mn" not in valence["element"].values:
        return {}
    fitted = float(valence.attrs["energy_offset_ev"][list(valence["element"].values).index("Mn")])
    true = float(valence.attrs["true_energy_offset_ev"])
    return {"energy_offset_ev": fitted, "energy_offset_true_ev": true,
            "energy_offset_error_ev": fitted - true}


def _magnification_error(od: xr.Dataset, raw: xr.Dataset) -> float:
    """Worst |estimated / true - 1| of the energy registration's scale, %.

    The simulator's ``true_scale`` is relative to the ideal geometry; the
    registration's is relative to its reference energy.
    """
    true = np.asarray(raw["true_scale"].values, float)
    ref = int(od.attrs.get("registration_reference", true.size // 2))
    est = np.asarray(od["energy_scale"].values, float)
    return float(np.abs(est / (true / true[ref]) - 1).max() * 100)


def _density_errors(store, truth: xr.Dataset) -> dict:
    """Relative error of the electron density inside the solid (eroded by one voxel)."""
    from scipy import ndimage

    est = io.read_group(store, "density")["electron_density"].isel(energy=0).values
    true = truth["electron_density"].values
    solid = ndimage.binary_erosion(truth["particle"].values & ~truth["void"].values)
    mean_true = float(true[solid].mean())
    return {"electron_density_mean_rel_error": abs(float(est[solid].mean()) - mean_true)
            / mean_true,
            "electron_density_rms_rel_error": float(np.sqrt(((est[solid] - true[solid]) ** 2)
                                                            .mean())) / mean_true}


def write_report(ctx) -> dict:
    """Figures (unless ``[output] figures = false``), profile tables and
    ``summary.json``/``summary.csv`` in ``ctx.report_dir``."""
    from concurrent.futures import ThreadPoolExecutor

    from ..._backend import host_threads

    out = Path(ctx.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = ctx.store
    # the errors against the truth are numpy (GIL released) and run beside the rest.
    # Figures are drawn in their own threads (bare Agg figures, no pyplot state): their
    # image resampling and PNG compression release the GIL. Drawing some figures in a
    # child process was measured and dropped: its imports and store reads cost more
    # than it took off this one (demo, loaded VM: 8.3-9.2 -> 11.4-12.1 CPU s, CPU /
    # runnable no better; gpu_bench/RESULTS.pipeline.md)
    with ThreadPoolExecutor(1, thread_name_prefix="spectrotomo-report") as side, \
            ThreadPoolExecutor(host_threads(), thread_name_prefix="spectrotomo-figure") as pool:
        errors = side.submit(truth_errors, store)
        drawn = []

        def draw(fn, *args, **kwargs):  # one figure, in the pool
            drawn.append(pool.submit(fn, *args, **kwargs))

        summary = _report(ctx, out, store, draw if ctx.config.output.figures else None)
        for figure in drawn:
            figure.result()  # a figure's error is the step's
        summary["errors_vs_truth"] = errors.result()
    return _finish(ctx, out, store, summary)


def _report(ctx, out: Path, store, draw) -> dict:
    """Profile tables and the summary without the errors against the truth; each
    figure goes to ``draw(fn, *args, **kwargs)`` (None: no figures)."""
    groups = io.list_groups(store)
    # the profile tables first: written files that a kill mid-report leaves (and a rerun
    # replaces) while the rest still runs; their summary entries go last, as before
    tables = _profile_tables(store, out, draw)
    if draw and "chemistry" in groups:  # the largest figure first: it reads its own data
        from .._summary_figure import summary_figure

        draw(summary_figure, store, out / "summary_figure.png")
    seg_ds = io.read_group(store, "segmentation")  # what is drawn and counted, not all
    seg_ds = seg_ds[[v for v in ("mask", "pores", "cracks", "composition_class")
                     if v in seg_ds]].load()  # no classes without chemistry (phase runs)
    summary = {"porosity": float((seg_ds["pores"].values > 0).sum()
                                 / max(seg_ds["mask"].values.sum(), 1)),
               "crack_fraction": float((seg_ds["cracks"].values > 0).sum()
                                       / max(seg_ds["mask"].values.sum(), 1))}
    if draw and "od" in groups:
        _center_figure(store, out, draw)
    if "density" in groups:
        summary.update(_density_report(store, seg_ds, out, draw))
    elif draw:
        mu = io.read_group(store, "recon")["mu"]
        draw(orthoslices, mu.isel(energy=-1).load(), out / "mu_highest_energy.png",
             title=f"linear attenuation at {float(mu.energy[-1]):.1f} eV")
    if "chemistry" in groups:
        summary.update(_chemistry_report(store, seg_ds, out, draw))
    if "valence" in groups:
        val = io.read_group(store, "valence").load()
        for el in val["element"].values:
            da = val["valence"].sel(element=el)
            if draw:
                quality = val["quality_mask"].sel(element=el) if "quality_mask" in val else None
                draw(orthoslices, da, out / f"valence_{el}_2d.png", mask=quality,
                     title=f"{el} effective valence (2D)", cmap="plasma")
            summary[f"mean_valence_{el}_2d"] = float(np.nanmean(da.values))
    if "valence3d" in groups:
        summary.update(valence3d_report(store, out, draw=draw))
    summary.update(tables)
    return summary


def _finish(ctx, out: Path, store, summary: dict) -> dict:
    """OME-Zarr export (if configured), summary.json and summary.csv."""
    if ctx.config.output.ome_zarr:
        summary["ome_zarr"] = str(ome_zarr_dir(store))
        io.export_store(store, ome_zarr_dir(store), version=ctx.config.output.ome_zarr_version,
                        overwrite=True)  # the previous report's export of this store
    summary["warnings"] = list(ctx.results.get("warnings", []))  # validation and steps
    summary["parameters"] = ctx.config.to_dict()
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    with open(out / "summary.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["quantity", "value"])
        for key, value in _flatten(summary).items():
            writer.writerow([key, value])
    return summary


def ome_zarr_dir(store) -> Path:
    """Where ``[output] ome_zarr = true`` exports a store: ``<store>-ome`` beside it."""
    store = Path(store)
    return store.with_suffix("").parent / (store.with_suffix("").name + "-ome")


def _center_figure(store, out: Path, draw) -> None:
    """``center_scores.png``: the automatic centre search's candidates and metric."""
    od = io.read_group(store, "od")
    if "center_score" in od:
        draw(center_scores, od[["center_score_x", "center_score"]].load().assign_attrs(od.attrs),
             out / "center_scores.png")


def _density_report(store, seg_ds: xr.Dataset, out: Path, draw=None) -> dict:
    """Electron-density figures (by ``draw``, unless None) and mean values of a
    phase-contrast run."""
    dens = io.read_group(store, "density").load()
    rho = dens["electron_density"].isel(energy=0)
    mask = seg_ds["mask"].values
    if draw:
        draw(orthoslices, rho, out / "electron_density.png", title="electron density",
             mask=mask)
        draw(histogram, rho, out / "electron_density_histogram.png", mask=mask)
    return {"mean_electron_density": float(rho.values[mask].mean()) if mask.any() else None}


def _chemistry_report(store, seg_ds: xr.Dataset, out: Path, draw=None) -> dict:
    """Element, TM/O and composition-class figures (by ``draw``, unless None), class
    fractions and profiles."""
    chem = io.read_group(store, "chemistry").load()
    if draw:
        _chemistry_figures(chem, seg_ds, out, draw)
    return {"class_fractions": class_fraction_table(seg_ds["composition_class"].values)}


def _chemistry_figures(chem: xr.Dataset, seg_ds: xr.Dataset, out: Path, draw) -> None:
    mask = seg_ds["mask"].values
    for el in chem["element"].values:
        draw(orthoslices, chem["amount"].sel(element=el), out / f"amount_{el}.png",
             title=f"{el} amount", mask=mask)
    draw(orthoslices, chem["tm_o_ratio"], out / "tm_o_ratio.png", title="TM/O atomic ratio",
         mask=mask)
    draw(histogram, chem["tm_o_ratio"], out / "tm_o_histogram.png", mask=mask)
    draw(label_orthoslices, seg_ds["composition_class"], out / "composition_classes.png",
         names=CLASS_NAMES, colors=CLASS_COLORS, title="composition classes")


def _flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten(v, key + "."))
        else:
            flat[key] = v
    return flat
