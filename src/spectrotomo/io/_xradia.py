"""Xradia / Zeiss ``.txrm`` / ``.xrm`` (OLE2 compound files) via olefile.

Layout: image ``i`` (1-based) is stream ``ImageData{ceil(i/100)}/Image{i}``
(100 per folder), raw little-endian ``ImageInfo/ImageHeight`` x
``ImageInfo/ImageWidth`` values of ``ImageInfo/DataType`` (5 uint16, 10 float32).
``ImageInfo/PixelSize`` is in um (one value per file as commonly written;
where it holds one value per image and an energy scan's values differ, each
energy keeps its own), ``ImageInfo/Angles`` in degrees,
``ImageInfo/Energy`` in eV (0 means "not recorded"). ``ReferenceData/Image``
is the flat field.

Streams real Zeiss files carry and that are used here: ``Version`` (float32,
3.x or 5.x) and ``exeVersion`` (text) go to attrs; ``ImageInfo/ImagesTaken``
(uint32) is the number of images actually recorded (an aborted scan stores
fewer than ``NoOfImages``); ``ReferenceData/ImageInfo/ImageWidth|ImageHeight``
(version 5) must match the images; ``ReferenceData/ImageInfo/DataType`` or
``ReferenceData/DataType`` give the reference's type; ``ImageInfo/ExpTimes``
and the reference's exposure (``ReferenceData/ImageInfo/ExpTimes|ExpTime`` or
``ReferenceData/ExpTime``) scale the reference to the images' exposure, as
the vendor software and txrm2tiff do (the image nearest 0 deg for a tilt
series, each image for an energy scan).

Vertical flip: Xradia stores rows bottom-up relative to the vendor viewer.
``flip_vertical=False`` (default) keeps the stored row order, as dxchange and
TomoPy read these files, so pixel (row, col) is the file's; ``True`` shows
images as the vendor viewer does. Projections and reference flip together.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ._common import (OLE_SIGNATURE, FrameSource, ReaderError, as_array, fail, finish, head,
                      pick, split_pixel_sizes)

__all__ = ["XradiaBackend", "read_xradia"]

DATA_TYPES = {5: np.dtype("<u2"), 10: np.dtype("<f4")}
_FILENAME_ENERGY = re.compile(r"(\d+(?:[.p]\d+)?)\s*_?(kev|ev)(?![a-z])", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?![\d.])")


def _open_ole(path):
    import olefile

    try:
        return olefile.OleFileIO(os.fspath(path))
    except (OSError, ValueError) as exc:
        fail(path, "<OLE2 header>", "a readable OLE2 compound file", f"unreadable ({exc})")


def _stream(path, ole, name: str, *, required: bool = True) -> bytes | None:
    if not ole.exists(name):
        if required:
            fail(path, name, "a stream in the OLE file")
        return None
    return ole.openstream(name).read()


def _values(path, ole, name: str, fmt: str, *, count=None, required: bool = True):
    raw = _stream(path, ole, name, required=required)
    if raw is None:
        return None
    dtype = np.dtype(fmt)
    n = len(raw) // dtype.itemsize if count is None else count
    if len(raw) < n * dtype.itemsize or n == 0:
        fail(path, name, f"{n} value(s) of {dtype}", f"{len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype, count=n).astype(dtype.newbyteorder("="))


def _dtype(path, code: int, field: str) -> np.dtype:
    if int(code) not in DATA_TYPES:
        fail(path, field, "a known Xradia data type code (5 uint16, 10 float32)", int(code))
    return DATA_TYPES[int(code)]


def image_stream(i: int) -> str:
    """Stream name of 0-based image ``i``."""
    return f"ImageData{i // 100 + 1}/Image{i + 1}"


class XradiaFrames(FrameSource):
    """Images of an Xradia file, read stream by stream on demand."""

    def __init__(self, path, n: int, ny: int, nx: int, dtype, flip: bool):
        super().__init__(path, (n, ny, nx), dtype)
        self.flip = flip

    def _read(self, indices):
        ny, nx = self.shape[1:]
        out = np.empty((indices.size, ny, nx), self.dtype)
        ole = _open_ole(self.path)
        try:
            for k, i in enumerate(indices):  # one OLE stream per image: I/O-bound
                name = image_stream(int(i))
                raw = _stream(self.path, ole, name)
                if len(raw) != out[k].nbytes:
                    fail(self.path, name, f"{out[k].nbytes} bytes ({ny} x {nx} {self.dtype})",
                         f"{len(raw)} bytes")
                out[k] = np.frombuffer(raw, self.dtype).reshape(ny, nx)
        finally:
            ole.close()
        return out[:, ::-1] if self.flip else out


def _motor_energy(path, ole, n: int):
    names = _stream(path, ole, "PositionInfo/AxisNames", required=False)
    if names is None or not ole.exists("PositionInfo/MotorPositions"):
        return None
    axes = [a.strip().lower() for a in names.decode("latin-1").split("\x00") if a.strip()]
    if "energy" not in axes:
        return None
    pos = _values(path, ole, "PositionInfo/MotorPositions", "<f4")
    if pos.size % len(axes):
        fail(path, "PositionInfo/MotorPositions", f"a multiple of {len(axes)} axes", pos.size)
    values = pos.reshape(-1, len(axes))[:, axes.index("energy")]
    return values if values.size == n else np.full(n, values[0])


def energy_from_name(path) -> float | None:
    """Energy in eV from a file name: ``..._8350eV..``, ``..7.1keV..``, or the
    single bare number in 100..100000 (taken as eV); None when absent/ambiguous."""
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    match = _FILENAME_ENERGY.search(stem)
    if match:
        value = float(match.group(1).replace("p", "."))
        return value * (1e3 if match.group(2).lower() == "kev" else 1.0)
    numbers = [float(m) for m in _BARE_NUMBER.findall(stem)]
    numbers = [v for v in numbers if 100 <= v <= 1e5]
    return numbers[0] if len(numbers) == 1 else None


def _energies(path, ole, n: int, override):
    if override is not None:
        return np.full(n, float(override)), "override"
    stored = _values(path, ole, "ImageInfo/Energy", "<f4", required=False)
    if stored is not None and stored.size >= n and np.all(stored[:n] > 0):
        return stored[:n].astype(float), "ImageInfo/Energy"
    motor = _motor_energy(path, ole, n)
    if motor is not None and np.all(motor > 0):
        return motor.astype(float), "PositionInfo/MotorPositions"
    from_name = energy_from_name(path)
    if from_name is not None:
        return np.full(n, from_name), "file name"
    fail(path, "ImageInfo/Energy", "> 0 eV (or an 'Energy' motor position, an energy in the "
         "file name, or energy=... passed to the reader)", "missing everywhere")


def _pixel_sizes(path, ole, n: int, override):
    """Pixel size per image (n,) in nm: the override, ``ImageInfo/PixelSize`` (um;
    one value for the file, or one per image), or None when not recorded."""
    if override is not None:
        return np.full(n, float(override))
    um = _values(path, ole, "ImageInfo/PixelSize", "<f4", required=False)
    if um is None:
        return None
    values = um[:n] if um.size >= n else np.full(n, um[0])
    return values.astype(float) * 1e3


def _first_values(path, ole, names, fmt, **kw):
    """(values, stream name) of the first stream of ``names`` present, else (None, None)."""
    for name in names:
        if ole.exists(name):
            return _values(path, ole, name, fmt, **kw), name
    return None, None


def _exposure_scale(path, ole, n: int, theta, energy_scan: bool):
    """Multiplier(s) taking the reference to the images' exposure, or None when
    either exposure is not recorded (or they agree)."""
    images, _ = _first_values(path, ole, ("ImageInfo/ExpTimes", "ImageInfo/ExpTime"), "<f4")
    ref, ref_name = _first_values(path, ole, ("ReferenceData/ImageInfo/ExpTimes",
                                              "ReferenceData/ImageInfo/ExpTime",
                                              "ReferenceData/ExpTime"), "<f4")
    if images is None or ref is None:
        return None
    if not np.all(np.isfinite(ref)) or ref[0] <= 0:
        fail(path, ref_name, "a positive exposure time (s)", float(ref[0]))
    images = images[:n] if images.size >= n else np.full(n, images[0])
    scale = images.astype(float) / float(ref[0])
    scale = scale if energy_scan else np.array([scale[int(np.argmin(np.abs(theta)))]])
    return None if np.allclose(scale, 1.0, rtol=1e-6, atol=0) else scale


def _reference(path, ole, ny, nx, dtype, flip):
    raw = _stream(path, ole, "ReferenceData/Image", required=False)
    if raw is None:
        return None
    width, _ = _first_values(path, ole, ("ReferenceData/ImageInfo/ImageWidth",), "<u4", count=1)
    height, _ = _first_values(path, ole, ("ReferenceData/ImageInfo/ImageHeight",), "<u4",
                              count=1)
    if width is not None and height is not None and (int(height[0]), int(width[0])) != (ny, nx):
        fail(path, "ReferenceData/ImageInfo/ImageWidth", f"the images' size {nx} x {ny} "
             "(a reference binned differently is not supported)",
             f"{int(width[0])} x {int(height[0])}")
    code, code_name = _first_values(path, ole, ("ReferenceData/ImageInfo/DataType",
                                                "ReferenceData/DataType"), "<u4", count=1)
    ref_dtype = dtype if code is None else _dtype(path, code[0], code_name)
    if len(raw) != ny * nx * ref_dtype.itemsize:
        fail(path, "ReferenceData/Image", f"{ny * nx * ref_dtype.itemsize} bytes "
             f"({ny} x {nx} {ref_dtype})", f"{len(raw)} bytes")
    ref = np.frombuffer(raw, ref_dtype).reshape(1, ny, nx).astype(ref_dtype.newbyteorder("="))
    return ref[:, ::-1] if flip else ref


def _text(path, ole, name: str) -> str | None:
    raw = _stream(path, ole, name, required=False)
    return None if raw is None else raw.decode("latin-1").split("\x00")[0].strip()


def _image_count(path, ole) -> tuple[int, dict]:
    """Images recorded (``ImagesTaken`` when present, else ``NoOfImages``) and the
    file's version information for attrs and provenance."""
    if not ole.exists("ImageInfo/NoOfImages"):
        fail(path, "ImageInfo/NoOfImages", "a stream (Xradia image file)")
    planned = int(_values(path, ole, "ImageInfo/NoOfImages", "<u4", count=1)[0])
    taken = _values(path, ole, "ImageInfo/ImagesTaken", "<u4", count=1, required=False)
    n = planned if taken is None else int(taken[0])
    if n < 1 or n > planned:
        fail(path, "ImageInfo/ImagesTaken", f"1..{planned} (ImageInfo/NoOfImages)", n)
    info = {"images_planned": planned, "images_taken": n}
    version = _values(path, ole, "Version", "<f4", count=1, required=False)
    if version is not None:
        info["xradia_version"] = float(version[0])
    exe = _text(path, ole, "exeVersion")
    if exe:
        info["xradia_software"] = exe
    return n, info


def read_xradia(path, *, energy: float | None = None, pixel_size: float | None = None,
                angles=None, flip_vertical: bool = False, lazy: bool | None = None):
    """Read an Xradia ``.txrm`` (tilt series) or ``.xrm`` (single image) file.

    Parameters
    ----------
    path : str or path-like
        OLE2 compound file written by Xradia/Zeiss TXM software.
    energy : float, optional
        Photon energy in eV. Used when given; otherwise ``ImageInfo/Energy``,
        then an ``Energy`` motor position, then a number in the file name.
    pixel_size : float, optional
        Pixel size in nm; overrides ``ImageInfo/PixelSize`` (stored in um) for
        every image.
    angles : sequence of float, optional
        Angles in degrees; overrides ``ImageInfo/Angles``.
    flip_vertical : bool
        False (default): keep the stored row order (as dxchange/TomoPy do);
        True: flip rows to match the vendor viewer.
    lazy : bool, optional
        True: dask arrays chunked along angle; None: dask above 256 MiB.

    Returns
    -------
    xarray.Dataset
        Tilt series (1, n_images, ny, nx) with the reference image as one flat;
        an energy scan at one angle (several energies, equal angles) becomes
        (n_energies, 1, ny, nx), with ``pixel_size_energy`` when its per-image
        pixel sizes differ.
    """
    ole = _open_ole(path)
    try:
        n, info, ny, nx, dtype = _header(path, ole)
        theta = _angles(path, ole, n, angles)
        energies, energy_source = _energies(path, ole, n, energy)
        sizes = _pixel_sizes(path, ole, n, pixel_size)
        pick(path, "ImageInfo/PixelSize", sizes, None, what="um")
        missing = [image_stream(i) for i in (0, n - 1) if not ole.exists(image_stream(i))]
        if missing:
            fail(path, missing[0], f"a stream ({n} images per ImageInfo/NoOfImages)")
        flats = _reference(path, ole, ny, nx, dtype, flip_vertical)
        scan = np.ptp(energies) > 1e-3
        scale = None if flats is None or theta.size != n else _exposure_scale(
            path, ole, n, theta, scan)
    finally:
        ole.close()
    if scale is not None and not scan:
        flats = (flats * np.float32(scale[0])).astype(np.float32)
    if theta.size != n:
        fail(path, "ImageInfo/Angles", f"one angle per image ({n})", f"{theta.size} angles")
    proj = as_array(XradiaFrames(path, n, ny, nx, dtype, flip_vertical), lazy=lazy, token="xradia")
    params = {"energy_source": energy_source, "pixel_size": float(sizes[0]),
              "reference_exposure_scale": None if scale is None else scale.tolist(), **info,
              "flip_vertical": flip_vertical, "angles_override": angles is not None, "lazy": lazy}
    attrs = {k: v for k, v in info.items() if k.startswith("xradia_")}
    fields = {"flats": "ReferenceData/Image"}
    if not scan:
        return finish(path, angle_field="ImageInfo/Angles", reader="xradia", projections=proj,
                      angles=theta, attrs=attrs, ref_fields=fields,
                      energies=[float(energies[0])], pixel_size=float(sizes[0]), flats=flats,
                      params={"energy": float(energies[0]), **params})
    if np.ptp(theta) > 1e-3:
        fail(path, energy_source, "one energy per file, or an energy scan at one angle",
             f"energies {energies.min()}..{energies.max()} eV at angles "
             f"{theta.min()}..{theta.max()} deg")
    order = np.argsort(energies, kind="stable")
    reference, per_energy = split_pixel_sizes(sizes[order])
    return finish(path, angle_field="ImageInfo/Angles", reader="xradia", attrs=attrs,
                  ref_fields=fields,
                  projections=proj[order][:, None], angles=theta[:1],
                  energies=energies[order], pixel_size=reference, pixel_sizes=per_energy,
                  flats=_scan_flats(flats, scale, order),
                  params={"energies": energies[order], **params})


def _header(path, ole):
    """(image count, count source info, ny, nx, numpy dtype) from ``ImageInfo``."""
    n, info = _image_count(path, ole)
    nx = int(_values(path, ole, "ImageInfo/ImageWidth", "<u4", count=1)[0])
    ny = int(_values(path, ole, "ImageInfo/ImageHeight", "<u4", count=1)[0])
    if n < 1 or nx < 1 or ny < 1:
        fail(path, "ImageInfo", "NoOfImages, ImageWidth, ImageHeight >= 1", (n, nx, ny))
    code = _values(path, ole, "ImageInfo/DataType", "<u4", count=1)[0]
    return n, info, ny, nx, _dtype(path, code, "ImageInfo/DataType")


def _angles(path, ole, n: int, angles) -> np.ndarray:
    """Angles (degrees) per image: the override, else ``ImageInfo/Angles`` (checked)."""
    if angles is None:
        theta = _values(path, ole, "ImageInfo/Angles", "<f4", required=False)
        if theta is not None and theta.size < n:
            fail(path, "ImageInfo/Angles", f"one angle per image ({n})", theta.size)
        theta = None if theta is None else theta[:n].astype(float)
    else:
        theta = np.asarray(angles, dtype=float)
    return pick(path, "ImageInfo/Angles", theta, None, what="degrees")


def _scan_flats(flats, scale, order):
    """Flats (energy, 1, ny, nx) of an energy scan in energy ``order``: the one
    reference image, scaled to each energy's own exposure when known."""
    if flats is None:
        return None
    if scale is not None:
        return (flats[None] * scale[:, None, None, None].astype(np.float32))[order]
    return np.broadcast_to(flats[None], (order.size, *flats.shape))


class XradiaBackend:
    """Reader backend for Xradia ``.txrm``/``.xrm`` (OLE2 with ``ImageInfo``)."""

    name = "xradia"

    def can_open(self, path) -> bool:
        if head(path) != OLE_SIGNATURE:
            return False
        try:
            ole = _open_ole(path)
        except ReaderError:
            return False
        try:
            return ole.exists("ImageInfo/NoOfImages")
        finally:
            ole.close()

    def open(self, path, **overrides):
        return read_xradia(path, **overrides)
