import numpy as np
import pytest

from spectrotomo.simulate import fresnel_propagate, holotomo_series

E_EV, PIXEL_M = 17000.0, 20e-9
LAM = 1.239841984e-6 / E_EV


def _object(rng, n=64, strength=0.3):
    from scipy import ndimage

    phi = -strength * ndimage.gaussian_filter(rng.random((n, n)), 2)
    return np.exp(1j * phi + phi / 56.0), phi


def test_energy_conservation(rng):
    wave, _ = _object(rng)
    out = fresnel_propagate(wave, energy_ev=E_EV, distance_m=3e-3, pixel_size_m=PIXEL_M,
                            pad=None)
    assert np.sum(np.abs(out) ** 2) == pytest.approx(np.sum(np.abs(wave) ** 2), rel=1e-12)
    assert not np.allclose(np.abs(out), np.abs(wave), atol=1e-3)  # it did propagate


def test_forward_then_back_is_identity(rng):
    wave, _ = _object(rng)
    kw = dict(energy_ev=E_EV, pixel_size_m=PIXEL_M, pad=None)
    back = fresnel_propagate(fresnel_propagate(wave, distance_m=2e-3, **kw), distance_m=-2e-3,
                             **kw)
    np.testing.assert_allclose(back, wave, atol=1e-12)


def test_weak_object_matches_linear_ctf(rng):
    from scipy import ndimage

    n, z = 64, 2.5e-3
    phi = -0.01 * ndimage.gaussian_filter(rng.random((n, n)), 1.5)
    b = 5e-4 * ndimage.gaussian_filter(rng.random((n, n)), 1.5)
    inten = np.abs(fresnel_propagate(np.exp(1j * phi - b), energy_ev=E_EV, distance_m=z,
                                     pixel_size_m=PIXEL_M, pad=None)) ** 2
    f = np.fft.fftfreq(n, PIXEL_M)
    chi = np.pi * LAM * z * (f[:, None] ** 2 + f[None, :] ** 2)
    pred = np.fft.ifft2(2 * np.sin(chi) * np.fft.fft2(phi) - 2 * np.cos(chi) * np.fft.fft2(b)).real
    assert np.abs(inten - 1 - pred).max() < 2e-3 * np.abs(pred).max()


def test_fresnel_scaling_theorem_magnifies(rng):
    n = 64
    d = np.zeros((2, n, n))
    d[:, 24:40, 24:40] = 2e-12
    b = d / 56
    par = holotomo_series(d, b, energy_ev=E_EV, distances_m=[1e-3], pixel_size_m=PIXEL_M)
    z1, z2 = 0.1, np.array([1e-3, 2e-3])
    div = holotomo_series(d, b, energy_ev=E_EV, distances_m=z2, pixel_size_m=PIXEL_M,
                          source_to_sample_m=z1, shifts_px=[[0, 0], [1.5, -2.0]])
    np.testing.assert_allclose(div.magnification, (z1 + z2) / z1)
    np.testing.assert_allclose(div.effective_distance, z1 * z2 / (z1 + z2))
    assert div.projections.dims == ("energy", "distance", "angle", "y", "x")
    assert div.true_shift.values[1].tolist() == [1.5, -2.0]
    # The first distance at z_eff ~ 0.99 mm is close to the 1 mm parallel image.
    assert np.abs(div.projections[0, 0] - par.projections[0, 0]).max() < 0.05


def test_noise_is_seeded(rng):
    d = np.zeros((1, 16, 16))
    d[0, 4:12, 4:12] = 1e-12
    a = holotomo_series(d, d / 50, energy_ev=E_EV, distances_m=[1e-3], pixel_size_m=PIXEL_M,
                        photons=1e4, seed=3)
    b = holotomo_series(d, d / 50, energy_ev=E_EV, distances_m=[1e-3], pixel_size_m=PIXEL_M,
                        photons=1e4, seed=3)
    np.testing.assert_array_equal(a.projections, b.projections)
    assert 0.005 < float(a.projections[0, 0, 0, :4, :4].std()) < 0.02  # ~1/sqrt(1e4)


@pytest.mark.parametrize("kw, match", [
    (dict(distances_m=[0.0]), "distances_m"),
    (dict(distances_m=[1e-3] * 5), "1-4"),
    (dict(energy_ev=10.0), "energy_ev"),
    (dict(pixel_size_m=20.0), "did you pass nm"),
])
def test_bad_input(kw, match):
    d = np.zeros((1, 8, 8))
    args = dict(energy_ev=E_EV, distances_m=[1e-3], pixel_size_m=PIXEL_M)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        holotomo_series(d, d, **args)
    with pytest.raises(ValueError, match="share a shape"):
        holotomo_series(np.zeros((1, 8, 8)), np.zeros((1, 8, 9)), energy_ev=E_EV,
                        distances_m=[1e-3], pixel_size_m=PIXEL_M)
