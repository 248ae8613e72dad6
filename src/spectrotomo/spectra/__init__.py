"""spectrotomo.spectra stage: reference spectra, dual-energy element amounts,
exact batched linear-combination fitting and valence maps."""

from ._lcf import LCFResult
from ._lcf import lcf
from ._lcf import lcf_xarray

__all__ = [
    "LCFResult",
    "lcf",
    "lcf_xarray",
]
