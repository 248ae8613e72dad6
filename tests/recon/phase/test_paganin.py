import numpy as np
import pytest

from spectrotomo import recon
from spectrotomo._model import ValidationError

from _phase_phantoms import DISTANCES_M, E_EV, PIXEL_M, rel_rms

KW = dict(energy_ev=E_EV, distance_m=DISTANCES_M[0], pixel_size_m=PIXEL_M)


def _independent_paganin(img, energy_ev, z, p, db):
    """The formula, written with numpy.fft, a full meshgrid and explicit edge padding."""
    ny, nx = img.shape
    pny, pnx = 2 * ny, 2 * nx
    top, left = (pny - ny) // 2, (pnx - nx) // 2
    big = np.pad(img, ((top, pny - ny - top), (left, pnx - nx - left)), mode="edge")
    lam = 12.398419843320026e-7 / energy_ev  # h c / E in m (eV * m)
    v, u = np.meshgrid(np.fft.fftfreq(pnx, p), np.fft.fftfreq(pny, p))
    filtered = np.fft.ifft2(np.fft.fft2(big) / (1 + np.pi * lam * z * db * (u ** 2 + v ** 2)))
    return db / 2 * np.log(filtered.real[top:top + ny, left:left + nx])


def test_matches_independent_formula(rng):
    img = 1 + 0.2 * rng.random((3, 40, 50)) - 0.1
    db = 80.0
    got = recon.phase.paganin(img, delta_beta=db, padded_shape=(80, 100), **KW)
    want = np.stack([_independent_paganin(i, E_EV, KW["distance_m"], PIXEL_M, db) for i in img])
    assert got.shape == img.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * np.abs(want).max())


def test_matches_nabu_after_conversion(rng):
    phase_mod = pytest.importorskip("nabu.preproc.phase")
    img = 1 + 0.2 * rng.random((48, 60)) - 0.1
    db, z = 120.0, 2e-3
    pag = phase_mod.PaganinPhaseRetrieval(img.shape, distance=z, energy=E_EV / 1e3,
                                          delta_beta=db, pixel_size=PIXEL_M, padding="edge")
    # nabu returns the filtered intensity: phi = (delta_beta / 2) * ln(nabu).
    want = db / 2 * np.log(pag.apply_filter(img))
    got = recon.phase.paganin(img, energy_ev=E_EV, distance_m=z, pixel_size_m=PIXEL_M,
                        delta_beta=db, padded_shape=pag.shape_padded)
    # nabu's wavelength constant (12.3984199 keV A) differs from CODATA by 1e-9.
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7 * np.abs(want).max())


@pytest.mark.parametrize("kind, tol", [("homogeneous", 0.20), ("mixed", 0.42)])
def test_projected_delta_vs_truth(holo_objects, kind, tol):
    ds = holo_objects[kind]
    intensity = ds.projections.values[0, 0]
    phi = recon.phase.paganin(intensity, delta_beta=ds.attrs["prior_delta_beta"], **KW)
    k = 2 * np.pi / (recon.phase.wavelength_m(E_EV))
    true_delta_proj = -ds.true_phase.values / k  # metres
    # Measured: 0.177 (homogeneous), 0.377 (mixed: Li2CO3 core has delta/beta 1725, not 56).
    assert rel_rms(-phi / k, true_delta_proj) < tol


def test_float32_and_batching(rng):
    img = (1 + 0.1 * rng.random((5, 32, 32))).astype(np.float32)
    out32 = recon.phase.paganin(img, delta_beta=50.0, **KW)
    out64 = recon.phase.paganin(img.astype(float), delta_beta=50.0, **KW)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out64[2], recon.phase.paganin(img[2].astype(float), delta_beta=50.0,
                                                       **KW), rtol=1e-12)


def test_dask_chunks_along_angles(rng):
    da = pytest.importorskip("dask.array")
    img = 1 + 0.1 * rng.random((6, 32, 40))
    lazy = da.from_array(img, chunks=(2, 32, 40)).map_blocks(
        recon.phase.paganin, delta_beta=50.0, dtype=float, **KW)
    np.testing.assert_allclose(lazy.compute(), recon.phase.paganin(img, delta_beta=50.0, **KW),
                               rtol=1e-12)


@pytest.mark.parametrize("bad, match", [
    (dict(distance_m=0.0), "distance_m"),
    (dict(distance_m=-1e-3), "distance_m"),
    (dict(energy_ev=500.0), "energy_ev"),
    (dict(energy_ev=17.0), "17 keV is 17000"),
    (dict(energy_ev=2e5), "energy_ev"),
    (dict(pixel_size_m=20.0), "did you pass nm"),
    (dict(delta_beta=-3.0), "delta_beta"),
    (dict(pad="wrap"), "pad"),
])
def test_bad_input(bad, match):
    args = dict(KW, delta_beta=50.0)
    args.update(bad)
    with pytest.raises(ValidationError, match=match):
        recon.phase.paganin(np.ones((8, 8)), **args)


def test_bad_intensity():
    with pytest.raises(ValidationError, match="intensity"):
        recon.phase.paganin(np.ones(8), delta_beta=50.0, **KW)
    with pytest.raises(ValidationError, match="real"):
        recon.phase.paganin(np.ones((8, 8), complex), delta_beta=50.0, **KW)


@pytest.mark.gpu
def test_cupy_matches_numpy(rng):
    import cupy

    img = 1 + 0.1 * rng.random((4, 32, 32))
    got = recon.phase.paganin(cupy.asarray(img), delta_beta=50.0, **KW)
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_allclose(got.get(), recon.phase.paganin(img, delta_beta=50.0, **KW), rtol=1e-9)
