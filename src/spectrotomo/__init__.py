"""spectrotomo: synchrotron spectro-tomography of battery cathode particles.

Stages (one subpackage each, data flowing one way):
``io`` -> ``recon`` -> ``spectra`` -> ``segmentation``; ``simulate`` makes
ground-truth data. Import is cheap: heavy or optional libraries load inside
the functions that need them.
"""

__version__ = "0.1.0"

from ._model import (  # noqa: E402
    DIMS,
    UNITS,
    ValidationError,
    add_provenance,
    energy_pixel_sizes,
    provenance,
    spatial_map,
    tilt_series,
    validate_map,
    validate_tilt_series,
    validate_volume,
    volume,
)

__all__ = [
    "__version__",
    "DIMS",
    "UNITS",
    "ValidationError",
    "add_provenance",
    "energy_pixel_sizes",
    "provenance",
    "spatial_map",
    "tilt_series",
    "validate_map",
    "validate_tilt_series",
    "validate_volume",
    "volume",
]
