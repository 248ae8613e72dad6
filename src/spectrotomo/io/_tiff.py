"""TIFF stacks: one file per angle (a folder or a list of files) or one
multi-page file, described by a small JSON or TOML sidecar.

Sidecar keys (parsed with ``json``/``tomllib`` only, never evaluated):
``angles`` (list), ``energy`` (number) or ``energies`` (list), ``pixel_size``
(number) or ``pixel_sizes`` (list, one per energy in the order of
``energies``: zone-plate magnification changes with energy); units
``angle_units`` (default ``"deg"``), ``energy_units`` (``"eV"``),
``pixel_size_units`` (``"nm"``, also for ``pixel_sizes``); optional
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

from ._common import (TIFF_SIGNATURES, FrameSource, as_array, fail, finish, head,
                      split_pixel_sizes, unit_factor)

__all__ = ["TiffBackend", "read_tiff_stack"]

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


def _quantity(meta, key, kind, default_units, sidecar):
    units = meta.get(f"{key}_units", meta.get(f"{key.rstrip('s')}_units", default_units))
    factor = unit_factor(kind, units, path=sidecar, field=f"{key}_units")
    try:
        return np.atleast_1d(np.asarray(meta[key], dtype=float)) * factor
    except (TypeError, ValueError):
        fail(sidecar, key, f"numbers ({kind})", repr(meta[key]))


def _sidecar_pixel_sizes(meta, label, n_energies: int) -> np.ndarray:
    """Pixel size per energy (nm) from ``pixel_sizes`` or the one ``pixel_size``."""
    if "pixel_sizes" in meta:
        sizes = _quantity(meta, "pixel_sizes", "length", "nm", label)
        if sizes.size != n_energies:
            fail(label, "pixel_sizes", f"one size per energy ({n_energies})", sizes.size)
        return sizes
    if "pixel_size" not in meta:
        fail(label, "pixel_size", "nm in the sidecar (or pixel_size=...)")
    return np.full(n_energies, _quantity(meta, "pixel_size", "length", "nm", label)[0])


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
    if isinstance(path, (list, tuple)):
        files = [Path(p) for p in path]
        root = files[0].parent
        where = files[0]
    else:
        root = Path(path)
        where = root
        files = None
    if sidecar is None:
        sidecar = _find_sidecar(root) if files is None else (
            _find_sidecar(files[0]) or _find_sidecar(files[0].parent))
    sidecar = None if sidecar is None else Path(sidecar)
    meta = _load_sidecar(sidecar) if sidecar is not None else {}
    base = sidecar.parent if sidecar is not None else (root if root.is_dir() else root.parent)
    flat_files, dark_files = _names(meta.get("flats"), base), _names(meta.get("darks"), base)
    if files is None:
        if root.is_dir():
            listed = _names(meta.get("projections"), base)
            skip = {p.resolve() for p in flat_files + dark_files}
            files = listed or sorted((p for p in root.iterdir() if p.suffix.lower() in _TIFF_EXT
                                      and p.resolve() not in skip), key=lambda p: _natural(p.name))
        else:
            files = [root]
    entries, (ny, nx), dtype = _pages(files, where)
    label = os.fspath(sidecar) if sidecar is not None else os.fspath(where)
    if angles is None:
        if "angles" not in meta:
            fail(label, "angles", "a list of degrees in the sidecar (or angles=...)")
        angles = _quantity(meta, "angles", "angle", "deg", label)
    angles = np.atleast_1d(np.asarray(angles, dtype=float))
    if energy is not None:
        energies = np.atleast_1d(float(energy))
    elif "energies" in meta or "energy" in meta:
        energies = _quantity(meta, "energies" if "energies" in meta else "energy", "energy",
                             "eV", label)
    else:
        fail(label, "energy", "eV in the sidecar (or energy=...)")
    sizes = (np.full(energies.size, float(pixel_size)) if pixel_size is not None
             else _sidecar_pixel_sizes(meta, label, energies.size))
    if len(entries) != energies.size * angles.size:
        fail(where, "angles", f"one angle per frame per energy ({len(entries)} frames, "
             f"{energies.size} energies)", f"{angles.size} angles")
    frames = as_array(TiffFrames(where, entries, ny, nx, dtype), lazy=lazy, token="tiff")
    proj = frames.reshape(energies.size, angles.size, ny, nx)
    order = np.argsort(energies, kind="stable")
    if np.any(order != np.arange(order.size)):
        proj, energies = proj[order], energies[order]
    pixel_size, per_energy = split_pixel_sizes(sizes[order])
    refs = {}
    for name, ref_files in (("flats", flat_files), ("darks", dark_files)):
        if ref_files:
            ref_entries, shape, ref_dtype = _pages(ref_files, label)
            if shape != (ny, nx):
                fail(ref_files[0], name, f"frames of shape {(ny, nx)}", shape)
            refs[name] = as_array(TiffFrames(ref_files[0], ref_entries, ny, nx, ref_dtype),
                                  lazy=lazy, token="tiff")
    return finish(where, reader="tiff_stack", projections=proj, angles=angles,
                  energies=energies, pixel_size=pixel_size, pixel_sizes=per_energy, **refs,
                  attrs={"sidecar": label},
                  params={"sidecar": label, "pixel_size": pixel_size, "lazy": lazy,
                          "n_files": len(files)})


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
