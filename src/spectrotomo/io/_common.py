"""Shared reader machinery: errors naming file and field, unit conversion,
lazy frame sources and the final translation to the tilt-series model.

Every reader ends in :func:`finish`, so all formats produce the same model
(``spectrotomo.tilt_series``) with the same provenance entry shape.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, Sequence

import numpy as np

from .._model import ValidationError, add_provenance, tilt_series

#: Arrays above this many bytes are read lazily (dask) when ``lazy=None``.
LAZY_BYTES = 256 * 2**20
#: Target size of one dask chunk (whole frames along the angle axis).
CHUNK_BYTES = 32 * 2**20

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


class ReaderError(ValidationError):
    """A file does not hold what its format promises; names file, field and expectation."""


def fail(path, field: str, expected: str, got: Any = "missing") -> None:
    raise ReaderError(f"{os.fspath(path)}: field {field!r} must be {expected}; got {got}")


# --------------------------------------------------------------------------- #
# signatures
# --------------------------------------------------------------------------- #
def head(path, n: int = 8) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except (OSError, TypeError):
        return b""


def is_hdf5(path) -> bool:
    # HDF5 allows a user block of 512 * 2**k bytes before the superblock.
    if not os.path.isfile(path):
        return False
    size = os.path.getsize(path)
    offset = 0
    with open(path, "rb") as fh:
        while offset < min(size, 2**20):
            fh.seek(offset)
            if fh.read(8) == HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def open_h5(path):
    """Open an HDF5 file read-only; a damaged file raises :class:`ReaderError`."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        fail(path, "<HDF5 superblock>", "a complete, readable HDF5 file", f"unreadable ({exc})")


# --------------------------------------------------------------------------- #
# units
# --------------------------------------------------------------------------- #
_ENERGY_EV = {"ev": 1.0, "electronvolt": 1.0, "kev": 1e3, "mev": 1e6,
              "j": 1.0 / 1.602176634e-19, "joule": 1.0 / 1.602176634e-19,
              "joules": 1.0 / 1.602176634e-19}
_LENGTH_NM = {"nm": 1.0, "nanometer": 1.0, "nanometre": 1.0, "m": 1e9, "meter": 1e9,
              "metre": 1e9, "mm": 1e6, "cm": 1e7, "um": 1e3, "µm": 1e3, "μm": 1e3,
              "micron": 1e3, "microns": 1e3, "micrometer": 1e3, "micrometre": 1e3,
              "a": 0.1, "angstrom": 0.1, "å": 0.1, "pm": 1e-3}
_ANGLE_DEG = {"deg": 1.0, "degree": 1.0, "degrees": 1.0, "°": 1.0,
              "rad": 180.0 / np.pi, "radian": 180.0 / np.pi, "radians": 180.0 / np.pi}
_TABLES = {"energy": (_ENERGY_EV, "eV"), "length": (_LENGTH_NM, "nm"),
           "angle": (_ANGLE_DEG, "deg")}


def unit_factor(kind: str, units, *, path, field: str) -> float:
    """Factor turning a value in ``units`` into eV / nm / deg (``kind``)."""
    table, target = _TABLES[kind]
    if isinstance(units, bytes):
        units = units.decode("utf-8", "replace")
    key = str(units).strip().lower().replace(" ", "")
    if key not in table:
        fail(path, f"{field}.attrs['units']", f"a {kind} unit convertible to {target} "
             f"({', '.join(sorted(table))})", repr(units))
    return table[key]


def h5_quantity(path, dset, kind: str, *, default_units: str, field: str) -> np.ndarray:
    """Read a small HDF5 dataset as float64 converted by its ``units`` attribute."""
    units = dset.attrs.get("units", default_units)
    try:
        values = np.asarray(dset[()], dtype=float)
    except (TypeError, ValueError):
        fail(path, field, f"numeric ({kind})", repr(dset[()]))
    return np.atleast_1d(values) * unit_factor(kind, units, path=path, field=field)


_NUMBER_UNIT = re.compile(r"^\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*([^\d\s].*)?$")


def parse_quantity(text, kind: str, *, default_units: str, path, field: str) -> float:
    """Parse ``"21.2 nm"`` / ``"0.0212um"`` / ``"21.2"`` into eV / nm / deg."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    match = _NUMBER_UNIT.match(str(text))
    if not match:
        fail(path, field, f"a number with an optional {kind} unit", repr(text))
    units = match.group(2) or default_units
    return float(match.group(1)) * unit_factor(kind, units, path=path, field=field)


# --------------------------------------------------------------------------- #
# lazy frame sources
# --------------------------------------------------------------------------- #
class FrameSource:
    """Picklable array-like over a stack of 2-D frames, read on demand.

    Subclasses implement ``_read(indices) -> ndarray (k, ny, nx)`` for sorted
    frame indices; dask calls ``__getitem__`` once per chunk, so nothing is
    read until computed and no open file handle lives in the graph.
    """

    def __init__(self, path, shape: tuple[int, int, int], dtype):
        self.path = os.fspath(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = 3

    def _read(self, indices: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        if first is Ellipsis:
            first, rest = slice(None), ()
        indices = np.arange(self.shape[0])[first]
        scalar = np.ndim(indices) == 0
        frames = self._read(np.atleast_1d(indices))
        frames = frames[(slice(None), *rest)]
        return frames[0] if scalar else frames

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class H5Frames(FrameSource):
    """Frames ``frames`` (default all) of HDF5 dataset ``name`` in ``path``.

    ``order`` gives the stored axes of (frame, y, x), e.g. ``(1, 0, 2)`` for a
    dataset stored (y, frame, x); frames are read along that axis.
    """

    def __init__(self, path, name: str, frames: Sequence[int] | None = None,
                 order: tuple[int, int, int] = (0, 1, 2)):
        with open_h5(path) as fh:
            if name not in fh:
                fail(path, name, "a 3-D dataset (frames, y, x)")
            dset = fh[name]
            if dset.ndim != 3:
                fail(path, name, "a 3-D stack (n_frames, ny, nx)", f"{dset.ndim}-D {dset.shape}")
            n_all, ny, nx = (dset.shape[a] for a in order)
            dtype = dset.dtype
        self.name = name
        self.order = tuple(int(a) for a in order)
        self.frames = np.arange(n_all) if frames is None else np.asarray(frames, dtype=np.int64)
        super().__init__(path, (self.frames.size, ny, nx), dtype)

    def _read(self, indices):
        rows = self.frames[indices]
        if rows.size == 0:
            return np.empty((0, *self.shape[1:]), self.dtype)
        contiguous = rows.size == rows[-1] - rows[0] + 1 and np.all(np.diff(rows) == 1)
        sel = slice(int(rows[0]), int(rows[-1]) + 1) if contiguous else rows
        key = [slice(None)] * 3
        key[self.order[0]] = sel
        try:
            with open_h5(self.path) as fh:
                data = np.asarray(fh[self.name][tuple(key)])
        except OSError as exc:  # damaged chunk after a readable header
            fail(self.path, self.name, "readable data", f"a read error ({exc})")
        return data.transpose(self.order) if self.order != (0, 1, 2) else data


def as_array(source: FrameSource, *, lazy: bool | None, token: str):
    """Return ``source`` as a numpy array, or a dask array chunked along frames."""
    nbytes = int(np.prod(source.shape)) * source.dtype.itemsize
    if lazy is None:
        lazy = nbytes > LAZY_BYTES
    if not lazy:
        return source[:]
    import dask.array as da
    from dask.base import tokenize

    frame_bytes = max(1, nbytes // max(1, source.shape[0]))
    per_chunk = int(max(1, min(source.shape[0], CHUNK_BYTES // frame_bytes)))
    mtime = os.path.getmtime(source.path) if os.path.exists(source.path) else 0
    # Hash every attribute (frame index arrays by content, not by a summarised repr).
    name = f"{token}-{tokenize(type(source).__name__, mtime, *vars(source).values())}"
    return da.from_array(source, chunks=(per_chunk, -1, -1), name=name,
                         meta=np.empty((0, 0, 0), source.dtype))


# --------------------------------------------------------------------------- #
# overrides and the final model
# --------------------------------------------------------------------------- #
def pick(path, field: str, from_file, override, *, what: str):
    """Use ``override`` when given, else the file's value, else fail naming ``field``."""
    if override is not None:
        return override
    if from_file is None:
        fail(path, field, f"present ({what}), or passed as an override", "missing")
    return from_file


def single_energy(path, field: str, energies: np.ndarray) -> float:
    """One energy per file: every stored value must agree (to 1 meV)."""
    energies = np.atleast_1d(np.asarray(energies, dtype=float))
    if energies.size == 0 or not np.all(np.isfinite(energies)):
        fail(path, field, "a finite energy", energies.tolist()[:8])
    if np.ptp(energies) > 1e-3:
        fail(path, field, "one energy for the whole file (use read_series for several)",
             f"{energies.size} values from {energies.min()} to {energies.max()} eV")
    return float(energies[0])


def split_pixel_sizes(sizes) -> tuple[float, np.ndarray | None]:
    """(reference, per-energy sizes or None) from one pixel size per energy, nm.

    Sizes that differ recorded the optics' magnification per energy: all are
    kept and the reference is the first (lowest energy). Equal sizes carry no
    magnification information (often a nominal value): the reference only, so
    that registration estimates the magnification.
    """
    sizes = np.atleast_1d(np.asarray(sizes, dtype=float))
    if np.allclose(sizes, sizes[0], rtol=1e-6, atol=0):
        return float(sizes[0]), None
    return float(sizes[0]), sizes


def _broadcast(ref, n_energies: int):
    """(frames, y, x) shared by every energy -> (energies, frames, y, x), lazily."""
    if type(ref).__module__.split(".")[0] == "dask":
        import dask.array as da

        return da.broadcast_to(ref[None], (n_energies, *ref.shape))
    return np.broadcast_to(ref[None], (n_energies, *ref.shape))


def finish(path, *, reader: str, projections, angles, energies, pixel_size,
           flats=None, darks=None, attrs: Mapping[str, Any] | None = None,
           angle_field: str = "angles", params: Mapping[str, Any] | None = None,
           pixel_sizes=None):
    """Check counts, build the tilt series and record provenance (``io.<reader>``).

    ``pixel_sizes`` (n_energies,) nm, optional: per-energy pixel sizes, stored
    as the ``pixel_size_energy`` coordinate.
    """
    angles = np.atleast_1d(np.asarray(angles, dtype=float))
    if projections.ndim == 3:
        projections = projections[None]
    if angles.size != projections.shape[-3]:
        fail(path, angle_field, f"one angle per projection frame ({projections.shape[-3]})",
             f"{angles.size} angles")
    if not np.all(np.isfinite(angles)):
        fail(path, angle_field, "finite degrees", angles.tolist()[:8])
    if pixel_size is None or not np.isfinite(pixel_size) or pixel_size <= 0:
        fail(path, "pixel_size", "a positive size in nm", pixel_size)
    refs = {}
    for name, ref in (("flats", flats), ("darks", darks)):
        if ref is not None and ref.shape[-3] > 0:
            refs[name] = ref if ref.ndim == 4 else _broadcast(ref, projections.shape[0])
    attrs = {"source_format": reader, "source_file": os.fspath(path), **dict(attrs or {})}
    try:
        ds = tilt_series(projections, angles=angles, energies=energies,
                         pixel_size=float(pixel_size), pixel_sizes=pixel_sizes, attrs=attrs,
                         where=os.fspath(path), **refs)
    except ValidationError as exc:
        raise ReaderError(str(exc)) from None
    return add_provenance(ds, f"io.read_{reader}", inputs=[os.fspath(path)], **dict(params or {}))
