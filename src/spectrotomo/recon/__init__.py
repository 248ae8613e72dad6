"""spectrotomo.recon stage."""

from ._normalize import normalize
from ._rings import remove_rings

__all__: list[str] = [
    "normalize",
    "remove_rings",
]
