"""Per-voxel chemistry: stoichiometry with imposed deviations and oxidation-state
fractions with radial gradients.

Deviations act on the oxygen content (and Li), so the TM/O ratio of a voxel is
``target / o_factor``: oxygen-poor domains and the reduced surface layer have
``o_factor < 1`` (ratio above target), oxygen-rich domains ``o_factor > 1``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._backend import host_threads
from ..spectra import BUILTIN_STATES

__all__ = ["COMPOSITIONS", "ELEMENTS", "composition_fields", "draw_domains", "state_fields"]

ELEMENTS = ("Li", "Mn", "Co", "Ni", "O")
TM = ("Mn", "Co", "Ni")

#: Stoichiometry per formula unit, dense density (g/cm^3) and molar mass (g/mol)
#: follow from the formula; ``bulk``/``surface`` are oxidation-state fractions.
COMPOSITIONS = {
    "lrtmo": {
        "formula": "Li1.2Mn0.56Ni0.16Co0.08O2",
        "stoich": {"Li": 1.2, "Mn": 0.56, "Co": 0.08, "Ni": 0.16, "O": 2.0},
        "density_g_cm3": 4.3,
        "bulk": {"Mn": (0.0, 0.05, 0.95), "Co": (0.0, 0.95, 0.05), "Ni": (0.85, 0.15, 0.0),
                 "O": (0.93, 0.07)},
        "surface": {"Mn": (0.30, 0.50, 0.20), "Co": (0.40, 0.60, 0.0), "Ni": (1.0, 0.0, 0.0),
                    "O": (1.0, 0.0)},
    },
    "ncm811": {
        "formula": "Li(Ni0.8Co0.15Mn0.05)O2",
        "stoich": {"Li": 1.0, "Mn": 0.05, "Co": 0.15, "Ni": 0.8, "O": 2.0},
        "density_g_cm3": 4.75,
        "bulk": {"Mn": (0.0, 0.05, 0.95), "Co": (0.0, 1.0, 0.0), "Ni": (0.15, 0.80, 0.05),
                 "O": (0.97, 0.03)},
        "surface": {"Mn": (0.20, 0.50, 0.30), "Co": (0.30, 0.70, 0.0), "Ni": (0.70, 0.30, 0.0),
                    "O": (1.0, 0.0)},
    },
}

# Oxygen-poor domains also carry more reduced TM; oxygen-rich ones more O1- holes.
_REDUCED = {"Mn": (0.15, 0.60, 0.25), "Co": (0.30, 0.70, 0.0), "Ni": (0.80, 0.20, 0.0), "O": (1.0, 0.0)}
_O_RICH_O = (0.70, 0.30)


def molar_mass(stoich) -> float:
    import xraydb

    return float(sum(n * xraydb.atomic_mass(el) for el, n in stoich.items()))


def formula_unit_density(composition: str) -> float:
    """Dense formula units per nm^3 from the crystal density."""
    comp = COMPOSITIONS[composition]
    # g/cm^3 / (g/mol) * N_A -> per cm^3; 1 cm^3 = 1e21 nm^3
    return comp["density_g_cm3"] / molar_mass(comp["stoich"]) * 6.02214076e23 / 1e21


def target_tm_o(composition: str) -> float:
    s = COMPOSITIONS[composition]["stoich"]
    return (s["Mn"] + s["Co"] + s["Ni"]) / s["O"]


def draw_domains(n_grains: int, o_poor, o_rich, rng) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the oxygen-poor and oxygen-rich grains: the first ``o_poor[0]`` and
    the next ``o_rich[0]`` of one random permutation of 1 .. ``n_grains``."""
    picked = rng.permutation(np.arange(1, n_grains + 1))
    return picked[: o_poor[0]], picked[o_poor[0]: o_poor[0] + o_rich[0]]


def composition_fields(geom, *, composition, fu_density, radial_gradient, surface_layer,
                       surface_o_factor, o_poor, o_rich, li_depletion, li_depth, domains, dmax):
    """Element densities (atoms/nm^3) shaped (5, nz, ny, nx) and domain masks.

    ``radial_gradient`` is the fractional O loss at the surface decaying linearly
    to 0 at the centre (kept inside the tolerance); ``surface_layer`` (voxels)
    has O scaled by ``surface_o_factor``; ``o_poor``/``o_rich`` = (number of
    grains, O factor) for whole primary grains, ``domains`` their labels
    (:func:`draw_domains`); Li is depleted by ``li_depletion`` (fraction) at the
    surface with decay length ``li_depth`` voxels. ``dmax`` is the whole particle's
    largest depth (voxels, at least 1): ``geom`` may be a slab of z planes, every
    value here is per voxel but this one.
    """
    stoich = COMPOSITIONS[composition]["stoich"]
    depth = geom.depth
    o_factor = 1.0 - radial_gradient * (1.0 - depth / dmax)
    poor_ids, rich_ids = domains
    poor = np.isin(geom.grain, poor_ids)
    rich = np.isin(geom.grain, rich_ids)
    o_factor = np.where(poor, o_poor[1], np.where(rich, o_rich[1], o_factor))
    skin = geom.particle & (depth < surface_layer)
    o_factor = np.where(skin, surface_o_factor, o_factor).astype(np.float32)
    li_factor = (1.0 - li_depletion * np.exp(-depth / max(li_depth, 1e-6))).astype(np.float32)
    occ = geom.occupancy * np.float32(fu_density)
    density = np.empty((len(ELEMENTS), *depth.shape), np.float32)
    for i, el in enumerate(ELEMENTS):  # five elements: a fixed small set
        factor = o_factor if el == "O" else li_factor if el == "Li" else 1.0
        density[i] = occ * np.float32(stoich[el]) * factor
    return density, {"o_poor": poor & geom.particle, "o_rich": rich & geom.particle, "skin": skin}


def state_fields(geom, masks, *, composition, reduction_depth):
    """Oxidation-state fractions shaped (n_states, nz, ny, nx), float32.

    Each element's fractions are a convex mix of its bulk and surface sets with
    weight ``exp(-depth / reduction_depth)`` (voxels), then of a reduced set in
    oxygen-poor domains and of an O1--rich set in oxygen-rich domains, so they
    sum to 1 by construction.
    """
    comp = COMPOSITIONS[composition]
    w_surf = np.exp(-geom.depth / max(reduction_depth, 1e-6)).astype(np.float32)
    poor = masks["o_poor"].astype(np.float32) * (1.0 - w_surf)
    rich = masks["o_rich"].astype(np.float32) * (1.0 - w_surf)
    states = list(BUILTIN_STATES)
    out = np.empty((len(states), *geom.depth.shape), np.float32)

    def element(el):
        rows = [i for i, s in enumerate(states) if BUILTIN_STATES[s][0] == el]
        bulk = np.asarray(comp["bulk"][el], np.float32)
        surf = np.asarray(comp["surface"][el], np.float32)
        extra = np.asarray(_REDUCED[el], np.float32)
        rich_set = np.asarray(_O_RICH_O if el == "O" else comp["bulk"][el], np.float32)
        for j, row in enumerate(rows):  # 2-3 states per element
            base = bulk[j] * (1 - w_surf) + surf[j] * w_surf
            out[row] = base * (1 - poor - rich) + extra[j] * poor + rich_set[j] * rich

    # the four elements in threads (whole-volume numpy: the GIL is released; this was
    # ~0.2 s of one core on the acquire step's serial path at 128^3)
    with ThreadPoolExecutor(max(1, min(host_threads(), 4))) as pool:
        list(pool.map(element, (*TM, "O")))
    return out, states
