"""Ground-truth simulator: phantoms, forward projection, noise.

Everything here returns physical units and is deterministic for a seed. The
model spectra of the chemical states come from :mod:`spectrotomo.spectra`
(``builtin_references``, ``EDGES``).
"""

from ._forward import attenuation
from ._forward import tilt_series
from ._fresnel import fresnel_propagate
from ._fresnel import holotomo_series
from ._geometry import ball
from ._holo_sample import holotomo_sample
from ._holo_sample import refractive_index
from ._instrument import MILD_IMPERFECTIONS
from ._instrument import SCAN_CALIBRATION
from ._instrument import Calibration
from ._instrument import Imperfections
from ._particle import particle
from ._presets import holotomo_shape, particle_options, preset_names, sample_shape
from ._project import project
from ._sample import sample
from ._xanes3d import XANES3D_PRESETS
from ._xanes3d import xanes3d_energies
from ._xanes3d import xanes3d_sample
from ._xanes3d import xanes3d_shape

__all__ = [
    "Calibration",
    "Imperfections",
    "MILD_IMPERFECTIONS",
    "SCAN_CALIBRATION",
    "XANES3D_PRESETS",
    "attenuation",
    "ball",
    "fresnel_propagate",
    "holotomo_sample",
    "holotomo_series",
    "holotomo_shape",
    "particle",
    "particle_options",
    "preset_names",
    "project",
    "refractive_index",
    "sample",
    "sample_shape",
    "tilt_series",
    "xanes3d_energies",
    "xanes3d_sample",
    "xanes3d_shape",
]
