"""Physical constants shared by the stages (one definition each).

Units follow the project's conventions: energies in eV, lengths in nm, with the
SI-metre forms kept for the formulas (Fresnel propagation, Paganin, CTF) that take
metres at their boundary.
"""

from __future__ import annotations

__all__ = ["HC_EV_M", "HC_EV_NM", "wavelength_nm", "EDGE_WINDOWS_EV", "PAIR_MARGIN_EV",
           "pair_window"]

#: h * c in eV * m (CODATA 2018): wavelength_m = HC_EV_M / energy_eV.
HC_EV_M = 1.239841984e-6
#: h * c in eV * nm: wavelength_nm = HC_EV_NM / energy_eV.
HC_EV_NM = HC_EV_M * 1e9


def wavelength_nm(energy_ev):
    """Photon wavelength in nm for ``energy_ev`` (eV; scalar or array)."""
    return HC_EV_NM / energy_ev


#: Energy windows (eV) of the soft X-ray absorption edges the toolkit quantifies:
#: O K, Mn L3, Co L3, Ni L3 (the design card's measurement windows). The spectra
#: stage fits inside them; dual-energy pairs may lie up to ``PAIR_MARGIN_EV`` outside.
EDGE_WINDOWS_EV = {"O": (525.0, 555.0), "Mn": (635.0, 665.0), "Co": (775.0, 805.0),
                   "Ni": (848.0, 880.0)}
#: How far outside its edge window (eV) a below/above image may be taken and still
#: pair with the window (below-edge images are often recorded a few eV lower).
PAIR_MARGIN_EV = {"O": (5.0, 5.0), "Mn": (5.0, 5.0), "Co": (5.0, 5.0), "Ni": (3.0, 5.0)}


def pair_window(element: str) -> tuple[float, float]:
    """(lo, hi) eV inside which an element's dual-energy images are paired."""
    (lo, hi), (below, above) = EDGE_WINDOWS_EV[element], PAIR_MARGIN_EV[element]
    return lo - below, hi + above
