"""Effective valence and per-element oxidation-state maps from spectral volumes."""

from __future__ import annotations

import numpy as np

from .._backend import array_module
from .._model import ValidationError
from .._physics import EDGE_WINDOWS_EV

__all__ = ["DEFAULT_WINDOWS", "effective_valence", "valence_maps"]

#: Energy windows (eV) of the soft X-ray edges: O K, Mn L3, Co L3, Ni L3.
DEFAULT_WINDOWS = dict(EDGE_WINDOWS_EV)


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


def valence_maps(spectra, references, *, elements=None, windows=None, normalised: bool = False,
                 background: int = 2, min_amount: float = 0.0, r_factor_max: float = 0.05,
                 dtype=None, nonneg: bool = True, sum_to_one: bool | None = None):
    """Oxidation-state fractions and effective valence of each element per voxel.

    For every element the measured energies inside its window are fitted with
    that element's references (:func:`lcf`, exact, all voxels at once).

    * ``normalised=False`` (default): ``spectra`` is linear attenuation (1/nm)
      and ``references`` cross sections per atom (nm^2); fitted with
      ``nonneg`` plus an unconstrained polynomial ``background`` (the other
      elements' smooth absorption), so the weights are atoms/nm^3 per state
      and their sum is the element's amount (``sum_to_one`` must stay off).
    * ``normalised=True``: edge-step normalised spectra and references; fitted
      with ``nonneg`` and ``sum_to_one`` (weights are fractions; with
      ``sum_to_one=False`` their sum is free and measures the normalisation).

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
        Constrain each element's weights to sum to 1; default ``normalised``.
        Refused in absolute mode, whose weights are amounts, not fractions.

    Returns
    -------
    xarray.Dataset
        ``valence`` (element, ...) in elementary charges, ``fractions``
        (state, ...) (normalised per element), ``amount`` (element, ...)
        atoms/nm^3 (absolute mode), ``residual`` and ``r_factor`` (element, ...),
        ``quality_mask`` (element, ...); attrs ``n_masked`` per element.
    """
    import xarray as xr

    from .._model import add_provenance, spatial_map
    from ._lcf import lcf
    from ._references import resample

    sum_to_one = normalised if sum_to_one is None else bool(sum_to_one)
    if sum_to_one and not normalised:
        raise ValidationError("valence_maps: sum_to_one=True needs normalised=True (edge-step "
                              "normalised spectra and references); absolute-mode weights are "
                              "amounts (atoms/nm^3), not fractions")
    for c in ("state_element", "state_valence"):
        if c not in references.coords:
            raise ValidationError(f"valence_maps: references need coord {c!r}")
    windows = {**DEFAULT_WINDOWS, **dict(windows or {})}
    ref_elements = list(dict.fromkeys(str(e) for e in references["state_element"].values))
    elements = [e for e in ref_elements if e in windows] if elements is None else list(elements)
    spatial = [d for d in spectra.dims if d != "energy"]
    energy = np.asarray(spectra["energy"].values, dtype=float)
    px = spectra.attrs["pixel_size"]
    data = spectra.transpose(*spatial, "energy").data
    xp = array_module(data)
    per_el, frac_maps, states, n_masked = {}, [], [], {}
    for el in elements:
        if el not in ref_elements:
            raise ValidationError(f"valence_maps: no references for element {el!r}")
        sel = _window_energies(energy, windows[el], el)
        refs = references.isel(state=np.flatnonzero(references["state_element"].values == el))
        refs = resample(refs, energy[sel])
        res = lcf(data[..., np.flatnonzero(sel)], refs.values, nonneg=nonneg,
                  sum_to_one=sum_to_one, background=None if normalised else background,
                  r_factor_max=r_factor_max, dtype=dtype,
                  names=[str(s) for s in refs["state"].values])
        val = effective_valence(res.fractions, refs["state_valence"].values)
        total = res.fractions.sum(axis=-1)
        keep = res.quality_mask if normalised else res.quality_mask & (total > min_amount)
        val = xp.where(keep, val, xp.nan)
        n_masked[el] = int((~keep).sum()) if hasattr(keep, "sum") else -1
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = res.fractions / xp.where(total > 0, total, xp.nan)[..., None]
        frac_maps.append(xp.moveaxis(norm, -1, 0))
        states += [str(s) for s in refs["state"].values]
        per_el[el] = (val, total, res)
    stack = lambda f: xp.stack([f(per_el[e]) for e in elements])  # noqa: E731
    lead = {"element": elements}
    ds = xr.Dataset({
        "valence": spatial_map(stack(lambda t: t[0]), voxel_size=px, units="e", name="valence",
                               leading=lead),
        "fractions": spatial_map(xp.concatenate(frac_maps), voxel_size=px, units="1",
                                 name="fractions", leading={"state": states}),
        "residual": spatial_map(stack(lambda t: t[2].residual), voxel_size=px,
                                units=spectra.attrs.get("units", ""), name="residual", leading=lead),
        "r_factor": spatial_map(stack(lambda t: t[2].r_factor), voxel_size=px, units="1",
                                name="r_factor", leading=lead),
        "quality_mask": spatial_map(stack(lambda t: t[2].quality_mask), voxel_size=px,
                                    units="1", name="quality_mask", leading=lead),
    })
    if not normalised:
        ds["amount"] = spatial_map(stack(lambda t: t[1]), voxel_size=px, units="1/nm^3",
                                   name="amount", leading=lead)
    ds = ds.assign_coords(state_element=("state", [s for e in elements for s in
                                                   references["state_element"].values[
                                                       references["state_element"].values == e]]))
    ds.attrs.update({"pixel_size": px, "pixel_size_units": "nm", "n_masked": repr(n_masked),
                     "normalised": int(normalised)})
    return add_provenance(ds, "spectra.valence_maps", elements=elements,
                          windows={e: list(windows[e]) for e in elements},
                          normalised=normalised, background=background,
                          r_factor_max=r_factor_max, nonneg=nonneg, sum_to_one=sum_to_one)
