"""spectrotomo.recon stage: parallel-beam reconstruction (FBP, SIRT, CGLS, TV, joint
limited-angle) and phase retrieval."""

from ._align import align_projections
from ._center import CenterScores, find_center
from ._ctf import ctf_retrieval
from ._dask import reconstruct_dask
from ._filters import FILTERS
from ._holo_align import correct_magnification
from ._joint import AUTO_WEIGHT
from ._joint import reconstruct_joint
from ._holo_align import register_distances
from ._holo_align import shift_images
from ._normalize import normalize
from ._normalize_series import normalize_series
from ._operator import ParallelBeamOperator
from ._paganin import paganin
from ._phase_series import retrieve_phase_series
from ._phase_units import delta_to_electron_density
from ._phase_units import effective_geometry
from ._phase_units import phase_to_delta
from ._phase_units import wavelength_m
from ._phase_volume import reconstruct_phase
from ._reconstruct import backproject
from ._reconstruct import project
from ._reconstruct import reconstruct
from ._register import register_energies
from ._rings import remove_rings
from ._series import reconstruct_series

__all__ = [
    "align_projections",
    "AUTO_WEIGHT",
    "backproject",
    "correct_magnification",
    "ctf_retrieval",
    "delta_to_electron_density",
    "effective_geometry",
    "FILTERS",
    "find_center",
    "CenterScores",
    "normalize",
    "normalize_series",
    "paganin",
    "ParallelBeamOperator",
    "phase_to_delta",
    "project",
    "reconstruct",
    "reconstruct_dask",
    "reconstruct_joint",
    "reconstruct_phase",
    "reconstruct_series",
    "register_distances",
    "register_energies",
    "remove_rings",
    "retrieve_phase_series",
    "shift_images",
    "wavelength_m",
]
