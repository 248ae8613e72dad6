"""A simulated 3D XANES tomography: a full Mn L energy scan at every tilt angle.

The particle is one of the particle presets (``small`` for ``xanes3d``, ``tiny``
for ``xanes3d-tiny``); the series is :func:`tilt_series` at the 25 energies of
the 2D XANES scan (:data:`XANES_ENERGIES`, 635-665 eV, dense over the L3 white
lines) and every angle of the limited range -65..+65 deg, with Poisson noise
(2e4 photons per pixel and frame at the beam centre), the sample's mild
instrument imperfections and its calibration offset and broadening relative to
the builtin references.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..spectra import builtin_references
from ._forward import tilt_series
from ._instrument import MILD_IMPERFECTIONS, SCAN_CALIBRATION, Calibration, Imperfections
from ._particle import PRESETS, particle
from ._sample import XANES_ENERGIES

__all__ = ["XANES3D_PRESETS", "xanes3d_sample", "xanes3d_energies", "xanes3d_shape"]

#: ``simulate:NAME`` presets of a XANES tomography -> the particle preset they image.
XANES3D_PRESETS = {"xanes3d": "small", "xanes3d-tiny": "tiny"}

#: Angle range (deg) of the XANES tomography (the soft X-ray stage's limited range).
ANGLE_RANGE_DEG = (-65.0, 65.0)


def xanes3d_energies() -> np.ndarray:
    """The 25 energies (eV) of the Mn L3/L2 scan at every angle (a copy)."""
    return np.array(XANES_ENERGIES, dtype=float)


def _angles(particle_preset: str) -> np.ndarray:
    step = float(PRESETS[particle_preset].get("angle_step_deg", 1.0))
    lo, hi = ANGLE_RANGE_DEG
    return np.arange(lo, hi + step / 2, step)


def _particle_preset(preset: str) -> str:
    if preset not in XANES3D_PRESETS:
        raise ValueError(f"xanes3d_sample: preset must be one of {list(XANES3D_PRESETS)}, "
                         f"got {preset!r}")
    return XANES3D_PRESETS[preset]


def xanes3d_shape(preset: str) -> tuple[int, int, int, int]:
    """``(energy, angle, y, x)`` of ``xanes3d_sample(preset)``'s tilt series."""
    base = _particle_preset(preset)
    n = PRESETS[base]["shape"][-1]
    return (XANES_ENERGIES.size, _angles(base).size, n, n)


def xanes3d_sample(preset: str = "xanes3d", *, seed: int = 0, photons: float | None = 2e4,
                   imperfections: Imperfections = MILD_IMPERFECTIONS,
                   calibration: Calibration = SCAN_CALIBRATION, energies=None,
                   pixel_size_metadata: bool = False, **overrides) -> xr.DataTree:
    """Simulate a 3D XANES tomography of one particle.

    Parameters
    ----------
    preset : {"xanes3d", "xanes3d-tiny"}
        "xanes3d": the ``small`` particle (64^3 voxels of 20 nm), 131 angles
        (-65..+65 deg, 1 deg); "xanes3d-tiny": the ``tiny`` particle (32^3
        voxels of 36 nm), 66 angles (2 deg steps), for tests.
    seed : int
        Seed of the particle; the tilt series uses ``seed + 1``.
    photons : float or None
        Flat-field counts per pixel and frame (Poisson noise); None: noise-free.
    imperfections : Imperfections
        Of the tilt series (default :data:`MILD_IMPERFECTIONS`, as :func:`sample`:
        jitter, centre offset, energy shifts, magnification, rings;
        ``Imperfections()`` for a perfect instrument).
    calibration : Calibration
        Energy offset and broadening of the scan's spectra relative to the
        builtin references (default ``SCAN_CALIBRATION``: +0.3 eV, 0.2 eV;
        ``Calibration()``: the references' exact spectra, an inverse crime).
    energies : array_like, optional
        Photon energies (eV, increasing); default :func:`xanes3d_energies`.
    pixel_size_metadata : bool
        Record the true per-energy pixel size (see :func:`tilt_series`).
    **overrides
        Passed to :func:`particle` (e.g. ``composition="ncm811"``).

    Returns
    -------
    xarray.DataTree
        Children ``truth`` (:func:`particle`), ``tilt_series`` (raw counts,
        (energy, angle, y, x), energies in eV, angles in deg) and ``references``
        (``spectra`` from :func:`spectrotomo.spectra.builtin_references`, absolute
        cross sections in nm^2).
    """
    base = _particle_preset(preset)
    truth = particle(base, seed=seed, **overrides)
    energies = xanes3d_energies() if energies is None else np.asarray(energies, dtype=float)
    ts = tilt_series(truth, energies=energies, angles=_angles(base), photons=photons,
                     seed=seed + 1, imperfections=imperfections, calibration=calibration,
                     pixel_size_metadata=bool(pixel_size_metadata))
    refs = xr.Dataset({"spectra": builtin_references(normalized=False)},
                      attrs={"synthetic": True})
    tree = xr.DataTree.from_dict({"truth": truth, "tilt_series": ts, "references": refs})
    tree.attrs.update({"preset": preset, "particle_preset": base, "seed": int(seed),
                       "synthetic": True, "imperfect": imperfections != Imperfections(),
                       "kind": "xanes_tomography",
                       "pixel_size_metadata": bool(pixel_size_metadata)})
    return tree
