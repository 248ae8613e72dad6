"""Ground-truth simulator: phantoms, forward projection, noise.

Everything here returns physical units and is deterministic for a seed.
"""

from ._geometry import ball
from ._project import project

__all__ = ["ball", "project"]
