import numpy as np
import pytest

from spectrotomo.simulate import holotomo_sample, refractive_index

AVOGADRO = 6.02214076e23


@pytest.mark.parametrize("formula,counts,grams_per_cm3", [
    ("Ni", {"Ni": 1}, 8.908), ("LiMn2O4", {"Li": 1, "Mn": 2, "O": 4}, 4.2)])
def test_refractive_index_matches_xraydb(formula, counts, grams_per_cm3):
    import xraydb

    molar = sum(xraydb.atomic_mass(el) * n for el, n in counts.items())
    per_nm3 = grams_per_cm3 / molar * AVOGADRO / 1e21
    density = np.array([n * per_nm3 for n in counts.values()])
    delta, beta, rho_e = refractive_index(density, list(counts), 17000.0)
    ref_delta, ref_beta, _ = xraydb.xray_delta_beta(formula, grams_per_cm3, 17000.0)
    assert delta == pytest.approx(ref_delta, rel=1e-6)
    assert beta == pytest.approx(ref_beta, rel=1e-6)
    assert rho_e > sum(xraydb.atomic_number(el) * n for el, n in zip(counts, density)) * 0.99


def test_holotomo_sample_fields():
    tree = holotomo_sample("small", n_angles=5, photons=None)
    truth, ts = tree["truth"].to_dataset(), tree["tilt_series"].to_dataset()
    assert ts["projections"].dims == ("energy", "distance", "angle", "y", "x")
    assert ts.attrs["true_center"] == (ts.sizes["x"] - 1) / 2
    solid = truth["occupancy"].values > 0
    assert np.all(truth["delta"].values[solid] > 0) and np.all(truth["delta"].values[~solid] == 0)
    # vacuum margin: the particle leaves >= 8 voxels free on every side
    occupied = np.nonzero(truth["particle"].values.any(axis=(0, 1)))[0]
    assert occupied.min() >= 8 and occupied.max() <= ts.sizes["x"] - 9
    # the phase of the thickest projection is a few hundredths of a radian, negative
    assert -0.2 < float(ts["true_phase"].min()) < -0.02
