"""The ``[input] path`` of a run, parsed once: a simulator preset or files.

Inputs are ``simulate:PRESET`` (:func:`spectrotomo.simulate.sample`; the
``xanes3d`` presets: :func:`spectrotomo.simulate.xanes3d_sample`),
``simulate-holo:PRESET`` (:func:`spectrotomo.simulate.holotomo_sample`), a sample
store (``.zarr`` directory with a ``raw`` group) or a beamline file read by
:func:`spectrotomo.io.read`.  Every module of the pipeline asks this one what an
input is instead of testing prefixes itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Source", "parse_source", "SIMULATE", "SIMULATE_HOLO"]

#: ``input.path`` prefix of a simulated dual-energy/XANES sample, e.g. "simulate:small".
SIMULATE = "simulate:"
#: ``input.path`` prefix of a simulated holotomography scan, e.g. "simulate-holo:small".
SIMULATE_HOLO = "simulate-holo:"


@dataclass(frozen=True)
class Source:
    """One parsed input: ``kind`` is "simulate", "simulate-holo", "store" or "file";
    ``target`` the preset name (simulated) or the path (store, file)."""

    kind: str
    target: str

    @property
    def simulated(self) -> bool:
        return self.kind in ("simulate", "simulate-holo")

    @property
    def label(self) -> str:
        """A short name for file names: the preset, or the file's stem."""
        return self.target if self.simulated else Path(self.target).stem

    def check_preset(self) -> None:
        """Raise ValueError naming ``[input] path`` when the preset does not exist."""
        from ..simulate import XANES3D_PRESETS, preset_names

        names = [n for n in preset_names()
                 if self.kind == "simulate" or n not in XANES3D_PRESETS]
        if self.simulated and self.target not in names:
            raise ValueError(f"[input] path: unknown simulator preset {self.target!r}; expected "
                             f"one of {names}")

    def shape(self, n_angles_holo: int = 181) -> tuple[tuple[int, int, int, int], int]:
        """``((energy, angle, y, x), n_xanes)`` the input will give (plans before reading)."""
        from .. import io
        from ..simulate import holotomo_shape, sample_shape

        self.check_preset()
        if self.kind == "simulate-holo":
            return holotomo_shape(self.target, n_angles_holo), 0
        if self.kind == "simulate":
            return sample_shape(self.target)
        sizes = io.read(self.target)["projections"].sizes
        return tuple(sizes[d] for d in ("energy", "angle", "y", "x")), 0


def parse_source(path: str) -> Source:
    """Parse ``[input] path`` (or a batch manifest's ``input``) into a :class:`Source`."""
    text = str(path)
    if text.startswith(SIMULATE_HOLO):
        return Source("simulate-holo", text[len(SIMULATE_HOLO):])
    if text.startswith(SIMULATE):
        return Source("simulate", text[len(SIMULATE):])
    p = Path(text)
    if p.is_dir() and (p / "zarr.json").is_file():
        return Source("store", text)
    return Source("file", text)
