"""The ``density`` step of phase-contrast (holotomography) runs: recon -> density.

The preprocess step retrieved the phase (``od`` holds ``-phi`` in rad), which
reconstructs like an optical density into ``k delta`` per nm; this step turns it
into delta and the electron density (e/nm^3).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ... import io
from ..._model import add_provenance, volume
from ..._physics import wavelength_nm
from ._layout import volume_chunks

__all__ = ["density"]


def density(ctx) -> None:
    """recon -> density: delta (1) and electron density (e/nm^3) of a phase run."""
    from ...recon.phase import delta_to_electron_density

    od = io.read_group(ctx.store, "od")
    if od.attrs.get("signal") != "phase":
        ctx.log("density: not a phase-contrast run; skipped")
        return
    mu = io.read_group(ctx.store, "recon")["mu"]  # k delta per nm
    rows = mu.chunksizes["z"][0]  # the reconstruction's rows: the stored chunks'
    mu = mu.load()
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
    # the reconstruction's rows, one energy and y/x tiles per chunk (as every volume group)
    chunks = volume_chunks(mu.dims, mu.shape, rows)
    io.write(ctx.store, "density", ds, overwrite=ctx.overwrite,
             encoding={name: {"chunks": chunks} for name in ds.data_vars})
