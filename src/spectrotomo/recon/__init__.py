"""spectrotomo.recon stage: parallel-beam reconstruction (FBP, SIRT, CGLS, TV)."""

from ._dask import reconstruct_dask
from ._filters import FILTERS
from ._operator import ParallelBeamOperator
from ._reconstruct import backproject
from ._reconstruct import project
from ._reconstruct import reconstruct
from ._series import reconstruct_series

__all__ = [
    "FILTERS",
    "ParallelBeamOperator",
    "backproject",
    "project",
    "reconstruct",
    "reconstruct_dask",
    "reconstruct_series",
]
