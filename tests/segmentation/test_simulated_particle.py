"""Segmentation on the simulator's ground-truth particle (spectrotomo.simulate)."""

import numpy as np
import pytest
from scipy import ndimage

from spectrotomo.segmentation import (class_fractions, composition_classes, defect_table, depth,
                                      find_cracks, find_pores, particle_mask, profile_table,
                                      shells)
from spectrotomo.spectra import EDGES


@pytest.fixture(scope="module")
def truth():
    simulate = pytest.importorskip("spectrotomo.simulate")
    return simulate.particle("small", seed=0)


@pytest.fixture(scope="module")
def absorption(truth):
    from spectrotomo import simulate

    mu = simulate.attenuation(truth, [EDGES["Mn"]["above"]]).values[0]
    rng = np.random.default_rng(7)
    return mu + rng.normal(0, 0.03 * mu.max(), mu.shape)  # 3 % of the solid level


def _recall_precision(found, true, tolerance_voxels=0):
    grow = (lambda a: ndimage.binary_dilation(a, iterations=tolerance_voxels)) \
        if tolerance_voxels else (lambda a: a)
    recall = (grow(found) & true).sum() / true.sum()
    precision = (grow(true) & found).sum() / found.sum()
    return recall, precision


def test_classes_noise_free(truth):
    target, tol = truth.attrs["target_tm_o"], truth.attrs["tolerance"]
    classes = composition_classes(truth["tm_o_ratio"], target, tol,
                                  signal=truth["occupancy"], min_signal=0.5)
    true = truth["composition_class"].values
    assert (classes.values == true)[true > 0].mean() >= 0.95
    ours = class_fractions(classes, truth["particle"])["fraction"].values[0]
    ref = class_fractions(true, truth["particle"].values)["fraction"].values[0]
    np.testing.assert_allclose(ours, ref, atol=0.01)
    assert ref[1] > 0.5 and ref[2] > 0.05 and ref[3] > 0.01  # all classes present


def test_classes_from_noisy_element_amounts(truth):
    # What the spectra stage hands over: element amounts with 1 % noise each.
    rng = np.random.default_rng(3)
    dens = truth["density"].values * (1 + rng.normal(0, 0.01, truth["density"].shape))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = dens[1:4].sum(axis=0) / dens[4]
    mask = particle_mask(truth["occupancy"].values)
    classes = composition_classes(ratio, truth.attrs["target_tm_o"], truth.attrs["tolerance"],
                                  mask=mask, signal=truth["occupancy"].values, min_signal=0.5)
    true = truth["composition_class"].values
    assert (classes == true)[true > 0].mean() >= 0.95
    ours = class_fractions(classes, mask)
    ref = class_fractions(true, truth["particle"].values)
    np.testing.assert_allclose(ours["fraction"].values[0, 1:], ref["fraction"].values[0, 1:],
                               atol=0.01)
    # Voids and cracks inside the envelope are unclassified and counted.
    assert int(ours["count"].values[0, 0]) > 0


def test_depth_matches_simulator(truth):
    ours = depth(truth["particle"])
    inside = truth["particle"].values
    diff = (ours.values - truth["depth"].values)[inside]
    assert np.abs(diff).max() <= truth.attrs["pixel_size"]  # one voxel


def test_shells_of_simulated_particle(truth):
    s = shells(truth["particle"], 5)
    d = truth["depth"].values
    counts = np.bincount(s.values.ravel(), minlength=6)[1:]
    assert np.ptp(counts) <= 1 and counts.sum() == truth["particle"].values.sum()
    means = [d[s.values == k].mean() for k in range(1, 6)]
    assert np.all(np.diff(means) > 0)


def test_valence_and_li_profiles_show_surface_gradient(truth):
    # The simulator reduces TMs within ~60 nm and depletes Li within ~100 nm.
    solid = (truth["occupancy"] >= 0.5).values
    valence = truth["valence"].where(solid)
    by_shell = profile_table(valence, by="shell", labels=truth["particle"])
    mn = by_shell["mean"].sel(element="Mn").values
    assert mn[0] < mn[-1]
    li = (truth["density"].sel(element="Li") / truth["density"].sel(element="O")).where(solid)
    li.attrs.update(units="1")
    by_depth = profile_table(li, by="depth", labels=truth["particle"], bins=[0, 40, 100, 200,
                                                                               400])
    prof = by_depth["mean"].values
    assert prof[0] < prof[-1]
    # Cross-check one bin against a direct selection.
    d = truth["depth"].values
    sel = truth["particle"].values & (d >= 100) & (d < 200) & solid
    assert by_depth["count"].values[2] == pytest.approx(sel.sum(), rel=0.1)


def test_voids_and_cracks_of_simulated_particle(truth, absorption):
    mask = particle_mask(absorption)
    envelope = truth["particle"].values
    assert (mask ^ envelope).sum() < 0.01 * envelope.sum()
    pores = find_pores(absorption, mask, spacing=20.0)
    cracks = find_cracks(absorption, mask, spacing=20.0)
    # Stated (3 % noise, 20 nm voxels, 30 nm wide cracks): voids recall and precision
    # >= 0.9 voxel by voxel; cracks recall >= 0.9, precision >= 0.65 voxel by voxel
    # (partial-volume neighbours of a 1.5-voxel crack) and >= 0.9 within one voxel.
    recall, precision = _recall_precision(pores > 0, truth["void"].values)
    assert recall >= 0.9 and precision >= 0.9
    recall, precision = _recall_precision(cracks > 0, truth["crack"].values)
    assert recall >= 0.9 and precision >= 0.65
    _, precision = _recall_precision(cracks > 0, truth["crack"].values, 1)
    assert precision >= 0.9
    table = defect_table(mask, pores=pores, cracks=cracks, spacing=20.0)
    true_porosity = truth["void"].values.sum() / envelope.sum()
    assert float(table["porosity"][0]) == pytest.approx(true_porosity, rel=0.15)


def test_on_fbp_reconstruction_of_full_range_scan(truth):
    # End to end on a reconstruction (holotomography-like 180 deg scan, no wedge).
    from spectrotomo import simulate

    recon = pytest.importorskip("spectrotomo.recon")
    mu = simulate.attenuation(truth, [EDGES["Mn"]["above"]]).values[0]
    angles = np.arange(0.0, 180.0, 1.0)
    vol = recon.reconstruct(simulate.project(mu * truth.attrs["pixel_size"], angles), angles,
                            algorithm="fbp")
    envelope = truth["particle"].values
    mask = particle_mask(vol)
    assert 2 * (mask & envelope).sum() / (mask.sum() + envelope.sum()) > 0.99
    pores = find_pores(vol, mask, spacing=20.0)
    cracks = find_cracks(vol, mask, spacing=20.0)
    # Stated on FBP: voids recall >= 0.85, precision >= 0.9; cracks recall >= 0.9,
    # precision >= 0.9 within one voxel.
    recall, precision = _recall_precision(pores > 0, truth["void"].values)
    assert recall >= 0.85 and precision >= 0.9
    recall, _ = _recall_precision(cracks > 0, truth["crack"].values)
    _, precision = _recall_precision(cracks > 0, truth["crack"].values, 1)
    assert recall >= 0.9 and precision >= 0.9
