"""spectrotomo.spectra stage: reference spectra (loaded, or the builtin model
library the simulator also uses), dual-energy element amounts, exact batched
linear-combination fitting and valence maps."""

from ._builtin import BUILTIN_STATES
from ._builtin import EDGES
from ._builtin import builtin_cross_section
from ._builtin import builtin_references
from ._calibration import EnergyOffsetFit
from ._calibration import fit_energy_offset
from ._calibration import shifted_references
from ._edges import edge_pairs
from ._lcf import LCFResult
from ._quantify import ElementAmounts
from ._quantify import cross_section
from ._quantify import element_amounts
from ._maps import element_maps
from ._quantify import formula_ties
from ._quantify import joint_element_amounts
from ._quantify import tm_o_ratio
from ._valence import DEFAULT_WINDOWS
from ._valence import MIN_XANES_ENERGIES
from ._valence import effective_valence
from ._valence import valence_maps
from ._valence import window_counts, xanes_elements
from ._references import load_athena
from ._references import load_references
from ._references import normalize_edge_step
from ._references import references
from ._references import resample
from ._references import shift_energy
from ._lcf import lcf
from ._lcf import lcf_xarray

__all__ = [
    "BUILTIN_STATES",
    "EDGES",
    "builtin_cross_section",
    "EnergyOffsetFit",
    "fit_energy_offset",
    "shifted_references",
    "DEFAULT_WINDOWS",
    "MIN_XANES_ENERGIES",
    "ElementAmounts",
    "effective_valence",
    "valence_maps",
    "xanes_elements",
    "window_counts",
    "LCFResult",
    "cross_section",
    "element_amounts",
    "edge_pairs",
    "element_maps",
    "formula_ties",
    "joint_element_amounts",
    "tm_o_ratio",
    "builtin_references",
    "load_athena",
    "load_references",
    "normalize_edge_step",
    "references",
    "resample",
    "shift_energy",
    "lcf",
    "lcf_xarray",
]
