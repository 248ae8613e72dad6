"""Errors of a finished simulated run against the simulator's ground truth (the
report's ``errors_vs_truth``): mask, classes, amounts, electron density, 2D and 3D
valence, registration, in the frame the volume was reconstructed in.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .. import io
from ._figures import class_counts, class_fractions_of_counts
from ._truth_frame import registered_z_shift
from ._truth_slabs import TruthSlabs
from ._valence3d_report import truth_interior, valence3d_errors

__all__ = ["truth_errors", "TRUTH_MAX_VOXELS"]


#: The truth's 3-D variables the errors compare in the reconstruction's frame (mask,
#: classes, the interior), read together; of its (element, z, y, x) variables only the
#: elements compared are read, one after the other (:func:`_slab_sums`).
_FRAME_VARIABLES = ("particle", "occupancy", "depth", "void", "crack", "composition_class")
#: Truth voxels read per slab. Per voxel: the frame variables read and shifted (~24 B),
#: one element's density read, blended in float64 and shifted (~28 B), the estimates of
#: the slab (~20 B): ~75 MiB a slab. truth_errors alone on simulate:large / demo (seed
#: 0): peak +200 / +140 MiB at 2^21, +140 / +100 at 2^20 for the same CPU (5.3 s at
#: 256^3, though a 64-plane truth chunk is decoded for each of its 4 slabs), +125 / +70
#: at 2^19 for +30 % CPU.
SLAB_VOXELS = 2**20


#: Voxels of the largest truth the errors are computed for. The float fields are read
#: and compared by z slabs of ~:data:`SLAB_VOXELS` (the solid's erosion too, with a
#: plane of halo); two boolean volumes (the estimated mask, the true particle) are held
#: whole and the particle's holes filled in its bounding box: ~2 B per voxel and ~3 B
#: per voxel of the box, ~0.2 GiB at this cap (406^3). A simulated run above it gets a
#: note instead.
TRUTH_MAX_VOXELS = 2**26


def truth_errors(store) -> dict:
    """Errors of a finished run against the simulator's ground truth in ``store``.

    Volumes are compared with the truth shifted into the registered frame
    (:func:`~spectrotomo.pipeline._truth_frame.truth_in_frame`, sub-voxel along z;
    ``truth_frame_shift_z_vox`` says by how much), slab by slab along z (sums and
    counts; the particle's hole filling on the whole boolean volume, in its bounding
    box). A truth of more than :data:`TRUTH_MAX_VOXELS` voxels gives
    ``{"skipped": reason}``.
    """
    groups = io.list_groups(store)
    if "truth" not in groups:
        return {}
    truth = io.read_group(store, "truth", chunks=None)  # lazily indexed, read by slabs
    voxels = int(np.prod([truth.sizes[d] for d in ("z", "y", "x")]))
    if voxels > TRUTH_MAX_VOXELS:
        return {"skipped": f"truth of {voxels} voxels > TRUTH_MAX_VOXELS = {TRUTH_MAX_VOXELS}: "
                           "the errors against it hold whole boolean volumes and are not "
                           "computed"}
    raw = io.read_group(store, "raw")
    errors = {}
    # the 3D comparisons (mask, amounts, classes, 3D valence) in the frame the volume
    # was reconstructed in; the 2D valence scan and the phase runs keep the truth's own
    dz = None
    if "od" in groups:
        od = io.read_group(store, "od")
        dz = registered_z_shift(raw, od)
        errors["truth_frame_shift_z_vox"] = float(dz)
        errors["center_error_px"] = abs(float(od.attrs["center"]) - float(raw.attrs["true_center"]))
        if "true_shift" in raw and raw["true_shift"].dims[0] == "angle":
            est = od["jitter"].values - od["jitter"].values.mean(0)
            true = raw["true_shift"].values - raw["true_shift"].values.mean(0)
            errors["jitter_rms_error_px"] = float(np.sqrt(((est - true) ** 2).sum(1).mean()))
        if "energy_scale" in od and "true_scale" in raw:
            errors["magnification_error_pct"] = _magnification_error(od, raw)
    sums = _slab_sums(store, groups, truth, dz)
    if "density" in groups and "electron_density" in truth:
        errors.update(_density_errors(sums["density"]))
    if "classes" in sums:
        errors.update(_class_errors(*sums["classes"]))
    if "segmentation" in groups:
        errors.update(_mask_errors(sums["mask"], xr.Dataset({"particle": (
            ("z", "y", "x"), sums["particle"])})))
    if "amounts" in sums:
        errors["amount_relative_bias"] = _amount_bias(*sums["amounts"])
    if "valence" in groups:
        errors.update(_energy_offset_errors(io.read_group(store, "valence")))
        val = io.read_group(store, "valence")["valence"].sel(element="Mn").values
        amount, weighted = sums["projected_mn"]
        # projected (thickness-weighted) truth: the 2D scan sees sum over y at 0 deg
        true2d = np.where(amount > 0, weighted / np.maximum(amount, 1e-12), np.nan)
        thick = amount > 0.3 * np.nanmax(amount)
        ok = thick & np.isfinite(val)
        errors["mn_valence_mae"] = float(np.abs(val[ok] - true2d[ok]).mean()) if ok.any() else None
    if "valence3d" in groups:
        errors.update(valence3d_errors(store, *sums["valence3d"]))
    return errors


def _slabs(nz: int, plane: int) -> list[tuple[int, int]]:
    step = max(1, SLAB_VOXELS // max(plane, 1))
    return [(z, min(nz, z + step)) for z in range(0, nz, step)]


def _read(ds: xr.Dataset, names, z0: int, z1: int) -> xr.Dataset:
    """Variables ``names`` (those present) of ``ds`` on z planes ``z0:z1``, in memory."""
    return ds[[n for n in names if n in ds]].isel(z=slice(z0, z1)).load()


def _solid_slab(truth: xr.Dataset, z0: int, z1: int) -> np.ndarray:
    """The solid (particle, no pore) eroded by one voxel on planes ``z0:z1`` (a plane of
    halo each side: the whole volume's erosion)."""
    from scipy import ndimage

    lo, hi = max(0, z0 - 1), min(truth.sizes["z"], z1 + 1)
    part = _read(truth, ("particle", "void"), lo, hi)
    solid = ndimage.binary_erosion(part["particle"].values & ~part["void"].values)
    return solid[z0 - lo:z1 - lo]


def _slab_sums(store, groups, truth: xr.Dataset, dz: float | None) -> dict:
    """Everything the errors compare, accumulated over z slabs: counts, sums and the
    whole boolean volumes (estimated mask, true particle in the frame)."""
    nz, ny, nx = (truth.sizes[d] for d in ("z", "y", "x"))
    seg = io.read_group(store, "segmentation", chunks=None) if "segmentation" in groups else None
    chem = io.read_group(store, "chemistry", chunks=None) if "chemistry" in groups else None
    dens = (io.read_group(store, "density", chunks=None) if "density" in groups
            and "electron_density" in truth else None)
    v3d = io.read_group(store, "valence3d", chunks=None) if "valence3d" in groups else None
    v3d = v3d if v3d is not None and "Mn" in v3d["element"].values else None
    els = ([str(e) for e in chem["element"].values if e in truth["element"].values]
           if chem is not None else [])
    chem_index = ({str(e): i for i, e in enumerate(chem["element"].values)}
                  if chem is not None else {})
    out = {"mask": np.zeros((nz, ny, nx), bool), "particle": np.zeros((nz, ny, nx), bool)}
    counts = np.zeros((2, 5), np.int64)
    agree = np.zeros(2, np.int64)
    amounts = np.zeros((len(els), 4))  # est sum, est finite count, true sum, interior count
    density = np.zeros(4)  # est sum, true sum, squared difference sum, solid count
    projected = np.zeros((2, nz, nx))
    valence3d = np.zeros(3)  # |est - true| sum, trusted count, interior count
    valence2d = "valence" in groups  # the 2D scan: Mn in the truth's own frame
    slabs = TruthSlabs(truth, dz, _slabs(nz, ny * nx))
    for z0, z1 in slabs:
        frame, _ = slabs.read(dict.fromkeys(_FRAME_VARIABLES))
        out["particle"][z0:z1] = frame["particle"].values
        inner = truth_interior(frame)
        if seg is not None:
            out["mask"][z0:z1] = np.asarray(seg["mask"][z0:z1].values, bool)
        if seg is not None and chem is not None:
            est_cls = np.asarray(seg["composition_class"][z0:z1].values)
            true_cls = frame["composition_class"].values
            counts += [class_counts(est_cls), class_counts(true_cls)]
            both = (est_cls > 0) & (true_cls > 0)
            agree += [int((est_cls[both] == true_cls[both]).sum()), int(both.sum())]
        del frame
        n_mn = None  # the Mn density as stored (2D scan)
        if els:  # every element's slab in one read: a store chunk holds all of them
            slab = np.asarray(chem["amount"][:, z0:z1].values)
            for i, el in enumerate(els):  # the true densities one at a time
                true, own = slabs.read({"density": [el]}, unshifted=valence2d and el == "Mn")
                n_mn = own["density_Mn"].values if own is not None else n_mn
                est, true = slab[chem_index[el]][inner], true[f"density_{el}"].values[inner]
                amounts[i] += [np.nansum(est, dtype=np.float64), np.isfinite(est).sum(),
                               true.sum(dtype=np.float64), true.size]
            del slab
        if valence2d and n_mn is None:
            n_mn = slabs.read({"density": ["Mn"]}, shifted=False, unshifted=True)[1][
                "density_Mn"].values
        if dens is not None:
            solid = _solid_slab(truth, z0, z1)
            est = np.asarray(dens["electron_density"][0, z0:z1].values)[solid]
            true = np.asarray(truth["electron_density"][z0:z1].values)[solid]
            density += [est.sum(dtype=np.float64), true.sum(dtype=np.float64),
                        ((est.astype(np.float64) - true) ** 2).sum(), true.size]
        if valence2d or v3d is not None:
            true, own = slabs.read({"valence": ["Mn"]}, shifted=v3d is not None,
                                   unshifted=valence2d)
        if valence2d:  # the 2D scan sees the truth's own frame, summed over y
            projected[:, z0:z1] = [n_mn.sum(axis=1),
                                   (n_mn * own["valence_Mn"].values).sum(axis=1)]
        if v3d is not None:
            est = np.asarray(v3d["valence"].sel(element="Mn")[z0:z1].values)
            ok = inner & np.asarray(v3d["quality_mask"].sel(element="Mn")[z0:z1].values,
                                    bool) & np.isfinite(est)
            true = true["valence_Mn"].values
            valence3d += [np.abs(est[ok] - true[ok]).sum(dtype=np.float64), ok.sum(),
                          inner.sum()]
        del inner
    out.update({"density": density, "projected_mn": projected, "valence3d": valence3d})
    if chem is not None:
        out["amounts"] = (els, amounts)
    if seg is not None and chem is not None:
        out["classes"] = (counts, agree)
    return out


def _class_errors(counts: np.ndarray, agree: np.ndarray) -> dict:
    """Class-fraction errors of the estimated (``counts[0]``) vs the true (``counts[1]``)
    :func:`class_counts`, and the per-voxel agreement where both are classified."""
    est, true = class_fractions_of_counts(counts[0]), class_fractions_of_counts(counts[1])
    diff = [abs(est[k] - true[k]) for k in est]
    # max: the worst single published proportion; sum: twice the total-variation
    # distance (every misassigned percentage point counted where it went and came from)
    return {"class_fraction_error_pp": max(diff) * 100,
            "class_fraction_error_sum_pp": sum(diff) * 100,
            # fractions can match by cancellation; per-voxel agreement says how local
            "class_voxel_agreement": float(agree[0] / agree[1]) if agree[1] else None,
            "class_fractions": est, "class_fractions_truth": true}


def _amount_bias(elements, sums: np.ndarray) -> dict[str, float]:
    """Mean estimated / true amount - 1 per element, over the fully solid interior
    (> 3 voxels deep, no pores): the absolute calibration of the element maps
    (limited-angle FBP under-recovers interiors; ratios are unaffected). ``sums``
    (element, 4): estimated sum and finite count, true sum and interior count."""
    return {el: float((est / n_est) / (true / n) - 1.0)
            for el, (est, n_est, true, n) in zip(elements, sums) if n > 0}


def _mask_errors(mask: np.ndarray, truth: xr.Dataset) -> dict:
    """Particle-mask IoU against the true particle (holes filled, as the mask is) and
    the extent error per axis (z, y, x) in voxels: a limited-angle reconstruction
    stretches the particle along the missing-wedge direction (y).

    The holes are filled in the particle's bounding box with a voxel of margin (half
    the volume on the presets): exactly the whole volume's filling (the margin is
    background joined to the volume's border outside the box, as the box's border is
    to its outside), at half its memory and CPU."""
    from scipy import ndimage

    est = np.asarray(mask, dtype=bool)
    particle = np.asarray(truth["particle"].values, dtype=bool)
    extent, box = {}, []
    for axis, name in enumerate(("z", "y", "x")):
        other = tuple(a for a in range(3) if a != axis)
        pe, pt = np.flatnonzero(est.any(axis=other)), np.flatnonzero(particle.any(axis=other))
        extent[name] = int((pe[-1] - pe[0]) - (pt[-1] - pt[0])) if pe.size and pt.size else None
        box.append(slice(max(0, pt[0] - 1), pt[-1] + 2) if pt.size else slice(0, 0))
    true = ndimage.binary_fill_holes(particle[tuple(box)])  # filling keeps the extents
    both = int(np.count_nonzero(est[tuple(box)] & true))
    union = int(np.count_nonzero(est)) + int(np.count_nonzero(true)) - both
    return {"mask_iou": float(both / union) if union else None,
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


def _density_errors(sums: np.ndarray) -> dict:
    """Relative error of the electron density inside the solid (eroded by one voxel);
    ``sums``: estimated sum, true sum, squared-difference sum, solid voxels."""
    est, true, squares, n = sums
    mean_true = true / n
    return {"electron_density_mean_rel_error": abs(est / n - mean_true) / mean_true,
            "electron_density_rms_rel_error": float(np.sqrt(squares / n)) / mean_true}
