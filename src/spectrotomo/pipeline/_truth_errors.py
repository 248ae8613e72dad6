"""Errors of a finished simulated run against the simulator's ground truth (the
report's ``errors_vs_truth``): mask, classes, amounts, electron density, 2D and 3D
valence, registration, in the frame the volume was reconstructed in.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .. import io
from ._figures import class_counts, class_fractions_of_counts
from ._truth_frame import registered_z_shift, truth_in_frame
from ._valence3d_report import truth_interior, valence3d_errors

__all__ = ["truth_errors", "TRUTH_MAX_VOXELS"]


#: The truth's 3-D variables the errors compare in the reconstruction's frame (mask,
#: classes, amounts over the interior); of its (element, z, y, x) variables only the
#: elements compared are read (:func:`_slab_sums`), one 3-D variable ``<name>_<element>``
#: each: the shift blends one volume at a time.
_FRAME_VARIABLES = ("particle", "occupancy", "depth", "void", "crack", "composition_class")
#: Truth voxels read per slab. Per voxel: the frame variables read and their shifted
#: copies (~32 B each with 4 elements' densities), the estimates of the slab (~20 B) and
#: one volume's float64 blend (16 B): ~0.2 GiB a slab.
SLAB_VOXELS = 2**21


#: Voxels of the largest truth the errors are computed for. The float fields are read
#: and compared by z slabs of ~:data:`SLAB_VOXELS`; three boolean volumes (the estimated
#: mask, the true particle with its holes filled, the solid) are held whole: ~4 B per
#: voxel, 0.25 GiB at this cap (406^3). A simulated run above it gets a note instead.
TRUTH_MAX_VOXELS = 2**26


def truth_errors(store) -> dict:
    """Errors of a finished run against the simulator's ground truth in ``store``.

    Volumes are compared with the truth shifted into the registered frame
    (:func:`~spectrotomo.pipeline._truth_frame.truth_in_frame`, sub-voxel along z;
    ``truth_frame_shift_z_vox`` says by how much), slab by slab along z (sums and
    counts; the particle's hole filling and the solid's erosion on whole boolean
    volumes). A truth of more than :data:`TRUTH_MAX_VOXELS` voxels gives
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
    """Variables ``names`` (those present) of ``ds`` on z planes ``z0:z1``, in memory:
    a name maps to None (the variable) or to elements, each read as the 3-D variable
    ``<name>_<element>``: one read of the elements' range (a store chunk holds several;
    a list of elements went through orthogonal indexing, 2.5x the CPU of a range)."""
    names = names if isinstance(names, dict) else dict.fromkeys(names)
    out = {}
    for name, elements in names.items():
        if name not in ds:
            continue
        var = ds[name].isel(z=slice(z0, z1))
        if elements is None:
            out[name] = var.load()
            continue
        index = [list(var["element"].values).index(el) for el in elements]
        block = var.isel(element=slice(min(index), max(index) + 1)).load()
        out.update({f"{name}_{el}": block.isel(element=i - min(index), drop=True)
                    for el, i in zip(elements, index)})
    return xr.Dataset(out)


def _keys(names: dict) -> list[str]:
    """The 3-D variables :func:`_read` gives for ``names``."""
    return [name if elements is None else f"{name}_{el}"
            for name, elements in names.items() for el in (elements or [None])]


def _source_planes(z0: int, z1: int, dz: float, nz: int) -> tuple[int, int]:
    """The planes ``lo:hi`` that the shift by ``dz`` of planes ``z0:z1`` reads: output
    plane k blends source planes floor(k - dz) and the next, clipped to the volume
    (z_blend repeats the edge planes, as a part that starts there does): one plane
    below the slab for 0 < dz < 1, one above for -1 < dz < 0."""
    lo = max(0, int(np.floor(z0 - dz)))
    hi = min(nz, int(np.floor(z1 - 1 - dz)) + 2)
    return min(lo, z0), max(hi, z1)  # the slab's own planes always (a shift > a slab)


def _frame_slabs(truth: xr.Dataset, dz: float | None, names: dict, own: dict):
    """``(z0, z1, frame, unshifted)`` for each z slab of the truth (:func:`_slabs`):
    ``frame`` the variables ``names`` (see :func:`_read`) shifted by ``dz`` into the
    reconstruction's frame, ``unshifted`` those of ``own`` as stored (the 2D scan's
    frame), both on planes ``z0:z1``.

    Each truth plane is read once: the planes a slab's shift reads beyond it are
    carried over from the slab before (the slabs run up for dz > 0, down for dz < 0).
    A store chunk of the truth spans several slabs (64 planes at 256^3 vs slabs of 32)
    and is decoded once per slab that reads it: reading those extra planes afresh
    decoded the chunk beyond as well.
    """
    nz = truth.sizes["z"]
    every = dict(names)
    for name, elements in own.items():
        every[name] = None if elements is None else sorted(set(every.get(name) or [])
                                                           | set(elements))
    slabs = _slabs(nz, truth.sizes["y"] * truth.sizes["x"])
    slabs = [(z0, z1, *(_source_planes(z0, z1, dz, nz) if dz else (z0, z1)))
             for z0, z1 in (slabs[::-1] if dz and dz < 0 else slabs)]
    held = None  # (lo, hi, planes lo:hi read for the slab before and read by this one)
    for k, (z0, z1, lo, hi) in enumerate(slabs):
        part = _read_after(truth, every, lo, hi, held).assign_attrs(truth.attrs)
        held = None
        if k + 1 < len(slabs):  # a copy of the planes the next slab reads: the rest goes
            a, b = max(lo, slabs[k + 1][2]), min(hi, slabs[k + 1][3])
            held = (a, b, part.isel(z=slice(a - lo, b - lo)).copy(deep=True)) if a < b else None
        mine = part.isel(z=slice(z0 - lo, z1 - lo))
        unshifted = mine[[key for key in _keys(own) if key in part]]
        shifted = [key for key in _keys(names) if key in part]
        if dz:  # the shifted copies, and of the planes read only the unshifted ones kept
            frame = truth_in_frame(part, dz, variables=shifted).isel(z=slice(z0 - lo, z1 - lo))
            unshifted = unshifted.copy(deep=True)
        else:
            frame = mine[shifted]
        del part, mine
        yield z0, z1, frame, unshifted
        del frame, unshifted


def _read_after(truth: xr.Dataset, names: dict, lo: int, hi: int, held) -> xr.Dataset:
    """:func:`_read` of planes ``lo:hi``: those that ``held`` (``(lo, hi, part)``, planes
    kept from the slab before) holds taken from it, the others read."""
    if held is not None:
        plo, phi, part = held
        a, b = max(lo, plo), min(hi, phi)
        if a < b and (a == lo or b == hi):  # the planes not held lie on one side
            kept = part.isel(z=slice(a - plo, b - plo))
            if (a, b) == (lo, hi):
                return kept
            new = _read(truth, names, b, hi) if a == lo else _read(truth, names, lo, a)
            return xr.concat([kept, new] if a == lo else [new, kept], dim="z")
    return _read(truth, names, lo, hi)


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
    # of the truth's (element, ...) variables only the elements compared: the amounts'
    # densities (and valence) in the frame, the 2D scan's Mn in the truth's own frame
    names = dict.fromkeys(_FRAME_VARIABLES)
    if els:
        names["density"] = els
    if v3d is not None:
        names["valence"] = ["Mn"]
    own = {"density": ["Mn"], "valence": ["Mn"]} if "valence" in groups else {}
    for z0, z1, frame, unshifted in _frame_slabs(truth, dz, names, own):
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
        if els:  # every element's slab in one read: a store chunk holds all of them
            slab = np.asarray(chem["amount"][:, z0:z1].values)
            for i, el in enumerate(els):
                est = slab[chem_index[el]][inner]
                true = frame[f"density_{el}"].values[inner]
                amounts[i] += [np.nansum(est, dtype=np.float64), np.isfinite(est).sum(),
                               true.sum(dtype=np.float64), true.size]
            del slab
        if dens is not None:
            solid = _solid_slab(truth, z0, z1)
            est = np.asarray(dens["electron_density"][0, z0:z1].values)[solid]
            true = np.asarray(truth["electron_density"][z0:z1].values)[solid]
            density += [est.sum(dtype=np.float64), true.sum(dtype=np.float64),
                        ((est.astype(np.float64) - true) ** 2).sum(), true.size]
        if "valence" in groups:  # the 2D scan sees the truth's own frame, summed over y
            n_mn = unshifted["density_Mn"].values
            projected[:, z0:z1] = [n_mn.sum(axis=1),
                                   (n_mn * unshifted["valence_Mn"].values).sum(axis=1)]
        if v3d is not None:
            est = np.asarray(v3d["valence"].sel(element="Mn")[z0:z1].values)
            ok = inner & np.asarray(v3d["quality_mask"].sel(element="Mn")[z0:z1].values,
                                    bool) & np.isfinite(est)
            true = frame["valence_Mn"].values
            valence3d += [np.abs(est[ok] - true[ok]).sum(dtype=np.float64), ok.sum(),
                          inner.sum()]
        del frame, unshifted, inner
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


def _density_errors(sums: np.ndarray) -> dict:
    """Relative error of the electron density inside the solid (eroded by one voxel);
    ``sums``: estimated sum, true sum, squared-difference sum, solid voxels."""
    est, true, squares, n = sums
    mean_true = true / n
    return {"electron_density_mean_rel_error": abs(est / n - mean_true) / mean_true,
            "electron_density_rms_rel_error": float(np.sqrt(squares / n)) / mean_true}
