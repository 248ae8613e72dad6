"""The reader backends and format detection (the registry :func:`read` uses).

Backends (xarray-style) each offer ``name``, ``can_open(path) -> bool`` and
``open(path, **overrides) -> xarray.Dataset``; they are tried in order, most
specific first (an NXtomo file may also carry other groups).
"""

from __future__ import annotations

import os

from ._common import OLE_SIGNATURE, fail, head, is_hdf5, open_h5
from ._dxchange import DXchangeBackend
from ._fxi import FXIBackend
from ._nxtomo import NXtomoBackend
from ._tiff import TiffBackend
from ._xradia import XradiaBackend, read_xradia

__all__ = ["BACKENDS", "backend", "guess_engine"]

BACKENDS = (NXtomoBackend(), DXchangeBackend(), FXIBackend(), XradiaBackend(), TiffBackend())


def backend(name: str):
    """The backend called ``name``: ``"nxtomo"``, ``"dxchange"``, ``"fxi"``, ``"xradia"``,
    ``"tiff"``."""
    for candidate in BACKENDS:
        if candidate.name == name:
            return candidate
    raise ValueError(f"read: engine must be one of {[b.name for b in BACKENDS]}; got {name!r}")


def guess_engine(path) -> str:
    """Name of the backend that can open ``path`` (by signature and structure).

    Raises
    ------
    ReaderError
        When no backend recognises the file; a file with an HDF5 signature that
        h5py cannot open is reported as damaged.
    """
    if isinstance(path, (list, tuple)):
        return "tiff"
    if not os.path.exists(path):
        raise FileNotFoundError(f"{os.fspath(path)}: no such file or directory")
    for backend in BACKENDS:
        if backend.can_open(path):
            return backend.name
    if is_hdf5(path):
        with open_h5(path):  # raises a ReaderError for a damaged file
            pass
        fail(path, "<HDF5 layout>", "Data Exchange (/exchange/data), NXtomo (an NXtomo "
             "entry) or FXI (/img_tomo)", "none of these")
    if head(path) == OLE_SIGNATURE:
        read_xradia(path)  # raises a ReaderError naming what is missing or damaged
    fail(path, "<file signature>", "HDF5, OLE2 (Xradia .txrm/.xrm), TIFF or a folder of "
         "TIFFs", "an unrecognised format")
