"""spectrotomo.spectra stage: reference spectra, dual-energy element amounts,
exact batched linear-combination fitting and valence maps."""

from ._edges import edge_pairs
from ._lcf import LCFResult
from ._quantify import ElementAmounts
from ._quantify import cross_section
from ._quantify import element_amounts
from ._quantify import element_maps
from ._quantify import joint_element_amounts
from ._quantify import tm_o_ratio
from ._references import builtin_references
from ._valence import DEFAULT_WINDOWS
from ._valence import effective_valence
from ._valence import valence_maps
from ._references import load_athena
from ._references import load_references
from ._references import normalise
from ._references import references
from ._references import resample
from ._references import shift_energy
from ._lcf import lcf
from ._lcf import lcf_xarray

__all__ = [
    "DEFAULT_WINDOWS",
    "ElementAmounts",
    "effective_valence",
    "valence_maps",
    "LCFResult",
    "cross_section",
    "element_amounts",
    "edge_pairs",
    "element_maps",
    "joint_element_amounts",
    "tm_o_ratio",
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
