"""Phase-contrast (holotomography) branch of the pipeline.

With ``[phase] method = "paganin" | "ctf"`` (or a raw series with a
``distance`` dim) the preprocess step retrieves the phase of every projection
instead of taking -log of the transmission; the ``od`` group then holds the
phase magnitude ``-phi`` (rad, positive for matter), which reconstructs like an
optical density into ``k delta`` per nm. The ``density`` step turns that into
delta and the electron density (e/nm^3).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .. import io
from .._model import add_provenance, volume
from .._physics import wavelength_nm

__all__ = ["is_phase_run", "phase_od", "density", "SIMULATE_HOLO"]

#: ``input.path`` prefix of a simulated holotomography scan, e.g. "simulate-holo:small".
SIMULATE_HOLO = "simulate-holo:"


def is_phase_run(cfg, raw: xr.Dataset | None = None) -> bool:
    """True when the run retrieves phase (configured, or the raw series has distances)."""
    if cfg.phase.method != "none":
        return True
    return raw is not None and "distance" in raw["projections"].dims


def _transmission(ds: xr.Dataset, cfg) -> xr.Dataset:
    """I/I0 with dims (energy, distance, angle, y, x); flat/dark corrected when flats exist."""
    from ..recon.prep import normalize

    proj = ds["projections"]
    if "distance" not in proj.dims:
        proj = proj.expand_dims(distance=[cfg.phase.distances_m[0]] if cfg.phase.distances_m
                                else [np.nan], axis=1)
    if "flats" not in ds:
        return ds.assign(projections=proj)
    flats = ds["flats"]
    darks = ds["darks"] if "darks" in ds else None
    out = np.empty(proj.shape, np.float32)
    for e in range(proj.sizes["energy"]):  # energies x distances: a handful of calls
        for d in range(proj.sizes["distance"]):
            def pick(da):
                return da.values[e, d] if "distance" in da.dims else da.values[e]
            od, _ = normalize(proj.values[e, d], pick(flats),
                              None if darks is None else pick(darks),
                              flat_mode=cfg.preprocess.flat_mode)
            out[e, d] = np.exp(-od)
    return ds.drop_vars([v for v in ("flats", "darks") if v in ds]).assign(
        projections=(proj.dims, out))


def phase_od(ds: xr.Dataset, cfg) -> tuple[np.ndarray, dict]:
    """Phase magnitude ``-phi`` (energy, angle, y, x) in rad from a raw holotomography series."""
    from ..recon.phase import retrieve_phase_series

    inten = _transmission(ds, cfg)
    if cfg.phase.distances_m and "distance" in ds["projections"].dims:
        if len(cfg.phase.distances_m) != inten.sizes["distance"]:
            raise ValueError(f"preprocess: [phase] distances_m has {len(cfg.phase.distances_m)} "
                             f"values but the raw series has {inten.sizes['distance']} distances")
        inten = inten.assign_coords(distance=("distance", list(cfg.phase.distances_m),
                                              {"units": "m"}))
        inten = inten.drop_vars(["effective_distance"], errors="ignore")
    if cfg.phase.pixel_size_m:
        inten.attrs["pixel_size"] = float(cfg.phase.pixel_size_m) * 1e9  # nm
    if not np.all(np.isfinite(inten["distance"].values)):
        raise ValueError("preprocess: the phase branch needs the propagation distance: the raw "
                         "series has no 'distance' coordinate and [phase] distances_m is empty")
    if cfg.phase.energy_ev:
        inten = inten.assign_coords(energy=[float(cfg.phase.energy_ev)])
    method = "auto" if cfg.phase.method == "none" else cfg.phase.method
    phase = retrieve_phase_series(inten, delta_beta=cfg.phase.delta_beta, method=method)
    return (-phase.values).astype(np.float32), {"phase_method": method,
                                                "delta_beta": float(cfg.phase.delta_beta)}


def density(ctx) -> None:
    """recon -> density: delta (1) and electron density (e/nm^3) of a phase run."""
    from ..recon.phase import delta_to_electron_density

    od = io.read_group(ctx.store, "od")
    if od.attrs.get("signal") != "phase":
        ctx.log("density: not a phase-contrast run; skipped")
        return
    mu = io.read_group(ctx.store, "recon")["mu"].load()  # k delta per nm
    px = float(mu.attrs["pixel_size"])
    energies = mu["energy"].values
    lam_nm = wavelength_nm(energies)
    delta = mu.values * (lam_nm / (2 * np.pi))[:, None, None, None]
    rho = np.stack([delta_to_electron_density(delta[i], energy_ev=float(e))
                    for i, e in enumerate(energies)])
    ds = xr.Dataset({
        "delta": volume(delta.astype(np.float32), energies=energies, voxel_size=px, units="1",
                        name="delta"),
        "electron_density": volume(rho.astype(np.float32), energies=energies, voxel_size=px,
                                   units="e/nm^3", name="electron_density"),
    }, attrs={"pixel_size": px, "pixel_size_units": "nm"})
    add_provenance(ds, "pipeline.density", inputs=[str(ctx.store)])
    io.write(ctx.store, "density", ds, overwrite=ctx.overwrite)
