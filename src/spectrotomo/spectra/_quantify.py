"""Dual-energy element quantification: edge jump -> atoms per nm^3.

Physics. Linear attenuation (1/nm) at energy E is ``mu(E) = sum_e n_e sigma_e(E)``
with ``n_e`` atoms/nm^3 and ``sigma_e`` the cross section per atom (nm^2). For
an element X measured just below and just above its edge,

    mu(above_X) - mu(below_X) = n_X dsigma_X + sum_{e != X} n_e dsigma_e(X pair)

where ``dsigma = sigma(above) - sigma(below)``. The first term is the edge
jump. The other elements' non-resonant cross sections also fall between the
two energies (``dsigma_e < 0``, a few % of X's jump for transition metals in an
oxide): ignoring them biases ``n_X`` low. Two corrections are offered:

* :func:`element_amounts` (one element): pass ``others={"O": n_O, ...}``
  (amounts from a previous pass or a known composition) and their
  ``n_e dsigma_e`` is subtracted before dividing by X's jump; iterate once or
  twice (the coupling is weak, so it converges immediately).
* :func:`joint_element_amounts` (all pairs at once): the P measured jumps are
  a P x P linear system ``dmu_p = sum_e n_e dsigma_e(p)`` over the P elements,
  solved per voxel exactly (one matmul with the inverse). Elements without a
  pair (e.g. Li) can be given as ``fixed`` amounts; otherwise they are
  neglected (Li: |dsigma| < 1e-3 of a TM L3 jump per atom).

Cross sections are xraydb's Elam tables (``mu_elam(kind="total")`` in cm^2/g
x atomic mass / N_A, converted to nm^2/atom), or a user ``calibration``
(edge jump per atom in nm^2, e.g. measured on a standard).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .._backend import array_module
from .._model import ValidationError

__all__ = ["ElementAmounts", "cross_section", "element_amounts", "formula_ties",
           "joint_element_amounts", "tm_o_ratio"]

_AVOGADRO = 6.02214076e23
_CM2_TO_NM2 = 1e14


@dataclass
class ElementAmounts:
    """Amount of one element per voxel (or per pixel: atoms/nm^2 from projections).

    Attributes
    ----------
    amount : array, shape (...)
        atoms/nm^3 from attenuation volumes (1/nm); atoms/nm^2 (areal) from
        optical-density projections. NaN where masked.
    sigma : array or None, shape (...)
        1-sigma uncertainty propagated from the inputs' per-voxel sigma.
    mask : bool array, shape (...)
        True where the amount is valid (finite, above threshold / min_snr).
    n_masked : int
        Number of masked voxels.
    element : str
    """

    amount: Any
    sigma: Any
    mask: Any
    n_masked: int
    element: str


def cross_section(element: str, energies) -> np.ndarray:
    """Tabulated total cross section per atom, nm^2 (xraydb Elam).

    Parameters
    ----------
    element : str, e.g. ``"Mn"``
    energies : float or array of eV
    """
    import xraydb

    energies = np.atleast_1d(np.asarray(energies, dtype=float))
    try:
        mu = xraydb.mu_elam(element, energies, kind="total")  # cm^2/g
        mass = xraydb.atomic_mass(element)  # g/mol
    except Exception as exc:  # xraydb raises bare errors for unknown symbols
        raise ValidationError(f"cross_section: unknown element {element!r}") from exc
    return np.asarray(mu) * mass / _AVOGADRO * _CM2_TO_NM2


def _jump(element: str, pair) -> float:
    return _jump_cached(element, *_pair(pair, element))


@functools.lru_cache(maxsize=256)
def _jump_cached(element: str, below: float, above: float) -> float:
    s = cross_section(element, [below, above])
    return float(s[1] - s[0])


def _pair(pair, name) -> tuple[float, float]:
    try:
        below, above = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise ValidationError(f"energies for {name!r} must be a (below_ev, above_ev) pair; got {pair!r}")
    if not above > below > 0:
        raise ValidationError(f"energies for {name!r} must satisfy 0 < below < above (eV); got {pair}")
    return below, above


def _apply_mask(amount, sigma, *, threshold, min_snr, xp):
    valid = xp.isfinite(amount) & (amount > threshold)
    if sigma is not None and min_snr:
        valid &= amount >= min_snr * sigma
    amount = xp.where(valid, amount, xp.nan)
    if sigma is not None:
        sigma = xp.where(valid, sigma, xp.nan)
    return amount, sigma, valid, int((~valid).sum())


def element_amounts(below, above, *, element: str, energies, sigma=None, calibration=None,
                    others: Mapping[str, Any] | None = None, threshold: float = 0.0,
                    min_snr: float = 3.0) -> ElementAmounts:
    """Amount of ``element`` per voxel from its below/above-edge attenuation.

    Parameters
    ----------
    below, above : array, shape (...), numpy or cupy
        Linear attenuation (1/nm) below and above the edge (volumes), or
        optical density (dimensionless) of projections (result then atoms/nm^2).
    element : str
    energies : (float, float)
        The (below, above) photon energies in eV.
    sigma : (array or float, array or float), optional
        Per-voxel 1-sigma noise of ``below`` and ``above`` (same units).
    calibration : float, optional
        Edge jump per atom in nm^2 replacing xraydb's
        ``sigma(above) - sigma(below)``.
    others : mapping element -> amount (array or float), optional
        Other elements' amounts (same units as the result) whose non-resonant
        cross-section change between the two energies is subtracted.
    threshold : float
        Amounts <= threshold are masked (NaN).
    min_snr : float
        With ``sigma``: amounts below ``min_snr`` x their uncertainty are masked.

    Returns
    -------
    ElementAmounts
    """
    xp = array_module(below, above)
    below = xp.asarray(below)
    above = xp.asarray(above)
    if below.shape != above.shape:
        raise ValidationError(f"element_amounts: below {below.shape} and above {above.shape} "
                              "must have the same shape")
    pair = _pair(energies, element)
    jump = float(calibration) if calibration is not None else _jump(element, pair)
    if not jump > 0:
        raise ValidationError(f"element_amounts: edge jump of {element} between {pair} eV must be "
                              f"> 0 nm^2; got {jump:.3g} (is the pair across {element}'s edge?)")
    dmu = above - below
    for other, n_other in (others or {}).items():
        if other == element:
            continue
        dmu = dmu - xp.asarray(n_other) * _jump(other, pair)
    amount = dmu / jump
    amount_sigma = None
    if sigma is not None:
        s_below, s_above = sigma
        amount_sigma = xp.sqrt(xp.asarray(s_below) ** 2 + xp.asarray(s_above) ** 2) / jump
        amount_sigma = xp.broadcast_to(amount_sigma, amount.shape)
    amount, amount_sigma, valid, n_masked = _apply_mask(amount, amount_sigma, threshold=threshold,
                                                        min_snr=min_snr, xp=xp)
    return ElementAmounts(amount, amount_sigma, valid, n_masked, element)


def jump_matrix(elements, energies: Mapping[str, Any], *, calibration=None,
                fixed=(), tied: Mapping[str, tuple[str, float]] | None = None) -> np.ndarray:
    """``A[p, e] = sigma_e(above_p) - sigma_e(below_p)`` in nm^2, shape (P, len(elements) + len(fixed)).

    A ``tied`` element ``t: (host, r)`` (``n_t = r n_host``) adds ``r dsigma_t`` to the
    host's column: its jump is counted as the host's.
    """
    calibration = dict(calibration or {})
    names = list(elements) + list(fixed)
    a = np.empty((len(elements), len(names)))
    for p, pair_el in enumerate(elements):
        pair = _pair(energies[pair_el], pair_el)
        for e, el in enumerate(names):
            a[p, e] = _jump(el, pair)
        if pair_el in calibration:
            a[p, p] = float(calibration[pair_el])
        for el, (host, ratio) in (tied or {}).items():  # a standard's jump has no Li in it
            a[p, names.index(host)] += float(ratio) * _jump(el, pair)
    return a


def formula_ties(formula: str, paired, *, host: str = "O") -> dict[str, tuple[str, float]]:
    """The ``tied`` argument of :func:`joint_element_amounts` from a formula: every
    element of ``formula`` without a pair, as its stoichiometric ratio to ``host``.

    Parameters
    ----------
    formula : str
        E.g. ``"Li1.2Mn0.56Ni0.16Co0.08O2"`` or ``"Li(Ni0.8Co0.15Mn0.05)O2"``.
    paired : iterable of str
        Elements measured by an edge pair (not tied).
    host : str
        The paired element the others are tied to (O: in an oxide cathode Li and
        dopants follow the lattice's oxygen, not one transition metal).

    Returns
    -------
    dict element -> (host, atoms per host atom); ``{"Li": ("O", 0.6)}`` for the first
    example with pairs O, Mn, Co, Ni.
    """
    import xraydb

    try:
        counts = xraydb.chemparse(str(formula))
    except Exception as exc:  # xraydb raises bare errors for what it cannot parse
        raise ValidationError(f"formula_ties: cannot parse formula {formula!r}") from exc
    paired = set(paired)
    if host not in counts or host not in paired:
        raise ValidationError(f"formula_ties: host {host!r} must be in the formula {formula!r} "
                              f"and among the paired elements {sorted(paired)}")
    return {el: (host, float(n) / float(counts[host])) for el, n in counts.items()
            if el not in paired}


def joint_element_amounts(pairs: Mapping[str, tuple], *, energies: Mapping[str, tuple],
                          sigma: Mapping[str, tuple] | None = None, calibration=None,
                          fixed: Mapping[str, Any] | None = None,
                          tied: Mapping[str, tuple[str, float]] | None = None,
                          threshold: float = 0.0, min_snr: float = 3.0
                          ) -> dict[str, ElementAmounts]:
    """All elements' amounts at once, correcting each pair for the others.

    Solves ``dmu_p = sum_e n_e A[p, e]`` (see :func:`jump_matrix`) per voxel.

    Parameters
    ----------
    pairs : mapping element -> (below, above) arrays, shape (...)
        Attenuation (1/nm) or optical density at the element's pair.
    energies : mapping element -> (below_ev, above_ev)
    sigma : mapping element -> (sigma_below, sigma_above), optional
        Per-voxel noise; the uncertainty is propagated through the inverse
        (``var(n_e) = sum_p inv(A)[e, p]^2 var(dmu_p)``).
    calibration : mapping element -> edge jump per atom (nm^2), optional
    fixed : mapping element -> amount, optional
        Elements without a pair whose amounts are known (e.g. Li).
    tied : mapping element -> (host element, ratio), optional
        Elements without a pair whose amount is ``ratio`` x a paired host's
        (e.g. ``{"Li": ("O", 0.6)}`` in Li1.2Mn0.56Ni0.16Co0.08O2): their
        non-resonant cross-section change is solved with the host's. Neglected,
        Li's fall between the pair energies biases the amounts low, most where
        the element is dilute: on ``simulate:small``'s noise-free attenuation
        Co -1.6 %, Ni -0.8 %, O and Mn -0.3..-0.4 % (tied: 0.0 %).
    threshold, min_snr : float
        As in :func:`element_amounts`.

    Returns
    -------
    dict element -> ElementAmounts
    """
    elements = list(pairs)
    missing = [e for e in elements if e not in energies]
    if missing:
        raise ValidationError(f"joint_element_amounts: energies missing for {missing}")
    fixed = dict(fixed or {})
    tied = dict(tied or {})
    bad = {t: h for t, (h, _) in tied.items() if h not in elements or t in elements or t in fixed}
    if bad:
        raise ValidationError(f"joint_element_amounts: tied elements must be unpaired and tied to "
                              f"a paired element of {elements}; got {bad}")
    a = jump_matrix(elements, energies, calibration=calibration, fixed=fixed, tied=tied)
    p = len(elements)
    first = pairs[elements[0]][0]
    xp = array_module(first)
    dmu = xp.stack([xp.asarray(pairs[e][1]) - xp.asarray(pairs[e][0]) for e in elements], axis=-1)
    for j, (el, n_el) in enumerate(fixed.items()):
        dmu = dmu - xp.asarray(n_el)[..., None] * xp.asarray(a[:, p + j])
    cond = np.linalg.cond(a[:, :p])
    if cond > 1e6:
        raise ValidationError(f"joint_element_amounts: the jump matrix of {elements} is singular "
                              f"(condition {cond:.3g}); check the energy pairs")
    inv = np.linalg.inv(a[:, :p])
    n = dmu @ xp.asarray(inv.T)
    sig = None
    if sigma is not None:
        var = xp.stack([xp.broadcast_to(xp.asarray(sigma[e][0]) ** 2 + xp.asarray(sigma[e][1]) ** 2,
                                        dmu.shape[:-1]) for e in elements], axis=-1)
        sig = xp.sqrt(var @ xp.asarray((inv**2).T))
    out = {}
    for i, el in enumerate(elements):
        s_i = None if sig is None else sig[..., i]
        amt, s_i, valid, n_masked = _apply_mask(n[..., i], s_i, threshold=threshold,
                                                min_snr=min_snr, xp=xp)
        out[el] = ElementAmounts(amt, s_i, valid, n_masked, el)
    return out


def tm_o_ratio(amounts: Mapping[str, Any], *, metals=("Mn", "Co", "Ni"), oxygen: str = "O",
               min_oxygen: float = 0.0):
    """(Mn + Co + Ni) / O atomic ratio per voxel, masked where O is too small.

    Parameters
    ----------
    amounts : mapping element -> ElementAmounts or array, shape (...)
    metals : sequence of str
        Transition metals summed in the numerator (missing ones are skipped
        only if absent from ``amounts``; NaN metal amounts count as 0, as the
        metal's signal is below threshold there).
    min_oxygen : float
        Voxels with O <= ``min_oxygen`` (or NaN) are masked, never divided.

    Returns
    -------
    ratio : array (...), NaN where masked
    sigma : array (...) or None (when any input lacks a sigma); independent
        errors assumed.
    mask : bool array (...)
    n_masked : int
    """
    def parts(v):
        return (v.amount, v.sigma) if isinstance(v, ElementAmounts) else (v, None)

    if oxygen not in amounts:
        raise ValidationError(f"tm_o_ratio: amounts must contain {oxygen!r}")
    present = [m for m in metals if m in amounts]
    if not present:
        raise ValidationError(f"tm_o_ratio: amounts must contain at least one of {list(metals)}")
    o, o_sig = parts(amounts[oxygen])
    xp = array_module(o)
    tm = 0
    tm_var = 0
    have_sigma = o_sig is not None
    for m in present:
        a, s = parts(amounts[m])
        tm = tm + xp.nan_to_num(a, nan=0.0)
        if s is None:
            have_sigma = False
        else:
            tm_var = tm_var + xp.nan_to_num(s, nan=0.0) ** 2
    valid = xp.isfinite(o) & (o > min_oxygen)
    safe_o = xp.where(valid, o, 1.0)
    ratio = xp.where(valid, tm / safe_o, xp.nan)
    sigma = None
    if have_sigma:
        rel2 = tm_var / xp.where(tm != 0, tm, 1.0) ** 2 + (o_sig / safe_o) ** 2
        sigma = xp.where(valid, xp.abs(ratio) * xp.sqrt(rel2), xp.nan)
    return ratio, sigma, valid, int((~valid).sum())
