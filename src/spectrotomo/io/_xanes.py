"""2-D XANES energy scans (one image per energy at one angle) in any supported
format, read into the layout the ``valence`` step consumes (``raw_xanes``)."""

from __future__ import annotations

import os

from .._model import add_provenance
from ._common import fail
from ._common import require_flats as _require_flats
from ._series import expand_paths, read_series

__all__ = ["read_xanes"]


def read_xanes(paths, *, engine: str | None = None, require_flats: bool = True,
               **overrides):
    """Read a 2-D XANES energy scan into a tilt series with one angle.

    Parameters
    ----------
    paths : path-like, glob pattern, or a sequence of them
        One file holding the whole scan -- an Xradia energy-scan ``.xrm``/
        ``.txrm`` (images at one angle, ``ImageInfo/Energy`` per image), a
        TIFF stack whose sidecar lists ``energies`` (one frame per energy;
        ``angles`` may be left out), an NXtomo file with one entry per energy
        -- or one file per energy in any format (e.g. ``"xanes/*_eV.xrm"``),
        combined with :func:`read_series`.
    engine : str, optional
        Force a reader; default: detect per file.
    require_flats : bool
        Refuse a scan without flat fields (default: the ``valence`` step
        normalizes raw counts with them), naming the file and field.
    **overrides
        Passed to every reader (``pixel_size=``, ``lazy=``, ``sidecar=`` ...).

    Returns
    -------
    xarray.Dataset
        ``projections`` (energy, angle=1, y, x) in counts, ``flats`` (energy,
        flat, y, x) and ``darks`` when recorded, energies in eV ascending,
        ``pixel_size_energy`` when the recorded pixel sizes differ -- the
        layout of the simulator's ``raw_xanes`` group.

    Raises
    ------
    ReaderError
        Naming the file and field: fewer than two energies, several angles
        (a 3-D XANES tilt series is read with :func:`read_series`), missing
        flats (``require_flats``), or any inconsistency between files.
    """
    files = expand_paths(paths)
    ds = read_series(files, dim="energy", engine=engine, **overrides)
    where = files[0] if len(files) == 1 else os.path.dirname(os.path.abspath(files[0]))
    if ds.sizes["angle"] != 1:
        fail(where, "angles", "one angle (a 2-D energy scan; read a 3-D XANES tilt series "
             "with read_series)", f"{ds.sizes['angle']} angles")
    if ds.sizes["energy"] < 2:
        fail(where, "energy", "at least two energies (an energy scan)",
             f"{ds['energy'].values.tolist()} eV")
    if require_flats:
        _require_flats(ds)
    return add_provenance(ds, "io.read_xanes", inputs=files, require_flats=require_flats)
