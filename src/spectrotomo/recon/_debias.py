"""Contrast restoration after a TV solve: one Bregman (residual add-back) refinement.

Why: a TV-regularised solution is biased towards its neighbourhood mean -- small
regions lose contrast in proportion to ``lam x perimeter / area`` (the classic
TV contrast loss). In the joint limited-angle solver the chemistry components
are penalised ``spectral_weight`` (16) times more than the structure, so the
TM/O contrast of primary grains and of the reduced surface skin shrinks most:
measured on ``simulate:small`` seed 0 (-65..+65 deg), the O-rich grains'
interior ratio / target came out 0.925 for a true 0.909 (demo: 0.932) and
the oxygen-poor grains 1.096 for 1.111, pulling grains and skin into the
"target" class (class-fraction error sum 8.3 pp, 5.6-17.4 pp over seeds).

The Bregman iteration of Osher et al. (2005) adds the data residual of the
regularised solution back to the data and solves again: what the first solve
explained stays, what it shrank (the large-scale contrast of regions the data
support) comes back first, noise only after many rounds. One round of a few
full-grid iterations, warm-started at the solution, is used: measured on
simulate:small seeds 0-3 (gpu_bench/RESULTS.recon.md, "class accuracy") it
lowers the class-fraction error sum from 9.7 to 6.8 pp (mean) at equal class
voxel agreement (0.876 / 0.874) and equal amounts (within 0.1 %); lowering the
chemistry penalty instead (spectral_weight 4) gains as much on the fractions
but biases Co by a further -0.4..-0.9 %.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["bregman_refine"]


def bregman_refine(N, g0, y, solve: Callable, *, rounds: int = 1):
    """Bregman refinement of a regularised solution of ``N y = g0``.

    Parameters
    ----------
    N : FilteredNormal
        The normal operator ``A^T W A`` of the problem (``N.apply(y, out=)``).
    g0 : array, shape (C, R, ny, nx), float32
        Right-hand side ``A^T W b`` of the data (component space).
    y : array, same shape as ``g0``
        The regularised solution (start of the refinement).
    solve : callable
        ``solve(g, y, ny) -> y``: the regularised solver for right-hand side ``g``
        warm-started at ``y`` (e.g. a few primal-dual iterations); ``ny`` is
        ``N.apply(y)``, which the residual needed already (the solver's first gradient
        step needs it too: one application of ``N`` less per round).
    rounds : int
        Residual add-backs (>= 0); 0 returns ``y`` unchanged.

    Returns
    -------
    array, same shape and array module as ``y``: the refined solution.
    """
    g = g0
    for _ in range(int(rounds)):
        ny = N.apply(y)  # A^T W A y ...
        g = g + (g0 - ny)  # ... the Bregman data: b + (b - A y_k) accumulated
        y = solve(g, y, ny)
    return y
