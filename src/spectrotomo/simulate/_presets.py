"""What a simulator preset will produce, without simulating it (plans, manifests)."""

from __future__ import annotations

import numpy as np

from ._particle import _DEFAULTS, PRESETS
from ._sample import XANES_ENERGIES, dual_energies

__all__ = ["preset_names", "particle_options", "sample_shape", "holotomo_shape"]

#: Angle range of :func:`~spectrotomo.simulate.sample`'s tilt series (deg).
SAMPLE_ANGLE_RANGE_DEG = (-65.0, 65.0)


def preset_names() -> tuple[str, ...]:
    """Names of the particle presets (``simulate:NAME`` inputs)."""
    return tuple(PRESETS)


def particle_options(preset: str) -> set[str]:
    """Keyword overrides :func:`~spectrotomo.simulate.particle` accepts for ``preset``."""
    return {*PRESETS[preset], *_DEFAULTS}


def sample_shape(preset: str) -> tuple[tuple[int, int, int, int], int]:
    """``((energy, angle, y, x), n_xanes_energies)`` of ``sample(preset)``'s series."""
    step = float(PRESETS[preset].get("angle_step_deg", 1.0))
    lo, hi = SAMPLE_ANGLE_RANGE_DEG
    n_angles = np.arange(lo, hi + step / 2, step).size
    n = PRESETS[preset]["shape"][-1]
    return (len(dual_energies()), n_angles, n, n), len(XANES_ENERGIES)


def holotomo_shape(preset: str, n_angles: int = 181) -> tuple[int, int, int, int]:
    """``(energy, angle, y, x)`` of ``holotomo_sample(preset)``'s series (one distance)."""
    n = PRESETS[preset]["shape"][-1]
    return (1, int(n_angles), n, n)
