"""Physical constants shared by the stages (one definition each).

Units follow the project's conventions: energies in eV, lengths in nm, with the
SI-metre forms kept for the formulas (Fresnel propagation, Paganin, CTF) that take
metres at their boundary.
"""

from __future__ import annotations

__all__ = ["HC_EV_M", "HC_EV_NM", "wavelength_nm"]

#: h * c in eV * m (CODATA 2018): wavelength_m = HC_EV_M / energy_eV.
HC_EV_M = 1.239841984e-6
#: h * c in eV * nm: wavelength_nm = HC_EV_NM / energy_eV.
HC_EV_NM = HC_EV_M * 1e9


def wavelength_nm(energy_ev):
    """Photon wavelength in nm for ``energy_ev`` (eV; scalar or array)."""
    return HC_EV_NM / energy_ev
