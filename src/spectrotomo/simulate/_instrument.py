"""Instrument parameters of a simulated scan, as explicit frozen objects."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Imperfections", "MILD_IMPERFECTIONS", "Calibration", "SCAN_CALIBRATION"]


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


@dataclass(frozen=True)
class Calibration:
    """Energy calibration of a simulated scan relative to the builtin references.

    A scan's spectra never equal the reference spectra it is fitted with: the
    monochromator's energy scale differs from the one the references were
    measured on, and the two instruments resolve differently. The scan sees
    the builtin model spectra shifted up in energy by ``energy_offset_ev`` (a
    feature at ``E`` in the references appears at ``E + energy_offset_ev`` in
    the scan; :func:`spectrotomo.spectra.shift_energy` with this offset
    aligns the references) and convolved with a Gaussian of standard
    deviation ``broadening_ev``. ``Calibration()`` is the exact (inverse
    crime) case.

    Attributes
    ----------
    energy_offset_ev : float
        Shift of the scan's spectra relative to the references, eV.
    broadening_ev : float
        Standard deviation of the extra Gaussian energy resolution, eV (>= 0).
    """

    energy_offset_ev: float = 0.0
    broadening_ev: float = 0.0

    def __post_init__(self):
        if not math.isfinite(self.energy_offset_ev) or abs(self.energy_offset_ev) > 10.0:
            raise ValueError(f"Calibration: energy_offset_ev must be finite and within +-10 eV, "
                             f"got {self.energy_offset_ev}")
        if not (math.isfinite(self.broadening_ev) and 0.0 <= self.broadening_ev <= 5.0):
            raise ValueError(f"Calibration: broadening_ev must be in [0, 5] eV, "
                             f"got {self.broadening_ev}")

    @property
    def exact(self) -> bool:
        return self.energy_offset_ev == 0.0 and self.broadening_ev == 0.0


#: The default of every simulated scan: a typical calibration difference between
#: a reference measurement and a sample scan (a few tenths of an eV of offset; a
#: resolution difference of 0.2 eV std, 0.47 eV FWHM).
SCAN_CALIBRATION = Calibration(energy_offset_ev=0.3, broadening_ev=0.2)
