"""Instrument parameters of a simulated scan, as explicit frozen objects."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Imperfections", "MILD_IMPERFECTIONS"]


@dataclass(frozen=True)
class Imperfections:
    """Instrument imperfections of a simulated TXM tilt series.

    The default (every field 0) is a perfect instrument. See
    :func:`spectrotomo.simulate.tilt_series` for how each one is applied.

    Attributes
    ----------
    jitter_px : float
        Std of a random (dy, dx) shift per angle, px.
    center_offset_px : float
        Rotation axis offset from the detector centre ``(nx - 1) / 2``, px.
    energy_shift_px : float
        Std of a random (dy, dx) shift per energy, px.
    magnification : float
        Per-energy scale factors are drawn uniformly in ``1 +- magnification``.
    magnification_per_ev : float
        A systematic magnification change per eV on top of the draws,
        ``scale *= 1 + magnification_per_ev * (E - energies[0])``: zone-plate
        optics refocused at each energy (focal length proportional to E).
    ring_strength : float
        Relative std of a per-pixel detector gain error that the flats do not
        record (stripes in sinograms, rings in reconstructions).
    """

    jitter_px: float = 0.0
    center_offset_px: float = 0.0
    energy_shift_px: float = 0.0
    magnification: float = 0.0
    magnification_per_ev: float = 0.0
    ring_strength: float = 0.0

    def __post_init__(self):
        for name in ("jitter_px", "energy_shift_px", "magnification", "ring_strength"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"Imperfections: {name} must be a finite number >= 0, got {v}")
        for name in ("center_offset_px", "magnification_per_ev"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"Imperfections: {name} must be finite, got {getattr(self, name)}")

    @property
    def misaligned(self) -> bool:
        """Whether any image is moved or magnified (needs resampling)."""
        return bool(self.jitter_px or self.energy_shift_px or self.magnification
                    or self.magnification_per_ev)


#: The mild imperfections of :func:`spectrotomo.simulate.sample`'s tilt series.
MILD_IMPERFECTIONS = Imperfections(jitter_px=0.3, center_offset_px=0.7, energy_shift_px=0.5,
                                   magnification=0.002, ring_strength=0.003)
