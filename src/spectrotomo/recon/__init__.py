"""spectrotomo.recon stage: parallel-beam reconstruction (FBP, SIRT, CGLS, TV)."""

from ._filters import FILTERS
from ._operator import ParallelBeamOperator
from ._reconstruct import backproject
from ._reconstruct import project
from ._reconstruct import reconstruct

__all__ = [
    "FILTERS",
    "ParallelBeamOperator",
    "backproject",
    "project",
    "reconstruct",
]
