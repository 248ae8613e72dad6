"""spectrotomo.recon stage: parallel-beam reconstruction (FBP, SIRT, CGLS, TV)."""

from ._align import align_projections
from ._center import find_center
from ._filters import FILTERS
from ._normalize import normalize
from ._operator import ParallelBeamOperator
from ._reconstruct import backproject
from ._reconstruct import project
from ._reconstruct import reconstruct
from ._register import register_energies
from ._rings import remove_rings

__all__ = [
    "align_projections",
    "FILTERS",
    "ParallelBeamOperator",
    "backproject",
    "find_center",
    "normalize",
    "project",
    "reconstruct",
    "register_energies",
    "remove_rings",
]
