"""Exact batched constrained least squares by active-set (subset) enumeration.

For a small number ``k`` of references every constrained least-squares problem

    min_f ||R^T f - s||^2   subject to  f >= 0 (optional),  sum(f) = 1 (optional)

is solved exactly for *all* spectra ``s`` at once. The problem only depends on
a spectrum through ``b = R s`` (k numbers) and ``||s||^2``. For every support
``P`` (subset of references allowed to be non-zero) the equality-constrained
least-squares solution is an affine map of ``b``,

    f_P = L_P b + c_P                                            (k,)

with ``L_P``/``c_P`` from the Gram matrix ``G = R R^T`` (the KKT system
``[[G_PP, 1], [1^T, 0]]`` when ``sum(f) = 1``). Since the problem is convex,
its minimum is attained on the support of the optimum, where it equals that
support's equality-constrained solution; every other primal-feasible candidate
is a feasible point with an objective at least as large. Taking, per spectrum,
the feasible candidate (all f >= 0) with the lowest objective is therefore the
exact constrained optimum. All candidates for all spectra are a pair of
matmuls followed by elementwise work: no per-spectrum loop or optimiser.

Cost per spectrum is O(n k) for ``b`` plus O(2^k k^2) for the candidates, so
this is the method of choice for k <= ~10 references.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

__all__ = ["SubsetPlan", "make_plan", "solve_block"]

#: Above this many references the 2^k enumeration stops being cheap.
MAX_REFERENCES = 12


@dataclass(frozen=True)
class SubsetPlan:
    """Precomputed solution operators for every admissible support.

    Attributes
    ----------
    op : ndarray, shape (n_rows, k)
        ``op @ b.T + offset[:, None]`` stacks, support after support, the
        support's fractions ``f_P`` (``len(P)`` rows) followed, when
        ``sum_to_one``, by its Lagrange multiplier ``nu`` (one row).
    offset : ndarray, shape (n_rows,)
    supports : tuple of tuple of int
    k : int
    nonneg, sum_to_one : bool
    """

    op: np.ndarray
    offset: np.ndarray
    supports: tuple
    k: int
    nonneg: bool
    sum_to_one: bool


def _supports(k: int, nonneg: bool, sum_to_one: bool) -> list[tuple[int, ...]]:
    if not nonneg:
        return [tuple(range(k))]
    return [c for size in range(1, k + 1) for c in combinations(range(k), size)]


def _support_rows(gram: np.ndarray, support, sum_to_one: bool):
    """Rows mapping ``b`` to ``f_P`` (and ``nu``): f_P = A b + a."""
    k = gram.shape[0]
    idx = list(support)
    m = len(idx)
    g = gram[np.ix_(idx, idx)]
    if not sum_to_one:
        rows = np.zeros((m, k))
        rows[:, idx] = np.linalg.inv(g)
        return rows, np.zeros(m)
    # KKT of min f'Gf - 2b'f s.t. 1'f = 1:  [[G, 1], [1', 0]] [f; nu] = [b; 1]
    kkt = np.zeros((m + 1, m + 1))
    kkt[:m, :m] = g
    kkt[:m, m] = 1.0
    kkt[m, :m] = 1.0
    inv = np.linalg.inv(kkt)
    rows = np.zeros((m + 1, k))
    rows[:, idx] = inv[:, :m]
    return rows, inv[:, m].copy()


def make_plan(gram: np.ndarray, *, nonneg: bool, sum_to_one: bool) -> SubsetPlan:
    """Precompute the affine solution maps of every support.

    Parameters
    ----------
    gram : ndarray, shape (k, k), float64
        ``R R^T`` of the (already validated, full-rank) references.
    nonneg, sum_to_one : bool
        The constraints.
    """
    gram = np.asarray(gram, dtype=np.float64)
    k = gram.shape[0]
    supports = _supports(k, nonneg, sum_to_one)
    parts = [_support_rows(gram, s, sum_to_one) for s in supports]
    op = np.concatenate([p[0] for p in parts], axis=0)
    offset = np.concatenate([p[1] for p in parts])
    return SubsetPlan(op, offset, tuple(supports), k, nonneg, sum_to_one)


def solve_block(bt, plan: SubsetPlan, xp=np):
    """Exact constrained solutions for a block of spectra.

    Parameters
    ----------
    bt : array, shape (k, N)
        ``R @ S.T`` of the block (float32 or float64, numpy or cupy).
    plan : SubsetPlan
    xp : module
        numpy or cupy (the module of ``bt``).

    Returns
    -------
    fractions : array, shape (k, N), dtype of ``bt``
    objective : array, shape (N,)
        ``f^T G f - 2 b^T f``; the squared misfit is ``||s||^2 + objective``.

    Notes
    -----
    At a support's solution ``G_PP f_P = b_P - nu 1``, so the objective is
    ``-(b_P . f_P) - nu`` (``nu = 0`` without ``sum_to_one``): only ``f_P`` and
    ``nu`` are needed. Supports are visited in a loop over the small fixed set
    of supports; every step works on whole rows of N spectra.
    """
    if plan.nonneg and len(plan.supports) > 1:
        return _solve_interior_first(bt, plan, xp)
    return _enumerate(bt, plan, xp)


def _full_support(bt, plan: SubsetPlan, xp):
    """Candidate with every reference free (the last support): (f (k, N), obj)."""
    dt = bt.dtype
    k = plan.k
    rows = plan.op[-(k + plan.sum_to_one):]
    cand = xp.asarray(rows, dtype=dt) @ bt
    if plan.sum_to_one:
        cand += xp.asarray(plan.offset[-(k + 1):], dtype=dt)[:, None]
    obj = -(cand[:k] * bt).sum(axis=0)
    if plan.sum_to_one:
        obj -= cand[k]
    return cand[:k], obj


def _solve_interior_first(bt, plan: SubsetPlan, xp):
    """Spectra whose all-free solution is feasible are done (convexity: a
    feasible unconstrained optimum is the constrained one); only the others
    go through the enumeration. Exact either way; fast for typical data whose
    fractions are mostly inside the simplex."""
    frac, obj = _full_support(bt, plan, xp)
    outside = xp.flatnonzero((frac < 0).any(axis=0))
    if outside.size:
        f_out, o_out = _enumerate(xp.ascontiguousarray(bt[:, outside]), plan, xp)
        frac[:, outside] = f_out
        obj[outside] = o_out
    return frac, obj


def _enumerate(bt, plan: SubsetPlan, xp):
    """Every support for every spectrum; keep the best feasible one."""
    dt = bt.dtype
    k, n = bt.shape
    cand = xp.asarray(plan.op, dtype=dt) @ bt
    if plan.sum_to_one:
        cand += xp.asarray(plan.offset, dtype=dt)[:, None]
    # Branch-free selection: random boolean masks (where/setitem) cost 10x an
    # arithmetic pass, so infeasible candidates get a huge finite penalty and
    # the winner is blended in with exact 0/1 multiplications.
    penalty = dt.type(np.finfo(dt).max / 8)
    if plan.nonneg and not plan.sum_to_one:
        best = xp.zeros(n, dtype=dt)  # f = 0 is feasible with objective 0
    else:
        best = xp.full(n, penalty, dtype=dt)
    frac = xp.zeros((k, n), dtype=dt)
    row = 0
    for support in plan.supports:
        m = len(support)
        obj = cand[row] * bt[support[0]]
        for j in range(1, m):
            obj += cand[row + j] * bt[support[j]]
        if plan.sum_to_one:
            obj += cand[row + m]
        obj = -obj
        if plan.nonneg:
            fmin = cand[row] if m == 1 else cand[row:row + m].min(axis=0)
            obj += (fmin < 0).astype(dt) * penalty
        better = (obj < best).astype(dt)
        keep = 1 - better
        best = xp.minimum(obj, best)
        for i in range(k):
            frac[i] *= keep
            if i in support:
                frac[i] += cand[row + support.index(i)] * better
        row += m + plan.sum_to_one
    return frac, best
