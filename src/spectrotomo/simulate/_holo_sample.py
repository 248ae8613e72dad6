"""A simulated hard X-ray holotomography measurement of a cathode particle."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .._physics import HC_EV_M
from ._fresnel import holotomo_series
from ._particle import particle
from ._project import project

__all__ = ["holotomo_sample", "refractive_index"]

_R_E_M = 2.8179403262e-15  # classical electron radius (m)


def refractive_index(density, elements, energy_ev: float):
    """delta, beta and electron density of a mixture from atom densities.

    Parameters
    ----------
    density : ndarray, shape (n_elements, ...)
        Atom densities in atoms/nm^3.
    elements : sequence of str, length n_elements
        Element symbols of ``density``'s first axis.
    energy_ev : float
        Photon energy in eV (hard X-rays, far from the elements' edges).

    Returns
    -------
    delta, beta : ndarray, shape (...)
        Refractive index decrement and absorption index (dimensionless),
        ``delta = r_e lambda^2 / (2 pi) sum_i n_i (Z_i + f'_i)`` and
        ``beta = r_e lambda^2 / (2 pi) sum_i n_i f''_i`` with xraydb's
        Chantler anomalous factors.
    electron_density : ndarray, shape (...)
        ``sum_i n_i (Z_i + f'_i)`` in e/nm^3: what ``delta_to_electron_density``
        recovers from delta.
    """
    import xraydb

    density = np.asarray(density, dtype=float)
    f1 = np.array([xraydb.atomic_number(el) + xraydb.f1_chantler(el, energy_ev)
                   for el in elements])
    f2 = np.array([xraydb.f2_chantler(el, energy_ev) for el in elements])
    wavelength = HC_EV_M / energy_ev
    per_m3 = 1e27  # atoms/nm^3 -> atoms/m^3
    prefactor = _R_E_M * wavelength ** 2 / (2 * np.pi) * per_m3
    rho_e = np.tensordot(f1, density, axes=1)
    return prefactor * rho_e, prefactor * np.tensordot(f2, density, axes=1), rho_e


def holotomo_sample(preset: str = "small", *, seed: int = 0, energy_ev: float = 17000.0,
                    distances_m=(1e-3,), n_angles: int = 181, photons: float | None = 5e4,
                    **overrides) -> xr.DataTree:
    """Simulate a phase-contrast holotomography scan of one particle.

    Parameters
    ----------
    preset : {"small", "demo"}
        Particle preset (see :func:`particle`); its voxel size is the
        detector pixel (parallel beam).
    seed : int
        Seed of the particle; the noise uses ``seed + 1``.
    energy_ev : float
        Photon energy in eV.
    distances_m : sequence of float
        1-4 propagation distances in metres.
    n_angles : int
        Tilt angles evenly over 0..180 deg (both ends included).
    photons : float or None
        Photons per pixel of the flat field (Poisson noise); None: noise free.
    **overrides
        Passed to :func:`particle`. ``radius_nm`` defaults to 0.27 x the field
        width so that the Fresnel fringes (``sqrt(lambda z)``, ~270 nm at
        17 keV and 1 mm) stay inside the vacuum margin of the field.

    Returns
    -------
    xarray.DataTree
        ``truth``: the particle plus ``delta`` (1), ``beta`` (1) and
        ``electron_density`` (e/nm^3) volumes; ``tilt_series``: I/I0
        (energy=1, distance, angle, y, x) from :func:`holotomo_series`, with
        ``attrs["true_center"]`` the rotation centre (column index).
    """
    from ._particle import PRESETS

    if preset in PRESETS:
        field_nm = PRESETS[preset]["shape"][-1] * PRESETS[preset]["pixel_size"]
        overrides.setdefault("radius_nm", 0.27 * field_nm)
    truth = particle(preset, seed=seed, **overrides)
    density = truth["density"]
    delta, beta, rho_e = refractive_index(density.values, density["element"].values, energy_ev)
    dims = ("z", "y", "x")
    truth["delta"] = xr.DataArray(delta.astype(np.float32), dims=dims, attrs={"units": "1"})
    truth["beta"] = xr.DataArray(beta.astype(np.float32), dims=dims, attrs={"units": "1"})
    truth["electron_density"] = xr.DataArray(rho_e.astype(np.float32), dims=dims,
                                             attrs={"units": "e/nm^3"})
    angles = np.linspace(0.0, 180.0, int(n_angles))
    voxel_m = float(truth.attrs["pixel_size"]) * 1e-9
    # project() maps (rows, ny, nx) -> (angles, rows, cols) in voxel units
    delta_proj = project(delta, angles) * voxel_m
    beta_proj = project(beta, angles) * voxel_m
    ts = holotomo_series(delta_proj, beta_proj, energy_ev=energy_ev, distances_m=distances_m,
                         pixel_size_m=voxel_m, angles=angles, photons=photons, seed=seed + 1)
    ts.attrs["true_center"] = (ts.sizes["x"] - 1) / 2
    tree = xr.DataTree.from_dict({"truth": truth, "tilt_series": ts})
    tree.attrs.update({"preset": preset, "seed": int(seed), "synthetic": True,
                       "energy_ev": float(energy_ev)})
    return tree
