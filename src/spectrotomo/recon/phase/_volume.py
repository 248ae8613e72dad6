"""Phase projections -> volumes of delta and electron density with units."""

from __future__ import annotations

from ..._model import add_provenance, volume
from ._units import delta_to_electron_density, phase_to_delta, wavelength_m

__all__ = ["reconstruct_phase"]


def reconstruct_phase(phase, angles, *, energy_ev, pixel_size_nm, center=None,
                      algorithm="fbp", **options):
    """Reconstruct retrieved phase projections into delta and electron density.

    Parameters
    ----------
    phase : ndarray (numpy or cupy), shape (n_angles, n_rows, n_cols)
        Phase shifts in radians (negative for matter) from ``paganin`` or
        ``ctf_retrieval``, one per tilt angle.
    angles : array_like, shape (n_angles,)
        Tilt angles in degrees.
    energy_ev : float
        Photon energy in eV.
    pixel_size_nm : float
        Effective (sample-plane) pixel size in nm; also the voxel size.
    center, algorithm, **options
        Passed to ``recon.reconstruct``.

    Returns
    -------
    xarray.Dataset
        ``delta`` (energy=1, z, y, x) dimensionless and ``electron_density``
        (energy=1, z, y, x) in e/nm^3, float32 numpy arrays, voxel size
        ``pixel_size_nm``; provenance added.
    """
    import xarray as xr

    from ..._backend import to_numpy
    from .._reconstruct import reconstruct

    wavelength_m(energy_ev)  # validates the energy before the (long) reconstruction
    per_voxel = reconstruct(phase, angles, algorithm=algorithm, center=center, **options)
    delta = phase_to_delta(to_numpy(per_voxel), energy_ev=energy_ev,
                           voxel_size_nm=pixel_size_nm)
    rho = delta_to_electron_density(delta, energy_ev=energy_ev)
    ds = xr.Dataset({
        "delta": volume(delta, energies=[energy_ev], voxel_size=pixel_size_nm, units="1",
                        name="delta"),
        "electron_density": volume(rho.astype(delta.dtype), energies=[energy_ev],
                                   voxel_size=pixel_size_nm, units="e/nm^3",
                                   name="electron_density"),
    }, attrs={"pixel_size": float(pixel_size_nm), "pixel_size_units": "nm"})
    return add_provenance(ds, "recon.phase.reconstruct_phase", energy_ev=energy_ev,
                          pixel_size_nm=pixel_size_nm, algorithm=algorithm, center=center,
                          n_angles=int(phase.shape[0]))
