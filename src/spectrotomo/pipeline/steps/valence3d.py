"""The ``valence3d`` step: recon -> valence3d, a linear-combination fit of every
voxel's spectrum of a 3D XANES tomography (an energy scan at every angle).

A run is a XANES tomography when at least :data:`MIN_XANES_ENERGIES` of its
energies lie inside one element's edge window
(:data:`spectrotomo.spectra.DEFAULT_WINDOWS`); a dual-energy series (two
energies per edge) is not, and the step skips it. Every voxel of ``recon/mu``
(linear attenuation, 1/nm) is fitted against the ``[spectra] references`` in
the ``[spectra]`` mode (:func:`~.valence.fit_valence`, exact batched LCF), one
task per slab of ``[reconstruct] chunk_rows`` z rows (memory: one slab of every
energy), each writing its own region of the group:

``valence`` (element, z, y, x) e, ``fractions`` (state, z, y, x) 1,
``amount`` (element, z, y, x) atoms/nm^3 (absolute mode), ``residual``
(element, z, y, x) 1/nm, ``r_factor`` (element, z, y, x) 1, ``particle_mask``
(z, y, x) and ``quality_mask`` (element, z, y, x): inside the particle, R-factor
<= :data:`R_FACTOR_MAX` and amount >= :data:`AMOUNT_FLOOR` x the median amount
inside the particle (pores, cracks and the blurred rim fail it).

``[spectra] energy_offset = "fit"`` fits one offset per element window for the
whole volume, on the central slab (the voxels with the largest edge steps,
:func:`spectrotomo.spectra.fit_energy_offset`), before the slab tasks; it is
``attrs["energy_offset_ev"]`` (one per element, eV).
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import xarray as xr

from ... import io
from ..._model import add_provenance
from ...spectra import MIN_XANES_ENERGIES, xanes_elements
from .._compute import run_tasks
from ._layout import kept_chunks, volume_chunks
from .reconstruct import log_resume
from .valence import config_references, fit_valence, merge_elements

__all__ = ["valence3d", "valence3d_slab", "MIN_XANES_ENERGIES",
           "R_FACTOR_MAX", "AMOUNT_FLOOR"]

#: Largest R-factor (residual^2 / |spectrum|^2) of a trusted voxel.
R_FACTOR_MAX = 0.05
#: Smallest amount of a trusted voxel, as a fraction of the median amount
#: inside the particle (measured on the central slab).
AMOUNT_FLOOR = 0.25


def _fit_slab(block: np.ndarray, energies, px: float, refs, elements, cfg,
              offsets: dict[str, float] | None = None) -> xr.Dataset:
    """LCF of one (energy, z, y, x) block of linear attenuation (1/nm); ``offsets``
    (element -> eV) replace ``[spectra] energy_offset`` (one offset per run, not
    per slab: the coordinator fits it once)."""
    spectra = xr.DataArray(block, dims=("energy", "z", "y", "x"),
                           coords={"energy": ("energy", np.asarray(energies), {"units": "eV"})},
                           attrs={"units": "1/nm", "pixel_size": px})
    if offsets is None:
        return fit_valence(spectra, refs, elements, cfg)
    parts = [fit_valence(spectra, refs, [el], replace(cfg, energy_offset=offsets[el]))
             for el in elements]  # a few elements; each fit is batched over the slab
    ds = merge_elements(parts)
    ds.attrs.update(fit_mode=parts[0].attrs["fit_mode"],
                    energy_offset_ev=[offsets[el] for el in elements])
    return ds


def _quality(ds: xr.Dataset, particle: np.ndarray, floor: dict) -> np.ndarray:
    """quality_mask (element, z, y, x): inside, R-factor <= R_FACTOR_MAX, amount >= floor."""
    ok = particle[None] & np.isfinite(ds["valence"].values) & (ds["r_factor"].values
                                                                 <= R_FACTOR_MAX)
    if "amount" in ds:
        floors = np.array([floor[str(el)] for el in ds["element"].values])
        ok &= ds["amount"].values >= floors[:, None, None, None]
    return ok


def valence3d_slab(zs: slice, *, store, params: dict) -> None:
    """Fit rows ``zs`` of ``recon/mu`` and write their region of every valence3d array.

    ``params``: ``energies`` (eV), ``pixel_size`` (nm), ``elements``, ``refs``
    (the references, a DataArray), ``spectra`` (the ``[spectra]`` config),
    ``offsets`` (element -> reference energy offset, eV), ``floor`` (element ->
    atoms/nm^3) and ``names`` (the arrays to write).
    """
    block = io.read_region(store, "recon", "mu", {"z": zs})
    ds = _fit_slab(block, params["energies"], params["pixel_size"], params["refs"],
                   params["elements"], params["spectra"], params["offsets"])
    particle = io.read_region(store, "valence3d", "particle_mask", {"z": zs},
                              allow_incomplete=True)
    ds["quality_mask"] = (ds["quality_mask"].dims, _quality(ds, particle, params["floor"]))
    for name in params["names"]:
        var = ds[name]
        region = tuple(zs if d == "z" else slice(None) for d in var.dims)
        io.write_region(store, "valence3d", name, region, var.values)


def _particle_mask(store, mu: xr.DataArray, rows: int) -> np.ndarray:
    """Particle envelope of the mean attenuation over energies, summed slab by slab."""
    from ...segmentation import particle_mask

    nz = mu.sizes["z"]
    mean = np.empty((nz, mu.sizes["y"], mu.sizes["x"]), np.float32)
    for start in range(0, nz, rows):  # slabs: one slab of every energy in memory
        zs = slice(start, min(start + rows, nz))
        mean[zs] = io.read_region(store, "recon", "mu", {"z": zs}).mean(axis=0)
    return np.asarray(particle_mask(mean), dtype=bool)


def _amount_floor(ds: xr.Dataset, particle: np.ndarray) -> dict[str, float]:
    """element -> AMOUNT_FLOOR x median amount inside the particle (0 without amounts)."""
    if "amount" not in ds or not particle.any():
        return {str(el): 0.0 for el in ds["element"].values}
    return {str(el): AMOUNT_FLOOR * float(np.nanmedian(ds["amount"].sel(element=el).values
                                                       [particle]))
            for el in ds["element"].values}


def _init_arrays(ctx, template: xr.Dataset, mu: xr.DataArray, rows: int) -> list[str]:
    """Create the group's arrays (``template``: the fit of one slab); returns their names."""
    names = [n for n in template.data_vars]
    for name in names:
        var = template[name]
        shape = tuple(mu.sizes[d] if d in ("z", "y", "x") else var.sizes[d] for d in var.dims)
        chunks = kept_chunks(ctx, "valence3d", name, volume_chunks(var.dims, shape, rows))
        coords = {d: (mu[d] if d in ("z", "y", "x") else template[d]) for d in var.dims}
        if name == "fractions":
            coords["state_element"] = template["state_element"]
        io.init_array(ctx.store, "valence3d", name, shape=shape, dtype=var.dtype, chunks=chunks,
                      dims=var.dims, coords=coords, attrs=var.attrs, overwrite=ctx.overwrite)
    return names


def _slabs_missing(store, template: xr.Dataset, names: list[str]) -> list[slice]:
    """z slabs of which at least one array lacks its chunk (a killed run's)."""
    starts = {}
    for name in names:
        dims = template[name].dims
        axis = dims.index("z")
        whole = tuple(d for d in dims if d != "z")  # a task: every chunk of its rows
        for region in io.missing_regions(store, "valence3d", name, whole=whole):
            starts[region[axis].start] = region[axis]
    return [starts[k] for k in sorted(starts)]


def valence3d(ctx) -> None:
    """recon -> valence3d: per-voxel LCF of a XANES tomography, by z slab (see module)."""
    groups = io.list_groups(ctx.store)
    if "recon" not in groups or io.read_group(ctx.store, "od").attrs.get("signal") == "phase":
        ctx.log("valence3d: no absorption reconstruction; skipped")
        return
    mu = io.read_group(ctx.store, "recon")["mu"]
    cfg = ctx.config.spectra
    refs = config_references(cfg.references)
    energies = mu["energy"].values
    scanned = xanes_elements(energies)
    elements = [el for el in scanned if el in set(refs["state_element"].values)]
    if not elements:
        ctx.log(f"valence3d: not a XANES tomography ({energies.size} energies, fewer than "
                f"{MIN_XANES_ENERGIES} inside any edge window with references); skipped")
        return
    px, nz = float(mu.attrs["pixel_size"]), mu.sizes["z"]
    rows = min(ctx.config.reconstruct.chunk_rows, mu.data.chunksize[mu.dims.index("z")])
    particle = _particle_mask(ctx.store, mu, rows)
    mid = slice((nz // 2 // rows) * rows, min((nz // 2 // rows) * rows + rows, nz))
    template = _fit_slab(io.read_region(ctx.store, "recon", "mu", {"z": mid}), energies, px,
                         refs, elements, cfg)
    # the energy offset ("fit": on the central slab's voxels with the largest edge steps)
    offsets = dict(zip(elements, (float(v) for v in template.attrs["energy_offset_ev"])))
    floor = _amount_floor(template, particle[mid])
    names = _init_arrays(ctx, template, mu, rows)
    io.init_array(ctx.store, "valence3d", "particle_mask", shape=particle.shape, dtype=bool,
                  chunks=kept_chunks(ctx, "valence3d", "particle_mask",
                                     volume_chunks(("z", "y", "x"), particle.shape, rows)),
                  dims=("z", "y", "x"),
                  coords={d: mu[d] for d in ("z", "y", "x")},
                  attrs={"units": "1", "long_name": "particle envelope (mean attenuation)"},
                  overwrite=ctx.overwrite)
    io.write_region(ctx.store, "valence3d", "particle_mask", (), particle)
    slabs = _slabs_missing(ctx.store, template, names)
    log_resume(ctx, "valence3d", slabs, -(-nz // rows))
    ctx.log(f"valence3d: XANES tomography of {', '.join(elements)} ({energies.size} energies), "
            f"{len(slabs)} slabs of {rows} rows")
    params = {"energies": energies, "pixel_size": px, "elements": elements, "refs": refs,
              "spectra": cfg, "offsets": offsets, "floor": floor, "names": names}
    run_tasks(ctx.client, valence3d_slab, slabs, desc="valence3d", store=str(ctx.store),
              params=params)
    attrs = {"pixel_size": px, "pixel_size_units": "nm", "fit_mode": template.attrs["fit_mode"],
             "elements": " ".join(elements), "r_factor_max": R_FACTOR_MAX,
             "amount_floor": repr(floor), "amount_floor_units": "1/nm^3",
             "energy_offset_ev": [offsets[el] for el in elements],
             "energy_offset_fitted": int(cfg.energy_offset == "fit")}
    raw_attrs = io.read_group(ctx.store, "raw").attrs if "raw" in groups else {}
    if "true_energy_offset_ev" in raw_attrs:  # simulated scan: the report compares
        attrs["true_energy_offset_ev"] = float(raw_attrs["true_energy_offset_ev"])
    add_provenance(SimpleNamespace(attrs=attrs), "pipeline.valence3d", inputs=[str(ctx.store)],
                   references=cfg.references, nonneg=cfg.nonneg, sum_to_one=cfg.sum_to_one,
                   chunk_rows=rows)
    io.mark_complete(ctx.store, "valence3d", attrs=attrs)
