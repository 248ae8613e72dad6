"""spectrotomo.io stage: beamline files -> tilt series (readers) and stores.

Readers are backends behind :func:`read` (format detected from content);
each format's reader is also callable directly.
"""

from ._assemble import read_series
from ._common import ReaderError
from ._dxchange import read_dxchange
from ._fxi import read_fxi
from ._nxtomo import read_nxtomo
from ._read import read
from ._tiff import read_tiff_stack
from ._xradia import read_xradia

__all__ = [
    "ReaderError",
    "read",
    "read_dxchange",
    "read_fxi",
    "read_nxtomo",
    "read_series",
    "read_tiff_stack",
    "read_xradia",
]
