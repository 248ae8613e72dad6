"""spectrotomo.recon.phase: phase retrieval for hard X-ray holotomography.

Single-distance Paganin (:func:`paganin`), multi-distance CTF
(:func:`ctf_retrieval`), distance registration, the per-series driver
(:func:`retrieve_phase_series`; :func:`retrieve_phase` for one energy's
images, any chunk of angles), the phase volume (:func:`reconstruct_phase`) and
unit conversions (phase -> delta -> electron density).  Propagation distances,
pixel sizes and wavelengths are in metres here (see ``_units``).
"""

from ._ctf import ctf_retrieval
from ._holo_align import correct_magnification, register_distances, shift_images
from ._paganin import paganin
from ._series import retrieve_phase, retrieve_phase_series
from ._units import delta_to_electron_density, effective_geometry, phase_to_delta, wavelength_m
from ._volume import reconstruct_phase

__all__ = [
    "correct_magnification",
    "ctf_retrieval",
    "delta_to_electron_density",
    "effective_geometry",
    "paganin",
    "phase_to_delta",
    "reconstruct_phase",
    "register_distances",
    "retrieve_phase",
    "retrieve_phase_series",
    "shift_images",
    "wavelength_m",
]
