"""What a simulator preset will produce, without simulating it (plans, manifests)."""

from __future__ import annotations

import numpy as np

from ._particle import _DEFAULTS, PRESETS
from ._sample import XANES_ENERGIES, dual_energies
from ._xanes3d import XANES3D_PRESETS, xanes3d_shape

__all__ = ["preset_names", "particle_options", "sample_shape", "holotomo_shape"]

#: Angle range of :func:`~spectrotomo.simulate.sample`'s tilt series (deg).
SAMPLE_ANGLE_RANGE_DEG = (-65.0, 65.0)


def preset_names() -> tuple[str, ...]:
    """Names of the ``simulate:NAME`` inputs: the particle presets (dual-energy
    series + 2D XANES scan) and the XANES-tomography presets (``xanes3d``...)."""
    return (*PRESETS, *XANES3D_PRESETS)


def particle_options(preset: str) -> set[str]:
    """Keyword overrides :func:`~spectrotomo.simulate.particle` accepts for ``preset``
    (a XANES-tomography preset: those of the particle preset it images)."""
    return {*PRESETS[XANES3D_PRESETS.get(preset, preset)], *_DEFAULTS}


def sample_shape(preset: str) -> tuple[tuple[int, int, int, int], int]:
    """``((energy, angle, y, x), n_xanes_energies)`` of ``sample(preset)``'s series, or
    of ``xanes3d_sample(preset)``'s (no separate 2D scan: ``n_xanes_energies`` 0)."""
    if preset in XANES3D_PRESETS:
        return xanes3d_shape(preset), 0
    step = float(PRESETS[preset].get("angle_step_deg", 1.0))
    lo, hi = SAMPLE_ANGLE_RANGE_DEG
    n_angles = np.arange(lo, hi + step / 2, step).size
    n = PRESETS[preset]["shape"][-1]
    return (len(dual_energies()), n_angles, n, n), len(XANES_ENERGIES)


def holotomo_shape(preset: str, n_angles: int = 181) -> tuple[int, int, int, int]:
    """``(energy, angle, y, x)`` of ``holotomo_sample(preset)``'s series (one distance)."""
    n = PRESETS[preset]["shape"][-1]
    return (1, int(n_angles), n, n)
