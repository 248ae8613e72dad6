"""Builtin model reference spectra per oxidation state (marked ``synthetic``).

The library of synthetic spectra that the simulator generates its data from
and that the pipeline fits with by default (``[spectra] references =
"builtin"``); the simulator imports it from here.

Model, per element ``e`` and state ``s`` (cross section per atom, nm^2)::

    sigma_s(E) = pre(E) + J(E) * [b3 S(E - e3_s) + b2 S(E - e2_s) + sum_k a_k G_k(E)]

``pre`` and ``post`` are power laws anchored on xraydb's tabulated (Elam) total
cross section exactly at the dual-energy pair ``EDGES[e]["below"]`` and
``EDGES[e]["above"]``; ``J = post - pre`` is the tabulated edge jump; ``S`` is
an error-function step (L3 and L2 with the statistical 2:1 branching ratio)
and ``G_k`` are Gaussian white lines whose positions shift with valence.
Steps and white lines sit >= 5 widths inside the pair, so the model equals
xraydb at ``below`` and ``above`` to better than 1e-4 of the jump: edge-jump
quantification with xraydb is exact on simulated data. Outside
``[below, above]`` the model *is* xraydb. The white-line shapes are invented
(plausible positions, not measured standards).
"""

from __future__ import annotations

import functools
from types import MappingProxyType

import numpy as np
import xarray as xr

from .._model import ValidationError
from .._physics import EDGE_WINDOWS_EV
from ._quantify import cross_section

__all__ = ["EDGES", "BUILTIN_STATES", "builtin_references", "builtin_cross_section"]

#: Absorption edges measured by soft X-ray spectro-tomography (energies in eV).
#: ``edge`` is xraydb's tabulated edge (K for O, L3 for TMs); ``below``/``above``
#: the dual-energy pair (pre-edge and post-edge continuum).
#: The scan ranges are the toolkit's edge windows (``_physics.EDGE_WINDOWS_EV``) and the
#: model's dual-energy pair is their ends. Read-only.
EDGES = MappingProxyType({
    el: MappingProxyType({"edge": edge, "range": EDGE_WINDOWS_EV[el],
                          "below": EDGE_WINDOWS_EV[el][0], "above": EDGE_WINDOWS_EV[el][1]})
    for el, edge in (("O", 543.1), ("Mn", 638.7), ("Co", 778.1), ("Ni", 852.7))
})

# Spin-orbit splitting L3 -> L2 (eV) and the L3 fraction of the jump.
_L2_OFFSET = {"O": None, "Mn": 11.2, "Co": 15.1, "Ni": 17.3}

# state -> (element, valence, L3 step centre eV, [(centre eV, amplitude, sigma eV), ...]).
# Amplitudes are in units of the local edge jump; L2 white lines reuse the L3
# pattern shifted by the spin-orbit splitting at 0.35x amplitude and 1.4x width.
# For O the "step" is the K-edge onset and there is no L2.
_STATE_TABLE = {
    "Mn2+": ("Mn", 2.0, 639.5, [(640.0, 4.0, 0.6), (641.5, 1.5, 0.7)]),
    "Mn3+": ("Mn", 3.0, 640.5, [(640.6, 1.2, 0.7), (641.9, 3.2, 0.7), (643.2, 1.5, 0.8)]),
    "Mn4+": ("Mn", 4.0, 641.5, [(641.3, 0.8, 0.6), (643.4, 3.6, 0.8), (644.9, 0.8, 0.8)]),
    "Co2+": ("Co", 2.0, 777.8, [(778.4, 3.5, 0.6), (779.7, 1.2, 0.7)]),
    "Co3+": ("Co", 3.0, 779.0, [(778.8, 0.6, 0.6), (780.0, 4.0, 0.6)]),
    "Co4+": ("Co", 4.0, 780.0, [(781.0, 3.2, 0.8), (782.5, 0.8, 0.8)]),
    "Ni2+": ("Ni", 2.0, 852.5, [(853.0, 4.0, 0.55), (855.0, 1.0, 0.7)]),
    "Ni3+": ("Ni", 3.0, 853.3, [(853.7, 2.0, 0.6), (854.6, 2.8, 0.6)]),
    "Ni4+": ("Ni", 4.0, 854.2, [(853.6, 0.5, 0.6), (855.3, 3.5, 0.7)]),
    "O2-": ("O", -2.0, 535.0, [(529.6, 1.5, 0.6), (532.6, 0.8, 1.0), (541.0, 1.0, 3.0)]),
    "O1-": ("O", -1.0, 535.0, [(529.6, 1.0, 0.6), (531.0, 2.0, 0.5), (541.0, 1.0, 3.0)]),
}
_STEP_WIDTH = {"O": 1.5, "Mn": 0.6, "Co": 0.6, "Ni": 0.6}

#: state -> (element, formal valence) of every builtin state, grouped by
#: element in the order Mn, Co, Ni, O (read-only).
BUILTIN_STATES = MappingProxyType({s: (row[0], row[1]) for s, row in _STATE_TABLE.items()})


@functools.lru_cache(maxsize=None)
def _anchors(element: str) -> tuple[float, float, float, float]:
    """(pre at below, pre exponent, post at above, post exponent) of the power laws."""
    lo, hi = EDGES[element]["below"], EDGES[element]["above"]
    s_lo = cross_section(element, [lo - 15.0, lo])
    s_hi = cross_section(element, [hi, hi + 15.0])
    p = np.log(s_lo[1] / s_lo[0]) / np.log(lo / (lo - 15.0))
    q = np.log(s_hi[1] / s_hi[0]) / np.log((hi + 15.0) / hi)
    return float(s_lo[1]), float(p), float(s_hi[0]), float(q)


def _pre_post(element: str, energies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s_lo, p, s_hi, q = _anchors(element)
    edge = EDGES[element]
    return s_lo * (energies / edge["below"]) ** p, s_hi * (energies / edge["above"]) ** q


def _step(energies, centre, width):
    from scipy.special import erf  # scipy stays out of ``import spectrotomo.spectra``

    return 0.5 * (1.0 + erf((energies - centre) / (np.sqrt(2.0) * width)))


def _gauss(energies, centre, sigma):
    return np.exp(-0.5 * ((energies - centre) / sigma) ** 2)


def _normalized_shape(state: str, energies: np.ndarray) -> np.ndarray:
    """Edge-step-normalized model: 0 before the edge, 1 after it (plus white lines)."""
    element, _, e3, lines = _STATE_TABLE[state]
    width = _STEP_WIDTH[element]
    l2 = _L2_OFFSET[element]
    if l2 is None:
        shape = _step(energies, e3, width)
    else:
        shape = (2.0 / 3.0) * _step(energies, e3, width) + (1.0 / 3.0) * _step(energies, e3 + l2, width)
    for centre, amp, sigma in lines:
        shape = shape + amp * _gauss(energies, centre, sigma)
        if l2 is not None:
            shape = shape + 0.35 * amp * _gauss(energies, centre + l2, 1.4 * sigma)
    return shape


def builtin_cross_section(state: str, energies, *, normalized: bool = False) -> np.ndarray:
    """Model cross section of one builtin state, shape (n_energies,), nm^2 per atom.

    Parameters
    ----------
    state : str
        One of :data:`BUILTIN_STATES` (e.g. ``"Mn3+"``).
    energies : array_like, shape (n_energies,)
        Photon energies, eV.
    normalized : bool
        The edge-step-normalized spectrum (dimensionless) instead. Outside the
        element's ``[below, above]`` window the absolute model equals xraydb's
        tabulated cross section (:func:`cross_section`).
    """
    if state not in _STATE_TABLE:
        raise ValidationError(f"builtin_cross_section: state must be one of "
                              f"{list(_STATE_TABLE)}, got {state!r}")
    energies = np.atleast_1d(np.asarray(energies, dtype=float))
    shape = _normalized_shape(state, energies)
    if normalized:
        return shape
    return _absolute(_STATE_TABLE[state][0], shape[None], energies)[0]


def _absolute(element: str, shapes: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """Cross sections (k, n_energies) nm^2 of an element's normalized ``shapes`` (k, n).

    xraydb (a spline evaluated in a Python loop, ~40 us per energy) is called
    once per element for every energy outside its window, not once per state.
    """
    pre, post = _pre_post(element, energies)
    model = pre + (post - pre) * shapes
    edge = EDGES[element]
    outside = (energies < edge["below"]) | (energies > edge["above"])
    if outside.any():
        model[:, outside] = cross_section(element, energies[outside])
    return model


#: The default grid reaches this far (eV) beyond each element's scan range, so
#: that references shifted by a calibration offset still cover the scan
#: (:func:`spectrotomo.spectra.fit_energy_offset` searches +-1.5 eV).
BUILTIN_MARGIN_EV = 5.0
#: Step of the default grid (eV): linear interpolation between its points is
#: within ~0.4 % of the white lines' height (sigma >= 0.55 eV), so resampling
#: references at shifted energies adds little grid-locked ripple to an offset fit.
BUILTIN_STEP_EV = 0.1


def _default_energies(elements) -> np.ndarray:
    """Union of the elements' scan ranges +- BUILTIN_MARGIN_EV on a BUILTIN_STEP_EV grid, eV."""
    grids = []
    for e in elements:
        lo, hi = EDGES[e]["range"]
        n = int(round((hi - lo + 2 * BUILTIN_MARGIN_EV) / BUILTIN_STEP_EV)) + 1
        grids.append(np.round(lo - BUILTIN_MARGIN_EV + BUILTIN_STEP_EV * np.arange(n), 6))
    return np.unique(np.concatenate(grids))


def _states_of(elements) -> list[str]:
    return [s for s, row in _STATE_TABLE.items() if row[0] in elements]


def builtin_references(elements=None, *, energies=None, normalized: bool = True) -> xr.DataArray:
    """The builtin (synthetic) reference spectra of every oxidation state of ``elements``.

    Parameters
    ----------
    elements : sequence of str, optional
        Subset of ``("Mn", "Co", "Ni", "O")``; default all.
    energies : array_like, shape (n_energies,), optional
        Photon energies in eV; default the union of the elements' scan ranges
        (``EDGES[e]["range"]``) widened by ``BUILTIN_MARGIN_EV`` = 5 eV on each
        side, at ``BUILTIN_STEP_EV`` = 0.1 eV.
    normalized : bool
        True (default): edge-step normalized (pre-edge 0, post-edge 1),
        dimensionless. False: absolute cross section per atom in nm^2 (xraydb
        non-resonant background + edge + white lines), what the simulator's
        forward model uses.

    Returns
    -------
    xarray.DataArray, dims (state, energy), float64
        Coords ``state``, ``state_element``, ``state_valence`` and ``energy`` (eV);
        ``attrs["synthetic"] = True``.
    """
    elements = list(EDGES) if elements is None else [str(e) for e in np.atleast_1d(elements)]
    unknown = [e for e in elements if e not in EDGES]
    if unknown:
        raise ValidationError(f"builtin_references: elements must be among {list(EDGES)}, "
                              f"got {unknown}")
    energies = _default_energies(elements) if energies is None else np.atleast_1d(np.asarray(energies, float))
    if energies.ndim != 1 or not np.all(np.isfinite(energies)) or np.any(energies <= 0):
        raise ValidationError("builtin_references: energies must be a 1-D array of positive eV "
                              "values")
    states = _states_of(elements)
    values = np.stack([_normalized_shape(s, energies) for s in states])
    if not normalized:
        elem = np.array([_STATE_TABLE[s][0] for s in states])
        for e in elements:  # 1-4 elements, each with its 2-3 states at once
            values[elem == e] = _absolute(e, values[elem == e], energies)
    return xr.DataArray(
        values,
        dims=("state", "energy"),
        coords={
            "state": states,
            "state_element": ("state", [_STATE_TABLE[s][0] for s in states]),
            "state_valence": ("state", [float(_STATE_TABLE[s][1]) for s in states]),
            "energy": xr.DataArray(energies, dims="energy", attrs={"units": "eV"}),
        },
        name="spectra",
        attrs={
            "synthetic": True,
            "units": "1" if normalized else "nm^2",
            "long_name": "edge-step normalized absorption" if normalized else "cross section per atom",
            "description": "model spectra (xraydb Elam background + erf edge + Gaussian white lines "
                           "shifted by valence); NOT measured standards",
        },
    )
