"""Errors of a finished simulated run against the simulator's ground truth (the
report's ``errors_vs_truth``): mask, classes, amounts, electron density, 2D and 3D
valence, registration, in the frame the volume was reconstructed in.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .. import io
from ._figures import class_fraction_table
from ._truth_frame import registered_z_shift, truth_in_frame
from ._valence3d_report import truth_interior, valence3d_errors

__all__ = ["truth_errors", "TRUTH_MAX_VOXELS"]


def _amount_bias(chem: xr.Dataset, truth: xr.Dataset) -> dict[str, float]:
    """Mean estimated / true amount - 1 per element, over the fully solid interior
    (> 3 voxels deep, no pores): the absolute calibration of the element maps
    (limited-angle FBP under-recovers interiors; ratios are unaffected)."""
    inner = truth_interior(truth)
    elements = [el for el in chem["element"].values if el in truth["element"].values]
    if not elements or not inner.any():
        return {}
    estimated = _interior_values(chem["amount"].sel(element=elements), inner)
    out = {}
    for est, el in zip(estimated, elements):
        true = truth["density"].sel(element=el).values[inner]
        out[str(el)] = float(np.nanmean(est) / true.mean() - 1.0)
    return out


def _interior_values(amount: xr.DataArray, inner: np.ndarray) -> np.ndarray:
    """The values of ``amount`` (element, z, y, x) at the ``inner`` voxels: (element, n)
    in the order ``values[inner]`` gives, read slab by slab of its z chunks.

    A quantify chunk holds every element: read one element at a time, each chunk was
    read (and decompressed) once per element (demo: 32 reads of ~4 MB instead of 8).
    Memory: one slab and the selected voxels.
    """
    amount = amount.transpose("element", "z", "y", "x")
    data = amount.data
    z_chunks = data.chunks[1] if hasattr(data, "chunks") else (amount.sizes["z"],)
    bounds = np.cumsum((0, *z_chunks))
    parts = [np.asarray(amount[:, z0:z1].values)[:, inner[z0:z1]]
             for z0, z1 in zip(bounds[:-1], bounds[1:])]
    return np.concatenate(parts, axis=1)


#: The truth variables the 3D errors compare in the reconstruction's frame (mask,
#: classes, amounts over the interior, 3D valence); the others are not shifted.
_FRAME_VARIABLES = ("particle", "occupancy", "depth", "void", "crack", "composition_class",
                    "density", "valence")


#: Voxels of the largest truth the errors are computed for. They hold the truth's
#: variables and the compared volumes whole (~100 B per voxel with the shifted copy:
#: ~6.5 GiB at this cap, 406^3); a simulated run above it gets a note instead. Truth
#: exists only for simulated runs, whose simulator holds the volumes whole as well.
TRUTH_MAX_VOXELS = 2**26


def truth_errors(store) -> dict:
    """Errors of a finished run against the simulator's ground truth in ``store``.

    Volumes are compared with the truth shifted into the registered frame
    (:func:`~spectrotomo.pipeline._truth_frame.truth_in_frame`, sub-voxel along z;
    ``truth_frame_shift_z_vox`` says by how much). Whole volumes: a truth of more
    than :data:`TRUTH_MAX_VOXELS` voxels gives ``{"skipped": reason}``.
    """
    groups = io.list_groups(store)
    if "truth" not in groups:
        return {}
    truth = io.read_group(store, "truth")  # only what the errors use (not state_fraction)
    voxels = int(np.prod([truth.sizes[d] for d in ("z", "y", "x")]))
    if voxels > TRUTH_MAX_VOXELS:
        return {"skipped": f"truth of {voxels} voxels > TRUTH_MAX_VOXELS = {TRUTH_MAX_VOXELS}: "
                           "the errors against it hold whole volumes and are not computed"}
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
