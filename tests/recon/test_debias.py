"""recon/_debias.py: Bregman refinement restores the TV contrast loss of small regions."""

import numpy as np
import pytest

from spectrotomo import simulate
from spectrotomo._model import ValidationError
from spectrotomo.recon import reconstruct_joint
from spectrotomo.recon._debias import bregman_refine

ANGLES = np.arange(-65.0, 65.5, 2.0)


def _phantom(n=48):
    """Two energies: a disk (shared structure) with a small grain whose second-energy
    value differs (the 'chemistry' a joint TV shrinks), and the grain mask."""
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    disk = yy**2 + xx**2 < 16**2
    grain = (yy - 3) ** 2 + (xx + 4) ** 2 < 5**2
    ring = disk & ~grain & ((yy - 3) ** 2 + (xx + 4) ** 2 < 9**2)
    lo = 0.04 * disk
    hi = 0.05 * disk + 0.012 * grain  # the grain's edge jump is 2.2x the rest's
    return np.stack([lo, hi]).astype(np.float32), grain, ring


def test_refinement_restores_the_grain_contrast():
    truth, grain, ring = _phantom()
    od = np.stack([simulate.project(np.repeat(t[None], 2, 0), ANGLES) for t in truth])
    od = od + 0.01 * od.max() * np.random.default_rng(3).normal(size=od.shape)
    od = od.astype(np.float32)

    def contrast(x):  # grain - surroundings of the edge jump (energy 1 - energy 0)
        jump = x[1] - x[0]
        return jump[:, grain].mean() - jump[:, ring].mean()

    true = contrast(truth[:, None])
    plain = contrast(reconstruct_joint(od, ANGLES, debias_iterations=0))
    refined = contrast(reconstruct_joint(od, ANGLES))
    assert plain < 0.9 * true  # the problem: TV shrinks the grain's chemistry contrast
    # measured: error 0.0032 -> 0.0023 (0.71x)
    assert abs(refined - true) < 0.8 * abs(plain - true), (true, plain, refined)


def test_zero_rounds_returns_the_start():
    y = np.ones((1, 1, 4, 4), np.float32)
    assert bregman_refine(None, y, y, solve=None, rounds=0) is y


def test_one_round_adds_the_residual_back():
    class Scale:  # N = 2 I: residual of y for g0 is g0 - 2 y
        def apply(self, y):
            return 2 * y

    g0, y = np.full(3, 4.0), np.ones(3)
    seen = []
    bregman_refine(Scale(), g0, y, lambda g, y1, ny1: seen.append((g, ny1)) or y1)
    np.testing.assert_allclose(seen[0][0], g0 + (g0 - 2 * y))  # b + (b - A y)
    np.testing.assert_allclose(seen[0][1], 2 * y)  # N y handed on: the solver's first step


def test_negative_iterations_refused():
    with pytest.raises(ValidationError, match="debias_iterations"):
        reconstruct_joint(np.zeros((2, ANGLES.size, 2, 16), np.float32), ANGLES,
                          debias_iterations=-1)
