"""spectrotomo.recon stage: parallel-beam reconstruction (FBP, SIRT, CGLS, TV, and the
joint limited-angle solver ``reconstruct_joint``).

Sub-packages by pipeline step: :mod:`spectrotomo.recon.prep` (the ``preprocess``
step: normalize, rings, centre, jitter, energy registration) and
:mod:`spectrotomo.recon.phase` (phase retrieval and the ``density`` step's units).
"""

from ._filters import FILTERS
from ._joint import AUTO_WEIGHT, od_noise, reconstruct_joint
from ._operator import ParallelBeamOperator
from ._reconstruct import ALGORITHMS, backproject, project, reconstruct, reconstruct_dask
from ._series import reconstruct_series
from . import phase, prep  # noqa: E402  (after the core they import)

__all__ = [
    "ALGORITHMS",
    "AUTO_WEIGHT",
    "FILTERS",
    "ParallelBeamOperator",
    "backproject",
    "phase",
    "prep",
    "project",
    "reconstruct",
    "reconstruct_dask",
    "reconstruct_joint",
    "od_noise",
    "reconstruct_series",
]
