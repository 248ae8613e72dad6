"""Effective valence and per-element oxidation-state maps from spectral volumes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .._backend import array_module
from .._model import ValidationError, add_provenance, spatial_map
from .._physics import EDGE_WINDOWS_EV
from ._calibration import fit_energy_offset, shifted_references
from ._lcf import lcf
from ._references import resample

__all__ = ["DEFAULT_WINDOWS", "MIN_XANES_ENERGIES", "effective_valence", "valence_maps",
           "xanes_elements"]

#: Energy windows (eV) of the soft X-ray edges: O K, Mn L3, Co L3, Ni L3.
DEFAULT_WINDOWS = dict(EDGE_WINDOWS_EV)
#: Energies inside one edge window that make a scan a XANES scan (a dual-energy
#: series has 2 per edge; an LCF of 3 states + a 3-term background needs >= 7 to
#: leave any residual).
MIN_XANES_ENERGIES = 8


def window_counts(energies) -> dict[str, int]:
    """How many of ``energies`` (eV) lie inside each element's :data:`DEFAULT_WINDOWS`
    edge window."""
    e = np.asarray(energies, dtype=float)
    return {el: int(((e >= lo) & (e <= hi)).sum()) for el, (lo, hi) in DEFAULT_WINDOWS.items()}


def xanes_elements(energies, *, min_energies: int = MIN_XANES_ENERGIES) -> list[str]:
    """Elements with at least ``min_energies`` of ``energies`` (eV) inside their
    :data:`DEFAULT_WINDOWS` edge window: those a XANES scan covers (empty for a
    dual-energy series)."""
    return [el for el, n in window_counts(energies).items() if n >= min_energies]


def effective_valence(fractions, valences):
    """``sum_i f_i v_i / sum_i f_i`` along the last axis.

    Parameters
    ----------
    fractions : array, shape (..., k)
        Fractions or amounts (any unit) of the k states, numpy or cupy.
    valences : sequence of float, length k
        Formal valence of each state (elementary charges, e.g. 2, 3, 4).

    Returns
    -------
    array, shape (...)
        NaN where the fractions sum to <= 0 or are not finite.
    """
    xp = array_module(fractions)
    v = xp.asarray(np.asarray(valences, dtype=float), dtype=fractions.dtype)
    if fractions.shape[-1] != v.shape[0]:
        raise ValidationError(f"effective_valence: fractions' last axis ({fractions.shape[-1]}) "
                              f"must match len(valences) ({v.shape[0]})")
    total = fractions.sum(axis=-1)
    ok = xp.isfinite(total) & (total > 0)
    return xp.where(ok, (fractions @ v) / xp.where(ok, total, 1), xp.nan)


def _window_energies(energy, window, element):
    sel = (energy >= window[0]) & (energy <= window[1])
    if sel.sum() < 2:
        raise ValidationError(f"valence_maps: fewer than 2 measured energies inside the {element} "
                              f"window {window} eV; got {energy.tolist()[:10]}...")
    return sel


def valence_maps(spectra, references, *, elements=None, windows=None, normalized: bool = False,
                 background: int = 2, min_amount: float = 0.0, r_factor_max: float = 0.05,
                 dtype=None, nonneg: bool = True, sum_to_one: bool | None = None,
                 energy_offset=None, offset_search_ev: float = 1.5):
    """Oxidation-state fractions and effective valence of each element per voxel.

    For every element the measured energies inside its window are fitted with
    that element's references (:func:`lcf`, exact, all voxels at once).

    * ``normalized=False`` (default): ``spectra`` is linear attenuation (1/nm)
      and ``references`` cross sections per atom (nm^2); fitted with
      ``nonneg`` plus an unconstrained polynomial ``background`` (the other
      elements' smooth absorption), so the weights are atoms/nm^3 per state
      and their sum is the element's amount (``sum_to_one`` must stay off).
    * ``normalized=True``: edge-step normalized spectra and references; fitted
      with ``nonneg`` and ``sum_to_one`` (weights are fractions; with
      ``sum_to_one=False`` their sum is free and measures the normalization).

    Parameters
    ----------
    spectra : xarray.DataArray, dims (energy, z, y, x) or (energy, y, x)
        numpy, cupy or dask backed; energy in eV.
    references : xarray.DataArray, dims (state, energy)
        With coords ``state_element`` and ``state_valence`` (e.g.
        :func:`builtin_references`); resampled onto the measured energies.
    elements : sequence of str, optional
        Default: every element of ``references`` with a window.
    windows : mapping element -> (lo_ev, hi_ev), optional
        Default :data:`DEFAULT_WINDOWS`.
    background : int
        Polynomial order of the background (absolute mode only).
    min_amount : float
        Absolute mode: voxels whose fitted amount (atoms/nm^3) is <= this
        are masked (NaN valence).
    r_factor_max : float
        Quality threshold (see :class:`LCFResult`).
    nonneg : bool
        Constrain every state's weight to be >= 0.
    sum_to_one : bool, optional
        Constrain each element's weights to sum to 1; default ``normalized``.
        Refused in absolute mode, whose weights are amounts, not fractions.
    energy_offset : None, float, mapping element -> float, or "fit"
        Energy calibration of the references against the scan, eV: each
        element's references are moved up by it (:func:`shifted_references`;
        their grid must cover the window minus the offset). ``"fit"``: fitted
        per element window (:func:`fit_energy_offset`, +-``offset_search_ev``,
        this call's constraints; not for dask-backed spectra). None: 0.

    Returns
    -------
    xarray.Dataset
        ``valence`` (element, ...) in elementary charges, ``fractions``
        (state, ...) (normalized per element), ``amount`` (element, ...)
        atoms/nm^3 (absolute mode), ``residual`` and ``r_factor`` (element, ...),
        ``quality_mask`` (element, ...); attrs ``n_masked`` per element,
        ``energy_offset_ev`` (list, one per element, eV) and
        ``energy_offset_fitted`` (1 when fitted).
    """
    # over 80 lines only by its docstring; the per-element work is _element_offset,
    # _fit_element and _assemble
    sum_to_one = normalized if sum_to_one is None else bool(sum_to_one)
    if sum_to_one and not normalized:
        raise ValidationError("valence_maps: sum_to_one=True needs normalized=True (edge-step "
                              "normalized spectra and references); absolute-mode weights are "
                              "amounts (atoms/nm^3), not fractions")
    for c in ("state_element", "state_valence"):
        if c not in references.coords:
            raise ValidationError(f"valence_maps: references need coord {c!r}")
    windows = {**DEFAULT_WINDOWS, **dict(windows or {})}
    ref_elements = list(dict.fromkeys(str(e) for e in references["state_element"].values))
    elements = [e for e in ref_elements if e in windows] if elements is None else list(elements)
    spatial = [d for d in spectra.dims if d != "energy"]
    energy = np.asarray(spectra["energy"].values, dtype=float)
    data = spectra.transpose(*spatial, "energy").data
    fit = {"nonneg": nonneg, "sum_to_one": sum_to_one, "r_factor_max": r_factor_max,
           "background": None if normalized else background, "dtype": dtype}
    per_el, offsets = {}, {}
    for el in elements:
        if el not in ref_elements:
            raise ValidationError(f"valence_maps: no references for element {el!r}")
        sel = _window_energies(energy, windows[el], el)
        refs = references.isel(state=np.flatnonzero(references["state_element"].values == el))
        window = data[..., np.flatnonzero(sel)]
        offsets[el] = _element_offset(energy_offset, el, window, energy[sel], refs, fit,
                                      offset_search_ev)
        per_el[el] = _fit_element(window, energy[sel], refs, offsets[el], fit, normalized,
                                  min_amount)
    ds = _assemble(per_el, elements, references, spectra.attrs, normalized)
    ds.attrs.update({"energy_offset_ev": [float(offsets[e]) for e in elements],
                     "energy_offset_fitted": int(isinstance(energy_offset, str))})
    return add_provenance(ds, "spectra.valence_maps", elements=elements,
                          windows={e: list(windows[e]) for e in elements},
                          normalized=normalized, background=background,
                          r_factor_max=r_factor_max, nonneg=nonneg, sum_to_one=sum_to_one,
                          energy_offset=(energy_offset if isinstance(energy_offset, str)
                                         else [float(offsets[e]) for e in elements]))


def _element_offset(energy_offset, element, window, energies, refs, fit, search_ev) -> float:
    """The energy offset (eV) of one element's references: given, or fitted."""
    if energy_offset is None:
        return 0.0
    if isinstance(energy_offset, str):
        if energy_offset != "fit":
            raise ValidationError(f"valence_maps: energy_offset must be None, a number (eV), a "
                                  f"mapping element -> eV or \"fit\"; got {energy_offset!r}")
        if type(window).__module__.split(".")[0] == "dask":
            window = window.compute()
        return fit_energy_offset(window, energies, refs, search_ev=search_ev,
                                 nonneg=fit["nonneg"], sum_to_one=fit["sum_to_one"],
                                 background=fit["background"], dtype=fit["dtype"]).offset_ev
    if isinstance(energy_offset, Mapping):
        return float(energy_offset.get(element, 0.0))
    return float(energy_offset)


def _fit_element(window, energies, refs, offset, fit, normalized, min_amount):
    """LCF of one element's window: (valence, total weight, LCFResult, state names)."""
    refs = shifted_references(refs, energies, offset) if offset else resample(refs, energies)
    res = lcf(window, refs.values, names=[str(s) for s in refs["state"].values], **fit)
    xp = array_module(res.fractions)
    val = effective_valence(res.fractions, refs["state_valence"].values)
    total = res.fractions.sum(axis=-1)
    keep = res.quality_mask if normalized else res.quality_mask & (total > min_amount)
    return {"valence": xp.where(keep, val, xp.nan), "total": total, "lcf": res,
            "n_masked": int((~keep).sum()) if hasattr(keep, "sum") else -1,
            "states": [str(s) for s in refs["state"].values]}


def _assemble(per_el, elements, references, attrs, normalized):
    """The per-element fits as one Dataset of maps."""
    import xarray as xr

    px = attrs["pixel_size"]
    xp = array_module(per_el[elements[0]]["total"])
    frac_maps = []
    for el in elements:
        f, total = per_el[el]["lcf"].fractions, per_el[el]["total"]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac_maps.append(xp.moveaxis(f / xp.where(total > 0, total, xp.nan)[..., None], -1, 0))
    lead = {"element": elements}

    def stacked(get, name, units):
        return spatial_map(xp.stack([get(per_el[e]) for e in elements]), voxel_size=px,
                           units=units, name=name, leading=lead)

    ds = xr.Dataset({
        "valence": stacked(lambda t: t["valence"], "valence", "e"),
        "fractions": spatial_map(xp.concatenate(frac_maps), voxel_size=px, units="1",
                                 name="fractions",
                                 leading={"state": [s for e in elements
                                                    for s in per_el[e]["states"]]}),
        "residual": stacked(lambda t: t["lcf"].residual, "residual", attrs.get("units", "")),
        "r_factor": stacked(lambda t: t["lcf"].r_factor, "r_factor", "1"),
        "quality_mask": stacked(lambda t: t["lcf"].quality_mask, "quality_mask", "1"),
    })
    if not normalized:
        ds["amount"] = stacked(lambda t: t["total"], "amount", "1/nm^3")
    ds = ds.assign_coords(state_element=("state", [s for e in elements for s in
                                                   references["state_element"].values[
                                                       references["state_element"].values == e]]))
    ds.attrs.update({"pixel_size": px, "pixel_size_units": "nm",
                     "n_masked": repr({e: per_el[e]["n_masked"] for e in elements}),
                     "normalized": int(normalized)})
    return ds
