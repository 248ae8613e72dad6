"""spectrotomo.spectra stage: reference spectra, dual-energy element amounts,
exact batched linear-combination fitting and valence maps."""

from ._lcf import LCFResult
from ._references import builtin_references
from ._references import load_athena
from ._references import load_references
from ._references import normalise
from ._references import references
from ._references import resample
from ._references import shift_energy
from ._lcf import lcf
from ._lcf import lcf_xarray

__all__ = [
    "LCFResult",
    "builtin_references",
    "load_athena",
    "load_references",
    "normalise",
    "references",
    "resample",
    "shift_energy",
    "lcf",
    "lcf_xarray",
]
