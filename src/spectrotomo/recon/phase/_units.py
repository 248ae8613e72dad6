"""Units and geometry of propagation-based phase contrast.

Conventions (shared by ``paganin``, ``ctf_retrieval`` and the simulator):
the refractive index is ``n = 1 - delta + i beta``; an object of projected
thickness ``T`` multiplies the wave by ``exp(i phi - B)`` with
``phi = -(2 pi / lambda) * integral(delta)`` (radians, negative for matter)
and ``B = (2 pi / lambda) * integral(beta)``, so the transmitted intensity is
``exp(-2 B)``. Lengths entering the formulas are SI metres; energies are eV.
"""

from __future__ import annotations

import numpy as np

from ..._model import ValidationError
from ..._physics import HC_EV_M

__all__ = [
    "wavelength_m",
    "effective_geometry",
    "phase_to_delta",
    "delta_to_electron_density",
]

#: classical electron radius in m (CODATA 2018).
R_E_M = 2.8179403262e-15

_ENERGY_RANGE_EV = (1e3, 1e5)


def check_energy(energy_ev, where: str) -> float:
    """Return ``energy_ev`` as float after checking the 1-100 keV hard X-ray range."""
    e = float(energy_ev)
    lo, hi = _ENERGY_RANGE_EV
    if not np.isfinite(e) or not lo <= e <= hi:
        hint = " (energy is in eV: 17 keV is 17000)" if 0 < e < lo else ""
        raise ValidationError(f"{where}: energy_ev must be in [{lo:g}, {hi:g}] eV; got {e}{hint}")
    return e


def check_distance(distance_m, where: str, name: str = "distance_m") -> float:
    """Return a propagation distance in metres after checking it is > 0."""
    return _positive_metres(distance_m, where, name, what="a finite distance > 0",
                            limit=1e3, hint="(a few mm is ~3e-3)")


def check_pixel_size(pixel_size_m, where: str, name: str = "pixel_size_m") -> float:
    """Return a pixel size in metres; values > 1 mm are almost surely nm or um."""
    return _positive_metres(pixel_size_m, where, name, what="a positive size",
                            limit=1e-3, hint="and <= 1e-3 (hint: 20 nm is 2e-8 m; did you "
                                             "pass nm or um?)")


def _positive_metres(value, where: str, name: str, *, what: str, limit: float,
                     hint: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValidationError(f"{where}: {name} must be {what} in metres; got {v}")
    if v > limit:
        raise ValidationError(f"{where}: {name} must be in metres {hint}; got {v}")
    return v


def check_delta_beta(delta_beta, where: str) -> float:
    db = float(delta_beta)
    if not np.isfinite(db) or db <= 0:
        raise ValidationError(f"{where}: delta_beta must be a finite ratio > 0; got {db}")
    return db


def wavelength_m(energy_ev) -> float:
    """X-ray wavelength in metres for a photon energy in eV (1-100 keV)."""
    return HC_EV_M / check_energy(energy_ev, "wavelength_m")


def effective_geometry(source_to_sample_m, sample_to_detector_m, detector_pixel_m):
    """Fresnel scaling theorem: a divergent (point-source) beam as a parallel one.

    A point source at ``z1`` before the sample and a detector ``z2`` after it
    give images magnified by ``M = (z1 + z2) / z1`` that equal, up to that
    magnification, parallel-beam images at the effective distance
    ``z_eff = z2 / M = z1 z2 / (z1 + z2)`` with the effective pixel
    ``detector_pixel / M`` in the sample plane.

    Parameters
    ----------
    source_to_sample_m : float or array_like
        ``z1`` in metres (> 0).
    sample_to_detector_m : float or array_like
        ``z2`` in metres (> 0); an array gives one entry per distance.
    detector_pixel_m : float
        Detector pixel size in metres.

    Returns
    -------
    z_eff : float or ndarray
        Effective propagation distance(s) in metres.
    pixel_eff : float or ndarray
        Effective (sample-plane) pixel size(s) in metres.
    M : float or ndarray
        Geometric magnification(s), dimensionless.
    """
    where = "effective_geometry"
    z1 = check_distance(source_to_sample_m, where, "source_to_sample_m")
    z2 = np.asarray(sample_to_detector_m, dtype=float)
    for z in np.atleast_1d(z2):
        check_distance(z, where, "sample_to_detector_m")
    p = check_pixel_size(detector_pixel_m, where, "detector_pixel_m")
    M = (z1 + z2) / z1
    z_eff, pixel_eff = z2 / M, p / M
    if z2.ndim == 0:
        return float(z_eff), float(pixel_eff), float(M)
    return z_eff, pixel_eff, M


def phase_to_delta(phase, *, energy_ev, voxel_size_nm):
    """Convert a reconstructed phase volume to the refractive index decrement.

    Reconstructing phase projections (radians) with ``recon.reconstruct``
    gives phase per voxel (values in 1/voxel, i.e. radians per voxel length)
    ``f = -(2 pi / lambda) delta * voxel``, so
    ``delta = -f lambda / (2 pi voxel)``.

    Parameters
    ----------
    phase : ndarray or xarray.DataArray, any shape
        Phase per voxel, radians per voxel (negative for matter). An
        xarray volume with ``attrs["units"] == "rad/nm"`` is also accepted
        (values per nm); then ``voxel_size_nm`` is ignored.
    energy_ev : float
        Photon energy in eV.
    voxel_size_nm : float
        Voxel edge in nm.

    Returns
    -------
    Same type and shape as ``phase``: delta (dimensionless); for xarray
    input ``attrs["units"] = "1"``.
    """
    lam_nm = wavelength_m(energy_ev) * 1e9
    if hasattr(phase, "attrs") and phase.attrs.get("units") == "rad/nm":
        out = phase * (-lam_nm / (2 * np.pi))
    else:
        vox = float(voxel_size_nm)
        if not np.isfinite(vox) or vox <= 0:
            raise ValidationError(f"phase_to_delta: voxel_size_nm must be > 0 nm; got {vox}")
        out = phase * (-lam_nm / (2 * np.pi * vox))
    if hasattr(out, "attrs"):
        out.attrs.update(phase.attrs)
        out.attrs["units"] = "1"
        out.name = "delta"
    return out


def delta_to_electron_density(delta, *, energy_ev):
    """Electron density in e/nm^3 from delta, far from absorption edges.

    ``delta = r_e lambda^2 n_e / (2 pi)``, so ``n_e = 2 pi delta / (r_e lambda^2)``.

    Parameters
    ----------
    delta : ndarray or xarray.DataArray, any shape
        Refractive index decrement (dimensionless).
    energy_ev : float
        Photon energy in eV.

    Returns
    -------
    Same type and shape: electrons per nm^3 (``attrs["units"] = "e/nm^3"``
    for xarray input).
    """
    lam = wavelength_m(energy_ev)
    per_m3 = 2 * np.pi / (R_E_M * lam ** 2)
    out = delta * (per_m3 * 1e-27)
    if hasattr(out, "attrs"):
        out.attrs.update(delta.attrs)
        out.attrs["units"] = "e/nm^3"
        out.name = "electron_density"
    return out
