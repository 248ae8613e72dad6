"""Ground-truth simulator: phantoms, forward projection, noise.

Everything here returns physical units and is deterministic for a seed.
"""

from ._fresnel import fresnel_propagate
from ._fresnel import holotomo_series
from ._geometry import ball
from ._project import project

__all__ = ["ball", "fresnel_propagate", "holotomo_series", "project"]
