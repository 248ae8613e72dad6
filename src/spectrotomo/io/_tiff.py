"""TIFF stacks: one file per angle (a folder or a list of files) or one
multi-page file, described by a small JSON or TOML sidecar.

Sidecar keys (parsed with ``json``/``tomllib`` only, never evaluated):
``angles`` (list; may be left out for an energy scan with one frame per
energy: one angle, 0 deg), ``energy`` (number) or ``energies`` (list),
``pixel_size`` (number) or ``pixel_sizes`` (list, one per energy in the order
of ``energies``: zone-plate magnification changes with energy); units
``angle_units`` (default ``"deg"``; angles that all lie within +-2 pi are
refused unless it is given), ``energy_units`` (``"eV"``), ``pixel_size_units``
(``"nm"``), each also spelled after its list (``energies_units``,
``angles_units``, ``pixel_sizes_units``), case-sensitive (``meV`` is not
``MeV``). Without a sidecar pixel size, an OME-TIFF's ``PhysicalSizeX`` (+
``PhysicalSizeXUnit``, default um) or an ImageJ TIFF's ``XResolution`` and
``unit`` give it. Optional
``flats``/``darks`` (a file name or list of file names, relative to the
sidecar) and ``projections`` (file names; default: every TIFF in the folder
that is not a flat or dark, in natural order). Several energies: frames are energy-major
(``n_energies * n_angles`` frames).

Sidecar lookup: ``sidecar=`` if given; for ``stack.tif`` the files
``stack.json`` / ``stack.toml``; for a folder ``metadata.json|toml``,
``sidecar.json|toml``, ``<folder>.json|toml`` or its only JSON/TOML file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from ._common import (TIFF_SIGNATURES, FrameSource, as_array, check_angle_units, fail, finish,
                      head, split_pixel_sizes, unit_factor)

__all__ = ["TiffBackend", "read_tiff_stack", "tiff_pixel_size"]

_TIFF_EXT = (".tif", ".tiff")


def _natural(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _is_tiff(path) -> bool:
    return head(path, 4) in TIFF_SIGNATURES


class TiffFrames(FrameSource):
    """Pages of one or several TIFF files, read on demand (``entries``: (file, page))."""

    def __init__(self, path, entries, ny, nx, dtype):
        super().__init__(path, (len(entries), ny, nx), dtype)
        self.files = sorted({f for f, _ in entries})
        self.entries = np.asarray([(self.files.index(f), p) for f, p in entries], dtype=np.int64)

    def _read(self, indices):
        import tifffile

        out = np.empty((indices.size, *self.shape[1:]), self.dtype)
        chosen = self.entries[indices]
        for file_id in np.unique(chosen[:, 0]):  # one open per file, its pages at once
            rows = np.flatnonzero(chosen[:, 0] == file_id)
            pages = chosen[rows, 1].tolist()
            data = tifffile.imread(self.files[file_id], key=pages if len(pages) > 1 else pages[0])
            out[rows] = np.reshape(data, (len(rows), *self.shape[1:]))
        return out


def _load_sidecar(path: Path):
    if path.suffix.lower() == ".toml":
        import tomllib

        with open(path, "rb") as fh:
            return tomllib.load(fh)
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _find_sidecar(path: Path) -> Path | None:
    if path.is_dir():
        names = [path / f"{stem}{ext}" for stem in ("metadata", "sidecar", path.name)
                 for ext in (".json", ".toml")]
        found = [p for p in names if p.is_file()]
        if found:
            return found[0]
        others = sorted(p for p in path.iterdir() if p.suffix.lower() in (".json", ".toml"))
        return others[0] if len(others) == 1 else None
    for ext in (".json", ".toml"):
        if path.with_suffix(ext).is_file():
            return path.with_suffix(ext)
    return None


def _pages(files, where):
    """(file, page) entries and the common frame shape/dtype of ``files``."""
    import tifffile

    entries, shape, dtype = [], None, None
    for f in files:
        if not _is_tiff(f):
            fail(f, "<file signature>", "a TIFF file", head(f, 4))
        with tifffile.TiffFile(f) as tif:
            for k, page in enumerate(tif.pages):
                if len(page.shape) != 2:
                    fail(f, f"page {k}", "a 2-D grey-level image", page.shape)
                if shape is None:
                    shape, dtype = page.shape, page.dtype
                elif page.shape != shape:
                    fail(f, f"page {k}", f"shape {shape} like {files[0]}", page.shape)
                entries.append((os.fspath(f), k))
    if not entries:
        fail(where, "projections", "at least one TIFF frame", "none")
    return entries, shape, dtype


def _names(value, base: Path) -> list[Path]:
    if value is None:
        return []
    names = [value] if isinstance(value, str) else list(value)
    return [base / n for n in names]


#: The singular of each list key, whose ``<singular>_units`` also names the list's unit.
_SINGULAR = {"energies": "energy", "angles": "angle", "pixel_sizes": "pixel_size"}


def _units_key(meta, key, sidecar) -> str | None:
    """The sidecar key holding ``key``'s unit (``energies`` -> ``energy_units``)."""
    names = [f"{key}_units"] + ([f"{_SINGULAR[key]}_units"] if key in _SINGULAR else [])
    present = [n for n in names if n in meta]
    if len(present) > 1 and meta[present[0]] != meta[present[1]]:
        fail(sidecar, present[0], f"the same unit as {present[1]} ({meta[present[1]]!r})",
             repr(meta[present[0]]))
    return present[0] if present else None


def _quantity(meta, key, kind, default_units, sidecar):
    units_key = _units_key(meta, key, sidecar)
    units = meta[units_key] if units_key else default_units
    factor = unit_factor(kind, units, path=sidecar, field=units_key or f"{key}_units")
    try:
        return np.atleast_1d(np.asarray(meta[key], dtype=float)) * factor
    except (TypeError, ValueError):
        fail(sidecar, key, f"numbers ({kind})", repr(meta[key]))


def _sidecar_pixel_sizes(meta, label, n_energies: int, first_file) -> np.ndarray:
    """Pixel size per energy (nm) from ``pixel_sizes`` or the one ``pixel_size``,
    else the TIFF's own physical size (OME or ImageJ)."""
    if "pixel_sizes" in meta:
        sizes = _quantity(meta, "pixel_sizes", "length", "nm", label)
        if sizes.size != n_energies:
            fail(label, "pixel_sizes", f"one size per energy ({n_energies})", sizes.size)
        return sizes
    if "pixel_size" in meta:
        return np.full(n_energies, _quantity(meta, "pixel_size", "length", "nm", label)[0])
    embedded = tiff_pixel_size(first_file)
    if embedded is None:
        fail(label, "pixel_size", "nm in the sidecar (or pixel_size=..., or a physical "
             "size in the TIFF: OME PhysicalSizeX or ImageJ resolution + unit)")
    return np.full(n_energies, embedded)


def _ome_pixel_size(path, xml: str) -> float | None:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        fail(path, "ImageDescription (OME-XML)", "well-formed XML", f"unparsable ({exc})")
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "Pixels" and "PhysicalSizeX" in element.attrib:
            units = element.attrib.get("PhysicalSizeXUnit", "µm")  # the OME schema's default
            try:
                value = float(element.attrib["PhysicalSizeX"])
            except ValueError:
                fail(path, "OME Pixels/@PhysicalSizeX", "a number",
                     repr(element.attrib["PhysicalSizeX"]))
            return value * unit_factor("length", units, path=path,
                                       field="OME Pixels/@PhysicalSizeXUnit")
    return None


def _imagej_pixel_size(path, tif) -> float | None:
    units = (tif.imagej_metadata or {}).get("unit")
    tag = tif.pages[0].tags.get("XResolution")
    if units is None or tag is None:
        return None
    numerator, denominator = tag.value
    if numerator <= 0 or denominator <= 0:
        return None
    # ImageJ escapes the micro sign in its description text.
    units = {"micron": "um", "\\u00B5m": "µm"}.get(str(units), str(units))
    return denominator / numerator * unit_factor("length", units, path=path,
                                                 field="ImageJ unit")


def tiff_pixel_size(path) -> float | None:
    """Pixel size (nm) recorded in a TIFF: OME ``PhysicalSizeX`` or ImageJ
    ``XResolution`` (pixels per ``unit``); None when neither is recorded."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if tif.is_ome and tif.ome_metadata:
            return _ome_pixel_size(path, tif.ome_metadata)
        if tif.is_imagej:
            return _imagej_pixel_size(path, tif)
    return None


def _angles(meta, override, label, *, n_frames: int, n_energies: int) -> np.ndarray:
    """Angles in degrees: the override, the sidecar's (unit checked), or one
    unrecorded angle (0 deg) for an energy scan with one frame per energy."""
    if override is not None:
        return np.atleast_1d(np.asarray(override, dtype=float))
    if "angles" not in meta:
        if n_frames == n_energies:
            return np.zeros(1)
        fail(label, "angles", "a list of degrees in the sidecar (or angles=...)")
    angles = _quantity(meta, "angles", "angle", "deg", label)
    check_angle_units(label, "angles", angles, declared=_units_key(meta, "angles", label)
                      is not None, how="add angle_units = \"deg\" or \"rad\" to the sidecar")
    return angles


def read_tiff_stack(path, *, sidecar=None, energy: float | None = None,
                    pixel_size: float | None = None, angles=None, lazy: bool | None = None):
    """Read a TIFF tilt series (folder, list of files or multi-page file) and its sidecar.

    Parameters
    ----------
    path : path-like or sequence of path-like
        A folder of TIFFs (one per angle), a multi-page TIFF, or a list of files.
    sidecar : path-like, optional
        JSON/TOML file with ``angles``, ``energy``/``energies``,
        ``pixel_size``/``pixel_sizes``.
    energy, pixel_size, angles : optional
        Overrides in eV, nm and degrees (``pixel_size`` replaces every
        energy's pixel size).
    lazy : bool, optional
        True: dask arrays chunked along angle; None: dask above 256 MiB.

    Returns
    -------
    xarray.Dataset
        Tilt series (n_energies, n_angles, ny, nx) with flats/darks when listed;
        differing ``pixel_sizes`` give the coordinate ``pixel_size_energy``.
    """
    files, where, sidecar, meta, base = _locate(path, sidecar)
    flat_files, dark_files = _names(meta.get("flats"), base), _names(meta.get("darks"), base)
    if files is None:
        files = _projection_files(where, meta, base, skip=flat_files + dark_files)
    entries, (ny, nx), dtype = _pages(files, where)
    label = os.fspath(sidecar) if sidecar is not None else os.fspath(where)
    energies = _energies(meta, energy, label)
    angles = _angles(meta, angles, label, n_frames=len(entries), n_energies=energies.size)
    sizes = (np.full(energies.size, float(pixel_size)) if pixel_size is not None
             else _sidecar_pixel_sizes(meta, label, energies.size, files[0]))
    if len(entries) != energies.size * angles.size:
        fail(where, "angles", f"one angle per frame per energy ({len(entries)} frames, "
             f"{energies.size} energies)", f"{angles.size} angles")
    frames = as_array(TiffFrames(where, entries, ny, nx, dtype), lazy=lazy, token="tiff")
    proj = frames.reshape(energies.size, angles.size, ny, nx)
    order = np.argsort(energies, kind="stable")
    if np.any(order != np.arange(order.size)):
        proj, energies = proj[order], energies[order]
    pixel_size, per_energy = split_pixel_sizes(sizes[order])
    refs = _references({"flats": flat_files, "darks": dark_files}, label, (ny, nx), lazy)
    return finish(where, reader="tiff_stack", projections=proj, angles=angles,
                  energies=energies, pixel_size=pixel_size, pixel_sizes=per_energy, **refs,
                  ref_fields={name: f"{name} (a key of the sidecar {label})"
                              for name in ("flats", "darks")},
                  attrs={"sidecar": label},
                  params={"sidecar": label, "pixel_size": pixel_size, "lazy": lazy,
                          "n_files": len(files)})


def _locate(path, sidecar):
    """(projection files or None for a folder/multi-page file, the path errors name,
    sidecar path or None, sidecar contents, folder its relative names start from)."""
    if isinstance(path, (list, tuple)):
        files = [Path(p) for p in path]
        root, where = files[0].parent, files[0]
    else:
        root = where = Path(path)
        files = None
    if sidecar is None:
        sidecar = _find_sidecar(root) if files is None else (
            _find_sidecar(files[0]) or _find_sidecar(files[0].parent))
    sidecar = None if sidecar is None else Path(sidecar)
    meta = _load_sidecar(sidecar) if sidecar is not None else {}
    base = sidecar.parent if sidecar is not None else (root if root.is_dir() else root.parent)
    return files, where, sidecar, meta, base


def _projection_files(root: Path, meta: dict, base: Path, *, skip) -> list[Path]:
    """A folder's projections: the sidecar's ``projections`` list, else its TIFFs in
    natural order less the flats and darks; a file: itself."""
    if not root.is_dir():
        return [root]
    listed = _names(meta.get("projections"), base)
    skip = {p.resolve() for p in skip}
    return listed or sorted((p for p in root.iterdir() if p.suffix.lower() in _TIFF_EXT
                             and p.resolve() not in skip), key=lambda p: _natural(p.name))


def _energies(meta: dict, energy, label: str) -> np.ndarray:
    """Energies (eV): the override, else the sidecar's ``energies``/``energy``."""
    if energy is not None:
        return np.atleast_1d(float(energy))
    if "energies" in meta or "energy" in meta:
        return _quantity(meta, "energies" if "energies" in meta else "energy", "energy",
                         "eV", label)
    fail(label, "energy", "eV in the sidecar (or energy=...)")


def _references(ref_files: dict, label: str, shape, lazy) -> dict:
    """``{"flats": frames, "darks": frames}`` of the listed reference files (of the
    projections' ``shape``)."""
    refs = {}
    for name, files in ref_files.items():
        if files:
            entries, ref_shape, dtype = _pages(files, label)
            if ref_shape != tuple(shape):
                fail(files[0], name, f"frames of shape {tuple(shape)}", ref_shape)
            refs[name] = as_array(TiffFrames(files[0], entries, *shape, dtype),
                                  lazy=lazy, token="tiff")
    return refs


class TiffBackend:
    """Reader backend for TIFF files and folders of TIFFs."""

    name = "tiff"

    def can_open(self, path) -> bool:
        if isinstance(path, (list, tuple)):
            return bool(path) and all(_is_tiff(p) for p in path)
        path = Path(path)
        if path.is_dir():
            return any(_is_tiff(p) for p in path.iterdir() if p.suffix.lower() in _TIFF_EXT)
        return _is_tiff(path)

    def open(self, path, **overrides):
        return read_tiff_stack(path, **overrides)
