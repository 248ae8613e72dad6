"""``read``: detect a file's format by its content and hand it to a backend."""

from __future__ import annotations

from ._backends import backend, guess_engine
from ._common import require_flats as _require_flats

__all__ = ["guess_engine", "read"]


def read(path, *, engine: str | None = None, require_flats: bool = False, **overrides):
    """Read a tilt series from any supported file.

    Parameters
    ----------
    path : str or path-like
        Data Exchange / NXtomo / FXI HDF5, Xradia ``.txrm``/``.xrm``, a
        (multi-page) TIFF or a folder of TIFFs with a sidecar. The format is
        detected from the content, not the extension.
    engine : str, optional
        Force a backend: ``"nxtomo"``, ``"dxchange"``, ``"fxi"``, ``"xradia"``, ``"tiff"``.
    require_flats : bool
        Refuse a file without flat fields (raw counts that cannot be
        normalized), naming the field where they were expected.
    **overrides
        Passed to the reader: ``energy`` (eV), ``pixel_size`` (nm), ``angles``
        (deg), ``lazy`` and format options (``flip_vertical``, ``entry``, ``sidecar``).

    Returns
    -------
    xarray.Dataset
        Tilt series per ``spectrotomo.tilt_series`` with provenance;
        ``attrs["nonfinite_counts"]`` counts NaN/Inf values per array.

    Raises
    ------
    ReaderError
        Naming the file, the field, the value and what was expected.
    """
    ds = backend(engine or guess_engine(path)).open(path, **overrides)
    if require_flats:
        _require_flats(ds)
    return ds
