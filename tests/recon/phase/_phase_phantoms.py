"""Holotomography phantoms of the phase tests: LiMn2O4-like particle at 17 keV, 20 nm pixels."""

import numpy as np
import pytest

E_EV = 17000.0
PIXEL_M = 20e-9
DISTANCES_M = (1e-3, 1.5e-3, 2.3e-3, 3.4e-3)
MARGIN = 40  # vacuum around the 48 px projections: fringes stay in the 128 px field


def _materials():
    xraydb = pytest.importorskip("xraydb")
    d1, b1, _ = xraydb.xray_delta_beta("LiMn2O4", 4.28, E_EV)
    d2, b2, _ = xraydb.xray_delta_beta("Li2CO3", 2.11, E_EV)
    return (d1, b1), (d2, b2)


def _volumes(n=48):
    from spectrotomo.simulate import ball

    occ = ball((n, n, n), 17)
    inner = ball((n, n, n), 7, center=(24, 27, 21))
    void = ball((n, n, n), 4, center=(22, 18, 29))
    crack = np.zeros((n, n, n))
    crack[:, 22:24, 8:30] = 1
    matrix = np.clip(occ - inner - void - crack * occ, 0, 1)
    return occ, matrix, inner


def _series(delta_vol, beta_vol, angles):
    from spectrotomo.simulate import holotomo_series, project

    def proj(v):
        return np.pad(project(v, angles) * PIXEL_M, ((0, 0), (MARGIN, MARGIN), (MARGIN, MARGIN)))

    return holotomo_series(proj(delta_vol), proj(beta_vol), energy_ev=E_EV,
                           distances_m=DISTANCES_M, pixel_size_m=PIXEL_M, angles=angles)


def rel_rms(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2) / np.mean(b ** 2)))


def holo_series_pair(angles):
    (d1, b1), (d2, b2) = _materials()
    occ, matrix, inner = _volumes()
    out = {
        "homogeneous": _series(occ * d1, occ * b1, angles),
        "mixed": _series(matrix * d1 + inner * d2, matrix * b1 + inner * b2, angles),
    }
    for ds in out.values():
        ds.attrs["prior_delta_beta"] = d1 / b1
    return out
