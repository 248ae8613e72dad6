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
from . import _units

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
def unit_factor(kind: str, units, *, path, field: str) -> float:
    """Factor turning a value in ``units`` into eV / nm / deg (``kind``), case-sensitive
    (``meV`` is not ``MeV``; see :mod:`._units`); a refusal names ``path`` and ``field``."""
    try:
        return _units.unit_factor(kind, units)
    except _units.UnitError as exc:
        raise ReaderError(f"{os.fspath(path)}: field {field!r} must be {exc}") from None


#: Largest |angle| that radians can reach in a scan (a full turn either way), with slack.
_RADIAN_LIMIT = 2 * np.pi + 1e-6


def check_angle_units(path, field: str, values, *, declared: bool, how: str) -> None:
    """Refuse angles without a declared unit that look like radians.

    Values are taken as degrees by default; a scan whose angles all lie within
    +-2 pi but that spans a range is more likely in radians (a tilt series
    over at most +-6.3 deg is no tomogram), so it is refused unless the file
    or the caller declared the unit. One angle (or all equal), e.g. a 2-D
    energy scan, is unit-free and passes.

    Parameters
    ----------
    values : array_like
        Angles as stored (not yet converted).
    declared : bool
        Whether a unit was recorded (attribute, sidecar key) or the angles were
        passed by the caller (degrees by the API).
    how : str
        How to declare the unit in this format, for the message.
    """
    values = np.asarray(values, dtype=float)
    if declared or values.size < 2 or not np.all(np.isfinite(values)):
        return
    if np.ptp(values) > 0 and np.max(np.abs(values)) <= _RADIAN_LIMIT:
        fail(path, field, f"angles with a declared unit: all lie within +-2 pi "
             f"({values.min():.4g}..{values.max():.4g}), so they may be radians; {how}",
             "no unit")


def attr_text(value):
    """An HDF5 string attribute as ``str``: a ``str``, ``bytes`` / ``numpy.bytes_``
    (decoded as UTF-8), or a one-element array of them (h5py returns that for an
    attribute written as a list or array, as some beamline writers do); other
    values are returned unchanged."""
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "SUO":
        value = value.reshape(-1)[0]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value) if isinstance(value, np.str_) else value


def h5_units(dset, default_units: str) -> tuple[str, bool]:
    """(``units`` attribute as text, whether it was recorded) of an HDF5 dataset."""
    if "units" in dset.attrs:
        return attr_text(dset.attrs["units"]), True
    return default_units, False


def h5_quantity(path, dset, kind: str, *, default_units: str, field: str) -> np.ndarray:
    """Read a small HDF5 dataset as float64 converted by its ``units`` attribute."""
    units, _ = h5_units(dset, default_units)
    try:
        values = np.asarray(dset[()], dtype=float)
    except (TypeError, ValueError):
        fail(path, field, f"numeric ({kind})", repr(dset[()]))
    return np.atleast_1d(values) * unit_factor(kind, units, path=path,
                                               field=f"{field}.attrs['units']")


#: Sample-plane pixel sizes (nm) a tomogram can have: outside, a unit is wrong
#: (e.g. a size in um or nm stored without units, read as metres).
PIXEL_RANGE_NM = (0.1, 1e6)
#: Photon energies (eV) of any X-ray measurement: outside, a unit is wrong (e.g.
#: eV or keV stored without units, read as joules).
PHOTON_RANGE_EV = (1.0, 1e7)


def check_quantity(path, dset, field: str, value: float, *, default_units: str,
                   limits: tuple[float, float], target: str, what: str, how: str) -> float:
    """Refuse a converted value outside ``limits`` (in ``target`` units), naming the
    field, the stored value, its unit (or that none was recorded and which default
    applied) and how to fix it: a unit error, not a measurement."""
    lo, hi = limits
    if np.isfinite(value) and lo <= value <= hi:
        return value
    units, declared = h5_units(dset, default_units)
    try:
        stored = float(np.atleast_1d(np.asarray(dset[()], dtype=float))[0])
    except (TypeError, ValueError, IndexError):
        stored = value
    unit_note = (f"units {units!r}" if declared else
                 f"no units attribute, so {default_units!r} (the format's default)")
    fail(path, field, f"{what} within {lo:g}-{hi:g} {target}; {how}",
         f"{stored:.6g} with {unit_note} = {value:.6g} {target}")


def h5_angles(path, dset, *, field: str) -> np.ndarray:
    """Angles of an HDF5 dataset in degrees (default unit), refusing undeclared
    radian-like values (:func:`check_angle_units`)."""
    values = h5_quantity(path, dset, "angle", default_units="deg", field=field)
    check_angle_units(path, field, values, declared="units" in dset.attrs,
                      how="add a units attribute ('deg' or 'rad') or pass angles=... in deg")
    return values


def sample_pixel_size(path, group, *, sample, detector, magnification, prefix="") -> float:
    """Sample-plane pixel size in nm from an HDF5 group (lengths default to metres).

    The first of ``sample`` present; else the first of ``detector`` (the
    camera's pixel) divided by the first of ``magnification``. A detector size
    without a magnification is refused naming the fields: it is the camera's
    pixel, ~1000x the sample's in a TXM.
    """
    def first(names):
        return next((n for n in names if n in group), None)

    def length(name):
        return float(h5_quantity(path, group[name], "length", default_units="m",
                                 field=prefix + name)[0])

    def checked(name, size, what):
        return check_quantity(path, group[name], prefix + name, size, default_units="m",
                              limits=PIXEL_RANGE_NM, target="nm",
                              what=what, how="add or correct its units attribute ('m', "
                              "'um', 'nm') or pass pixel_size=... in nm ([input] "
                              "pixel_size_nm)")

    if first(sample) is not None:
        return checked(first(sample), length(first(sample)), "a sample-plane pixel size")
    det, mag = first(detector), first(magnification)
    if det is not None and mag is not None:
        factor = np.atleast_1d(np.asarray(group[mag][()], dtype=float))[0]
        if not np.isfinite(factor) or factor <= 0:
            fail(path, prefix + mag, "a positive magnification", factor)
        return checked(det, length(det) / float(factor),
                       f"a camera pixel that, divided by {prefix + mag} = {factor:g}, "
                       "gives a sample-plane pixel size")
    if det is not None:
        fail(path, prefix + sample[0], f"the sample-plane pixel size: only the detector's "
             f"{prefix + det} = {length(det):.6g} nm is recorded; add {prefix + magnification[0]}"
             " or pass pixel_size=... in nm", "missing")
    fail(path, prefix + sample[0], "the sample-plane pixel size (a length), or pass "
         "pixel_size=... in nm", "missing")


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


def _nonfinite(arr) -> int | None:
    """NaN/Inf values in ``arr``; integers have none; None for a lazy float array
    (counting would read the whole file at open)."""
    if np.dtype(arr.dtype).kind in "biu":
        return 0
    if type(arr).__module__.split(".")[0] == "dask":
        return None
    return int(arr.size - np.count_nonzero(np.isfinite(np.asarray(arr))))


def finish(path, *, reader: str, projections, angles, energies, pixel_size,
           flats=None, darks=None, attrs: Mapping[str, Any] | None = None,
           angle_field: str = "angles", params: Mapping[str, Any] | None = None,
           pixel_sizes=None, ref_fields: Mapping[str, str] | None = None):
    """Check counts, build the tilt series and record provenance (``io.<reader>``).

    ``pixel_sizes`` (n_energies,) nm, optional: per-energy pixel sizes, stored
    as the ``pixel_size_energy`` coordinate. ``ref_fields`` names the file
    fields of the flats and darks (``{"flats": "exchange/data_white"}``): a
    stored but empty reference stack is refused naming it, and
    ``attrs["flats_field"]`` keeps where flats are (or would be) recorded, so
    that :func:`require_flats` can name it. NaN/Inf values are counted per
    array in ``attrs["nonfinite_counts"]`` (None: lazy float data, not counted).
    """
    ref_fields = {"flats": "flats", "darks": "darks", **dict(ref_fields or {})}
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
        if ref is None:
            continue
        if ref.shape[-3] == 0:
            fail(path, ref_fields[name], "at least one frame when the dataset is stored "
                 "(or no dataset)", "0 frames")
        refs[name] = ref if ref.ndim == 4 else _broadcast(ref, projections.shape[0])
    counts = {name: _nonfinite(arr) for name, arr in
              (("projections", projections), *refs.items())}
    attrs = {"source_format": reader, "source_file": os.fspath(path),
             "flats_field": ref_fields["flats"], "nonfinite_counts": counts,
             **dict(attrs or {})}
    try:
        ds = tilt_series(projections, angles=angles, energies=energies,
                         pixel_size=float(pixel_size), pixel_sizes=pixel_sizes, attrs=attrs,
                         where=os.fspath(path), **refs)
    except ValidationError as exc:
        raise ReaderError(str(exc)) from None
    return add_provenance(ds, f"io.read_{reader}", inputs=[os.fspath(path)],
                          **{**dict(params or {}), "nonfinite_counts": counts})


def require_flats(ds) -> None:
    """Refuse a tilt series without flat fields, naming the file and field.

    Raw counts need open-beam frames to become optical density; the error says
    where the reader looked (``attrs["flats_field"]``).

    Raises
    ------
    ReaderError
        When ``ds`` has no ``flats`` variable.
    """
    if "flats" in ds:
        return
    files = ds.attrs.get("source_files") or [ds.attrs.get("source_file", "<tilt series>")]
    fail(files[0], ds.attrs.get("flats_field", "flats"),
         "flat-field (open-beam) frames, needed to normalize raw counts", "missing")
