"""The ``valence`` step: raw_xanes -> valence (2D LCF of every pixel's spectrum).

The references and fit mode come from the ``[spectra]`` config. The scan is
normalized as the tomography is (:func:`xanes_od`: ``normalize`` per energy with
``[preprocess] flat_mode``: dark/flat checks, masked and filled bad pixels,
their count in ``attrs["masked_pixels"]``), energy by energy, and registered on a
bounded stack (``_xanes_stream``: the float32 scan is the one array held whole;
``attrs["registration_binning"]`` says whether its registration ran binned).

``references = "builtin"`` uses :func:`spectrotomo.spectra.builtin_references`
(the model spectra the simulator also uses; cross sections per atom, nm^2); any other value is a CSV/text table read with
:func:`spectrotomo.spectra.load_references`: energy (eV) first, then one
column per state named ``<element><valence><sign>`` (``Mn2+``, ``Mn3+``,
``O2-``), which gives each state's element and formal valence.

``sum_to_one = false`` (default): absolute fit of the optical density with
the references as cross sections per atom plus a polynomial background
(weights: column amounts; a common scale of one element's references changes
the amounts, not the valence). ``sum_to_one = true``: each element's window
of the spectra and of the references is edge-step normalized (edge energy
``e0`` from the references) and fitted with fractions summing to one.
``nonneg`` constrains the weights to be >= 0 in both modes.

``energy_offset = "fit"`` (default) fits, per element window, the energy
offset of the references against the scan (:func:`spectrotomo.spectra.
fit_energy_offset`, +-1.5 eV; in the normalized mode on the raw window with
the absolute mode's constraints, before normalizing); a number moves the
references up by that many eV. The offsets are ``attrs["energy_offset_ev"]``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from ... import io
from ..._model import add_provenance
from .._context import RunContext
from ._xanes_stream import register_xanes, xanes_od
from .preprocess import magnification_pixel_sizes, scale_options, tomography_scale_mode

__all__ = ["valence", "config_references", "fit_valence", "fit_mode", "merge_elements",
           "xanes_od"]

_STATE = re.compile(r"^([A-Z][a-z]?)(\d+(?:\.\d+)?)([+-])$")
#: Pre-edge window (eV, relative to e0) of the normalized mode: measured XANES
#: grids often start only a few eV below the edge (the simulator's: 4.5 eV).
_PRE_EDGE_EV = (-np.inf, -1.0)


def config_references(spec: str) -> xr.DataArray:
    """The references named by ``[spectra] references``.

    Parameters
    ----------
    spec : str
        ``"builtin"`` or the path of a CSV/text table (energy in eV, then one
        column per state named like ``Mn3+``).

    Returns
    -------
    xarray.DataArray, dims (state, energy)
        With coords ``state_element`` and ``state_valence`` (elementary charges).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the table cannot be read or a column name does not give the state
        (messages name the file and the column).
    """
    from ...spectra import builtin_references, load_references

    if spec == "builtin":
        return builtin_references(None, normalized=False)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"[spectra] references: no file {str(path)!r}; expected "
                                "\"builtin\" or a CSV/text table (energy in eV, then one "
                                "column per state named like Mn3+)")
    refs = load_references(path)
    names = [str(n) for n in refs["state"].values]
    matches = [_STATE.match(n) for n in names]
    bad = [n for n, m in zip(names, matches) if m is None]
    if bad:
        raise ValueError(f"[spectra] references {path}: column(s) {bad} must be named "
                         "<element><valence><sign>, e.g. Mn3+ or O2- (the header line gives "
                         "each state's element and formal valence)")
    valences = [float(m.group(2)) * (1 if m.group(3) == "+" else -1) for m in matches]
    return refs.assign_coords(state_element=("state", [m.group(1) for m in matches]),
                              state_valence=("state", valences))


def fit_mode(cfg) -> str:
    """``"normalized"`` when ``[spectra] sum_to_one``, else ``"absolute"``."""
    return "normalized" if cfg.sum_to_one else "absolute"


def fit_valence(spectra: xr.DataArray, refs: xr.DataArray, elements, cfg) -> xr.Dataset:
    """Valence maps of ``spectra`` (energy, y, x) optical density in the
    ``[spectra]`` mode (``cfg``: :class:`~spectrotomo.pipeline._config.SpectraConfig`);
    ``attrs["fit_mode"]`` says which."""
    from ..._model import ValidationError
    from ...spectra import valence_maps

    try:
        if fit_mode(cfg) == "absolute":
            ds = valence_maps(spectra, refs, elements=elements, min_amount=0.0,
                              nonneg=cfg.nonneg, energy_offset=cfg.energy_offset)
        else:
            parts = [_fit_normalized(spectra, refs, el, cfg.nonneg, cfg.energy_offset)
                     for el in elements]
            ds = merge_elements(parts)
            ds.attrs["energy_offset_ev"] = [p.attrs["energy_offset_ev"][0] for p in parts]
    except ValidationError as exc:  # e.g. a file whose energies miss the measured ones
        raise ValidationError(f"valence: [spectra] references {cfg.references}: {exc}") from exc
    ds.attrs["fit_mode"] = fit_mode(cfg)
    return ds


def _fit_normalized(spectra: xr.DataArray, refs: xr.DataArray, element: str,
                    nonneg: bool, energy_offset) -> xr.Dataset:
    """Move the element's references by the energy offset (fitted on the raw
    window when "fit"), edge-step normalize the window (spectra and references,
    one e0), then fit fractions that sum to one."""
    from ...spectra import (DEFAULT_WINDOWS, fit_energy_offset, normalize_edge_step, shifted_references,
                            valence_maps)

    lo, hi = DEFAULT_WINDOWS[element]
    energy = spectra["energy"].values
    window = spectra.isel(energy=np.flatnonzero((energy >= lo) & (energy <= hi)))
    mine = refs.isel(state=np.flatnonzero(refs["state_element"].values == element))
    e = window["energy"].values
    if energy_offset == "fit":
        energy_offset = fit_energy_offset(np.moveaxis(np.asarray(window.values), 0, -1), e,
                                          mine, nonneg=nonneg).offset_ev
    mine = normalize_edge_step(shifted_references(mine, e, float(energy_offset)), pre=_PRE_EDGE_EV)
    window = normalize_edge_step(window, e0=mine.attrs["e0"], pre=_PRE_EDGE_EV)  # keeps pixel_size
    ds = valence_maps(window, mine, elements=[element], normalized=True, nonneg=nonneg,
                      sum_to_one=True)
    ds.attrs["energy_offset_ev"] = [float(energy_offset)]
    return ds


def merge_elements(parts: list[xr.Dataset]) -> xr.Dataset:
    """One dataset from per-element fits (element-dim variables and fractions)."""
    if len(parts) == 1:
        return parts[0]
    per_element = [v for v in parts[0].data_vars if "element" in parts[0][v].dims]
    out = xr.concat([p[per_element] for p in parts], dim="element", combine_attrs="override")
    out["fractions"] = xr.concat([p["fractions"] for p in parts], dim="state")
    return out


def valence(ctx: RunContext) -> None:
    """raw_xanes -> valence: 2D LCF of every pixel's spectrum against the
    ``[spectra] references``, in the mode of ``[spectra] sum_to_one``/``nonneg``."""
    from ..._backend import host_threads
    from ...spectra import DEFAULT_WINDOWS

    if "raw_xanes" not in io.list_groups(ctx.store):
        ctx.log("valence: no XANES scan in the store; skipped")
        return
    # lazily indexed: each energy's frames are read when it is normalised (_xanes_stream)
    ds = io.read_group(ctx.store, "raw_xanes", chunks=None)
    od, masked = xanes_od(ds, flat_mode=ctx.config.preprocess.flat_mode, threads=host_threads())
    mode = ctx.config.preprocess.magnification
    # Reference = the lowest energy, below the edge: against a white-line image
    # (the default middle energy, 643.5 eV on the Mn L scan) the outline model
    # mistakes the reduced shell's contrast for up to 7.5 % magnification on the
    # demo particle (0.3-0.4 % from the pre-edge; gpu_bench/RESULTS.prep.md).
    # Across the white lines the free per-energy scales carry the chemistry's bias (up to
    # 4 % at 640-641 eV on simulate:large's 256 px scan, 0.3 % on the law): the linear
    # law of the XANES tomography (preprocess.tomography_scale_mode), whenever "auto"
    energies = ds["energy"].values
    law = scale_options(tomography_scale_mode(mode, energies), energies)
    reg, binning = register_xanes(od, reference=int(np.argmin(energies)),
                                  pixel_sizes=magnification_pixel_sizes(ds, mode), **law)
    px = float(ds.attrs["pixel_size"])
    spectra = xr.DataArray(od, dims=("energy", "y", "x"),
                           coords={"energy": ds["energy"], "y": ds["y"], "x": ds["x"]},
                           attrs={"units": "1", "pixel_size": px})
    cfg = ctx.config.spectra
    refs = config_references(cfg.references)
    elements = [el for el, (lo, hi) in DEFAULT_WINDOWS.items()
                if ((energies >= lo) & (energies <= hi)).sum() >= 2 and el in set(
                    refs["state_element"].values)]
    result = fit_valence(spectra, refs, elements, cfg)
    result["registration_residual"] = (("energy",), np.asarray(reg.residual_px), {"units": "px"})
    result["energy_scale"] = (("energy",), np.asarray(reg.scales),
                              {"units": "1", "source": reg.scale_source})
    result.attrs["registration_reference"] = int(reg.reference)
    result.attrs["registration_binning"] = binning
    result.attrs["masked_pixels"] = masked
    if "true_energy_offset_ev" in ds.attrs:  # simulated scan: the report compares
        result.attrs["true_energy_offset_ev"] = float(ds.attrs["true_energy_offset_ev"])
    add_provenance(result, "pipeline.valence", inputs=[str(ctx.store)],
                   flat_mode=ctx.config.preprocess.flat_mode,
                   references=cfg.references, fit_mode=result.attrs["fit_mode"],
                   nonneg=cfg.nonneg, sum_to_one=cfg.sum_to_one,
                   energy_offset=cfg.energy_offset,
                   energy_offset_ev=dict(zip(elements, result.attrs["energy_offset_ev"])))
    io.write(ctx.store, "valence", result, overwrite=ctx.overwrite)
