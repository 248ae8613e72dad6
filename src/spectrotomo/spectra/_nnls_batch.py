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
exact constrained optimum. All candidates for all spectra are one matmul
followed by a few reductions: no per-spectrum loop or optimiser.

Cost per spectrum is O(n k) for ``b`` plus O(k^2) for the all-free solution;
only spectra whose all-free solution leaves the feasible set pay a few
primal-dual active-set steps (each O(k^2), exact once the KKT conditions
hold), and the few of those not settled pay the O(2^k k^2) enumeration, so
this is the method of choice for k <= ~10.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

__all__ = ["SubsetPlan", "make_plan", "solve_block"]

#: Above this many references the 2^k enumeration stops being cheap.
MAX_REFERENCES = 12

#: Multiply-adds of one candidate matmul (supports x (k + 1) x k x spectra)
#: on the CPU: at most OpenBLAS's single-thread limit (2^18), as its threads
#: made this product 60x slower on a loaded 2-core machine (16 ms instead of
#: 0.27 ms for 180 x 5 x 1300); it also keeps the temporaries in L1/L2.
_ENUM_MNK_CPU = 2**18
#: The same on a GPU (bounds temporaries to some MiB per chunk).
_ENUM_MNK_GPU = 2**26


@dataclass(frozen=True)
class SubsetPlan:
    """Precomputed solution operators for every admissible support.

    Attributes
    ----------
    maps : ndarray, shape (n_supports, k + sum_to_one, k)
        ``maps[p] @ b + offsets[p]`` is support ``p``'s solution as a full
        k-vector (zero outside the support) followed, when ``sum_to_one``, by
        its Lagrange multiplier ``nu``.
    offsets : ndarray, shape (n_supports, k + sum_to_one)
    supports : tuple of tuple of int
        The supports; the last one is all references (the unconstrained or
        equality-only solution). With ``nonneg`` alone the first is the empty
        support (f = 0, objective 0).
    k : int
    nonneg, sum_to_one : bool
    gram : ndarray, shape (k, k)
    by_mask : ndarray, shape (2^k, k + sum_to_one, k)
        ``maps`` indexed by the support's bit mask (bit j: reference j);
        zero for an inadmissible support (the empty one with ``sum_to_one``).
    offsets_by_mask : ndarray, shape (2^k, k + sum_to_one)
    """

    maps: np.ndarray
    offsets: np.ndarray
    supports: tuple
    k: int
    nonneg: bool
    sum_to_one: bool
    gram: np.ndarray
    by_mask: np.ndarray
    offsets_by_mask: np.ndarray


def _supports(k: int, nonneg: bool, sum_to_one: bool) -> list[tuple[int, ...]]:
    if not nonneg:
        return [tuple(range(k))]
    first = 1 if sum_to_one else 0  # f = 0 is feasible only without sum(f) = 1
    return [c for size in range(first, k + 1) for c in combinations(range(k), size)]


def _support_rows(gram: np.ndarray, support, sum_to_one: bool):
    """Zero-padded map of ``b`` to ``[f; nu]`` on a support: (A, a)."""
    k = gram.shape[0]
    idx = list(support)
    m = len(idx)
    rows = np.zeros((k + sum_to_one, k))
    offset = np.zeros(k + sum_to_one)
    if m == 0:
        return rows, offset
    g = gram[np.ix_(idx, idx)]
    if not sum_to_one:
        rows[np.ix_(idx, idx)] = np.linalg.inv(g)
        return rows, offset
    # KKT of min f'Gf - 2b'f s.t. 1'f = 1:  [[G, 1], [1', 0]] [f; nu] = [b; 1]
    kkt = np.zeros((m + 1, m + 1))
    kkt[:m, :m] = g
    kkt[:m, m] = 1.0
    kkt[m, :m] = 1.0
    inv = np.linalg.inv(kkt)
    out = idx + [k]
    rows[np.ix_(out, idx)] = inv[:, :m]
    offset[out] = inv[:, m]
    return rows, offset


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
    parts = [_support_rows(gram, s, bool(sum_to_one)) for s in supports]
    maps = np.stack([p[0] for p in parts])
    offsets = np.stack([p[1] for p in parts])
    by_mask = np.zeros((2**k,) + maps.shape[1:])
    offsets_by_mask = np.zeros((2**k, offsets.shape[1]))
    if nonneg:
        masks = [sum(1 << j for j in sup) for sup in supports]
        by_mask[masks] = maps
        offsets_by_mask[masks] = offsets
    return SubsetPlan(maps, offsets, tuple(supports), k, bool(nonneg), bool(sum_to_one),
                      gram, by_mask, offsets_by_mask)


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
    ``-(b . f) - nu`` (``nu = 0`` without ``sum_to_one``): only ``f`` and
    ``nu`` are needed. Spectra whose all-free solution is feasible are done
    (convexity: a feasible unconstrained optimum is the constrained one); only
    the others go through the enumeration.
    """
    frac, obj = _all_free(bt, plan, xp)
    if plan.nonneg and len(plan.supports) > 1:
        outside = xp.flatnonzero(frac.min(axis=0) < 0)
        if outside.size:
            f_out, o_out, done = _active_set(bt[:, outside], frac[:, outside], plan, xp)
            frac[:, outside] = f_out
            obj[outside] = o_out
            rest = outside[~done]
            if rest.size:
                f_out, o_out = _enumerate(bt[:, rest], plan, xp)
                frac[:, rest] = f_out
                obj[rest] = o_out
    return frac, obj


def _active_set(bt, frac, plan: SubsetPlan, xp, iterations: int = 3):
    """Primal-dual active-set iterations (Hintermueller, Ito & Kunisch 2002)
    from the all-free solution ``frac`` (k, M), for all spectra at once.

    A support ``P`` is kept when its solution satisfies the KKT conditions:
    ``f_j > 0`` on ``P`` and ``w_j = b_j - (G f)_j - nu <= 0`` off it (which
    are sufficient for the convex problem: that solution is the exact
    optimum). Otherwise the next support is ``{j in P: f_j > 0} | {j not in
    P: w_j > 0}``. Returns fractions, objective and ``done`` (M,) bool; the
    spectra not done within ``iterations`` go to :func:`_enumerate`.
    """
    dt = bt.dtype
    k, m = bt.shape
    rows = k + plan.sum_to_one
    # (rows, k, 2^k) and (rows, 2^k): gathering the last axis by support mask
    # gives per-spectrum maps laid out along spectra (contiguous rows)
    by_mask = xp.asarray(plan.by_mask.transpose(1, 2, 0), dtype=dt)
    offsets = xp.asarray(plan.offsets_by_mask.T, dtype=dt)
    gram = xp.asarray(plan.gram, dtype=dt)
    bits = xp.asarray(1 << np.arange(k))[:, None]
    inside = frac > 0
    done = xp.zeros(m, dtype=bool)
    f = xp.zeros((k, m), dtype=dt)
    obj = xp.zeros(m, dtype=dt)
    todo = xp.arange(m)
    b = bt
    for _ in range(iterations):  # a few iterations, each over all open spectra
        mask = (inside * bits).sum(axis=0)
        maps = by_mask[:, :, mask]  # (rows, k, M)
        cand = offsets[:, mask]
        for j in range(k):  # k references: a small fixed set
            cand += maps[:, j] * b[j]
        fp = cand[:k]
        w = b - _small_matmul(gram, fp, xp)
        if rows > k:
            w -= cand[k]
        new = (inside & (fp > 0)) | (~inside & (w > 0))
        ok = (new == inside).all(axis=0)
        if plan.sum_to_one:
            ok &= mask > 0  # no feasible point has an empty support
        o = -(fp * b).sum(axis=0)
        if rows > k:
            o -= cand[k]
        idx = todo[ok]
        f[:, idx] = fp[:, ok]
        obj[idx] = o[ok]
        done[idx] = True
        if bool(ok.all()):
            break
        todo = todo[~ok]
        inside = new[:, ~ok]
        b = b[:, ~ok]
    return f, obj, done


def _small_matmul(a, b, xp):
    """``a @ b`` for a small (r, k) ``a`` and a wide (k, M) ``b``: on the CPU
    in column chunks below OpenBLAS's single-thread limit (its threads made
    such products up to 60x slower on a loaded 2-core machine)."""
    r, k = a.shape
    if xp is not np:
        return a @ b
    out = np.empty((r, b.shape[1]), dtype=np.result_type(a, b))
    step = max(1, _ENUM_MNK_CPU // (r * k))
    for lo in range(0, b.shape[1], step):  # a few chunks
        np.matmul(a, b[:, lo:lo + step], out=out[:, lo:lo + step])
    return out


def _all_free(bt, plan: SubsetPlan, xp):
    """Candidate with every reference free (the last support): (f (k, N), obj)."""
    dt = bt.dtype
    k = plan.k
    cand = _small_matmul(xp.asarray(plan.maps[-1], dtype=dt), bt, xp)
    if plan.sum_to_one:
        cand += xp.asarray(plan.offsets[-1], dtype=dt)[:, None]
    frac = cand[:k]
    obj = frac[0] * bt[0]
    for i in range(1, k):  # k rows: a small fixed set
        obj += frac[i] * bt[i]
    if plan.sum_to_one:
        obj += cand[k]
    return frac, -obj


def _enumerate(bt, plan: SubsetPlan, xp):
    """Every support but the full one, for every spectrum of ``bt`` (k, M);
    keep the feasible candidate with the lowest objective."""
    dt = bt.dtype
    k, m = bt.shape
    n_sup = len(plan.supports) - 1  # the full support was infeasible
    rows = k + plan.sum_to_one
    maps = xp.asarray(plan.maps[:n_sup].reshape(n_sup * rows, k), dtype=dt)
    offsets = xp.asarray(plan.offsets[:n_sup], dtype=dt)[:, :, None]
    frac = xp.empty((k, m), dtype=dt)
    best = xp.empty(m, dtype=dt)
    budget = _ENUM_MNK_CPU if xp is np else _ENUM_MNK_GPU
    step = max(1, budget // (n_sup * rows * k))
    for lo in range(0, m, step):  # cache-sized chunks of spectra
        b = bt[:, lo:lo + step]
        cand = (maps @ b).reshape(n_sup, rows, b.shape[1])
        if plan.sum_to_one:
            cand += offsets
        f = cand[:, :k]
        obj = -(f * b[None]).sum(axis=1)
        if plan.sum_to_one:
            obj -= cand[:, k]
        obj = xp.where(f.min(axis=1) < 0, xp.inf, obj)
        pick = xp.argmin(obj, axis=0)[None]
        best[lo:lo + step] = xp.take_along_axis(obj, pick, axis=0)[0]
        frac[:, lo:lo + step] = xp.take_along_axis(f, pick[None], axis=0)[0]
    return frac, best
