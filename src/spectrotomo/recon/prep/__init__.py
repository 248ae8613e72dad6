"""spectrotomo.recon.prep: the ``preprocess`` step's stage functions.

Counts -> optical density (:func:`normalize`), ring/stripe removal
(:func:`remove_rings`), rotation centre (:func:`find_center`), projection jitter
(:func:`align_projections`) and energy registration (:func:`register_energies`,
:func:`warp`), with the sub-pixel shift tools they share.
"""

from ._align import AlignmentReport, align_projections, align_work_bytes
from ._center import CenterScores, find_center
from ._center_memory import center_work_bytes
from ._normalize import NormalizeReport, normalize, reduce_references
from ._normalize_series import normalize_series
from ._register import EnergyRegistration, estimate_energy_registration, register_energies
from ._register_fit import warp
from ._rings import remove_rings
from ._shift import candidate_stack, fourier_shift, pad_width, phase_correlate

__all__ = [
    "AlignmentReport",
    "CenterScores",
    "EnergyRegistration",
    "NormalizeReport",
    "align_projections",
    "align_work_bytes",
    "candidate_stack",
    "center_work_bytes",
    "find_center",
    "fourier_shift",
    "normalize",
    "normalize_series",
    "pad_width",
    "phase_correlate",
    "reduce_references",
    "estimate_energy_registration",
    "register_energies",
    "remove_rings",
    "warp",
]
