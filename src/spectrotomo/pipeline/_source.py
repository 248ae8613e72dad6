"""The ``[input] path`` of a run, parsed once: a simulator preset or files.

Inputs are ``simulate:PRESET`` (:func:`spectrotomo.simulate.sample`; the
``xanes3d`` presets: :func:`spectrotomo.simulate.xanes3d_sample`),
``simulate-holo:PRESET`` (:func:`spectrotomo.simulate.holotomo_sample`), a sample
store (``.zarr`` directory with a ``raw`` group), one beamline file, or a set of
files -- a list of paths and/or glob patterns, one tilt series per energy (or per
propagation distance) read by :func:`spectrotomo.io.read_series`.  Every module of
the pipeline asks this one what an input is instead of testing prefixes itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Source", "parse_source", "xanes_paths", "SIMULATE", "SIMULATE_HOLO"]

#: ``input.path`` prefix of a simulated dual-energy/XANES sample, e.g. "simulate:small".
SIMULATE = "simulate:"
#: ``input.path`` prefix of a simulated holotomography scan, e.g. "simulate-holo:small".
SIMULATE_HOLO = "simulate-holo:"
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Source:
    """One parsed input: ``kind`` is "simulate", "simulate-holo", "store", "file" or
    "files"; ``target`` the preset name (simulated), the path (store, file) or the
    first path or pattern (files); ``paths`` every listed path or pattern (files)."""

    kind: str
    target: str
    paths: tuple[str, ...] = ()

    @property
    def simulated(self) -> bool:
        return self.kind in ("simulate", "simulate-holo")

    @property
    def label(self) -> str:
        """A short name for file names: the preset, the file's stem, or for a set of
        files the common start of their names (else their folder's name)."""
        if self.simulated:
            return self.target
        if self.kind != "files":
            return Path(self.target).stem
        stems = [Path(_GLOB_CHARS.split(p)[0] or "x").name for p in self.paths]
        common = os.path.commonprefix(stems).rstrip("0123456789_-. ")  # tomo_525, tomo_555
        return common or Path(self.paths[0]).parent.name or "files"

    def files(self) -> list[str]:
        """The files of a "file"/"files" input, patterns expanded (natural order).

        Raises FileNotFoundError naming a missing path or a pattern without match.
        """
        from .. import io

        if self.kind not in ("file", "files"):
            raise ValueError(f"[input] path {self.target!r} is a {self.kind} input, not files")
        return io.expand_paths(list(self.paths or (self.target,)))

    def check_preset(self) -> None:
        """Raise ValueError naming ``[input] path`` when the preset does not exist."""
        from ..simulate import XANES3D_PRESETS, preset_names

        names = [n for n in preset_names()
                 if self.kind == "simulate" or n not in XANES3D_PRESETS]
        if self.simulated and self.target not in names:
            raise ValueError(f"[input] path: unknown simulator preset {self.target!r}; expected "
                             f"one of {names}")

    def shape(self, n_angles_holo: int = 181, *,
              angles: str = "same") -> tuple[tuple[int, int, int, int], int]:
        """``((energy, angle, y, x), n_xanes)`` the input will give (plans before reading).

        Files are opened lazily (headers, no pixel data beyond the readers' own
        checks); crop and binning are not applied here.
        """
        from .. import io
        from ..simulate import holotomo_shape, sample_shape

        self.check_preset()
        if self.kind == "simulate-holo":
            return holotomo_shape(self.target, n_angles_holo), 0
        if self.kind == "simulate":
            return sample_shape(self.target)
        if self.kind == "store":
            sizes = io.read_group(self.target, "raw")["projections"].sizes
        else:
            files = self.files()
            # one file: its own energies; several: one energy (or distance) each
            sizes = io.read_series(files, lazy=True, angles=angles)["projections"].sizes
        return tuple(sizes.get(d, 1) for d in ("energy", "angle", "y", "x")), 0


def parse_source(path) -> Source:
    """Parse ``[input] path`` (or a batch manifest's ``input``) into a :class:`Source`.

    ``path`` is a string (a preset, a store, a file or a glob pattern) or a list
    of paths/patterns (one list entry is the same as that entry alone).
    """
    if isinstance(path, (list, tuple)):
        items = [os.fspath(p) for p in path]
        if not items:
            raise ValueError("[input] path: an empty list names no file")
        if len(items) > 1:
            return Source("files", items[0], tuple(items))
        path = items[0]
    text = os.fspath(path)
    if text.startswith(SIMULATE_HOLO):
        return Source("simulate-holo", text[len(SIMULATE_HOLO):])
    if text.startswith(SIMULATE):
        return Source("simulate", text[len(SIMULATE):])
    p = Path(text)
    if p.is_dir() and (p / "zarr.json").is_file():
        return Source("store", text)
    if _GLOB_CHARS.search(text) and not p.exists():
        return Source("files", text, (text,))
    return Source("file", text, (text,))


def xanes_paths(xanes) -> list[str]:
    """``[input] xanes`` (a path, a pattern, a list of them, or "" for none) -> the
    list of entries as given (patterns expanded by :func:`spectrotomo.io.read_xanes`)."""
    if not xanes:
        return []
    return [xanes] if isinstance(xanes, str) else [str(x) for x in xanes]
