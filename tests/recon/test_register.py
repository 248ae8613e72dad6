import numpy as np
import pytest

from spectrotomo import ValidationError
from spectrotomo.recon import normalize, register_energies


def _series(truth, energies, *, seed, photons=2e4, ref=0):
    from spectrotomo.simulate import tilt_series

    ts = tilt_series(truth, energies=energies, angles=[20.0], energy_shift_px=1.5,
                     magnification=0.01, photons=photons, seed=seed)
    od = np.stack([normalize(ts.projections.values[k], ts.flats.values[k],
                             ts.darks.values[k])[0][0] for k in range(len(energies))])
    d, s = ts.true_energy_shift.values, ts.true_scale.values
    rel_scale = s / s[ref]
    return od, d - rel_scale[:, None] * d[ref], rel_scale


@pytest.mark.parametrize("seed", [3, 4])
def test_shift_and_magnification_estimated_with_shared_contrast(small_particle, seed):
    energies = [600.0, 605.0, 610.0, 615.0]  # between edges: contrast shared
    od, shift, scale = _series(small_particle, energies, seed=seed, ref=1)
    registered, res = register_energies(od, reference=1)
    assert res.scale_source == "estimated"
    assert np.abs(res.scales / scale - 1).max() <= 1e-3
    assert np.abs(res.shifts - shift).max() <= 0.2
    assert res.residual_px.max() <= 0.2
    before = np.abs(od - od[1]).mean()
    assert np.abs(registered - registered[1]).mean() < 0.5 * before


def test_edge_pair_with_estimated_scale(small_particle):
    from spectrotomo.simulate import EDGES

    energies = [EDGES["Co"]["below"], EDGES["Co"]["above"]]
    od, shift, scale = _series(small_particle, energies, seed=5)
    _, res = register_energies(od, reference=0)
    assert np.abs(res.scales / scale - 1).max() <= 1e-3
    assert np.abs(res.shifts - shift).max() <= 0.2


def test_across_edges_with_pixel_size_metadata(small_particle):
    from spectrotomo.simulate import EDGES

    energies = sorted([EDGES["O"]["below"], EDGES["O"]["above"], EDGES["Mn"]["below"], 645.0,
                       EDGES["Mn"]["above"]])
    od, shift, scale = _series(small_particle, energies, seed=3, ref=2)
    pixel_sizes = 20.0 / scale  # nm: a magnified image has smaller sample-plane pixels
    _, res = register_energies(od, reference=2, pixel_sizes=pixel_sizes)
    assert res.scale_source == "metadata"
    np.testing.assert_allclose(res.scales, scale, rtol=1e-12)
    assert np.abs(res.shifts - shift).max() <= 0.2
    assert res.residual_px.max() <= 0.2 and res.residual_rms.shape == (5,)


def test_translation_only_and_summary(rng):
    from scipy import ndimage

    img = ndimage.gaussian_filter(rng.uniform(0, 1, (48, 48)), 2)
    shifts = np.array([[0, 0], [1.3, -2.2], [-0.6, 0.4]])
    stack = np.stack([ndimage.shift(img, s, order=3, mode="nearest") for s in shifts])
    _, res = register_energies(stack, reference=0, estimate_scale=False)
    assert res.scale_source == "fixed" and np.all(res.scales == 1)
    np.testing.assert_allclose(res.shifts, shifts, atol=0.05)
    assert set(res.summary()) >= {"shifts", "scales", "residual_px", "residual_rms"}


def test_bad_input():
    with pytest.raises(ValidationError, match="n_energies, ny, nx"):
        register_energies(np.ones((8, 8)))
    with pytest.raises(ValidationError, match="NaN"):
        register_energies(np.full((2, 8, 8), np.nan))
    with pytest.raises(ValidationError, match="reference"):
        register_energies(np.ones((2, 8, 8)), reference=5)
    with pytest.raises(ValidationError, match="pixel_sizes"):
        register_energies(np.ones((2, 8, 8)), pixel_sizes=[10.0, -1.0])
