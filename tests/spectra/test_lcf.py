import warnings

import numpy as np
import pytest
from scipy.optimize import minimize, nnls

from spectrotomo import ValidationError
from spectrotomo.spectra import lcf


def _random_problems(rng, n_sets=20, per_set=500):
    """10^4 random problems: 20 reference sets (k = 1..6) x 500 spectra."""
    for i in range(n_sets):
        k = 1 + i % 6
        n = int(rng.integers(k + 1, 40))
        refs = rng.normal(size=(k, n)) + rng.random((k, n))
        spectra = rng.normal(size=(per_set, n)) + rng.random((per_set, k)) @ refs
        yield refs, spectra


def test_nonneg_matches_scipy_nnls_on_1e4_problems(rng):
    count = 0
    for refs, spectra in _random_problems(rng):
        res = lcf(spectra, refs, nonneg=True, workers=1)
        for s, f, r in zip(spectra, res.fractions, res.residual):
            x, rnorm = nnls(refs.T, s)
            assert np.allclose(f, x, rtol=0, atol=1e-6 * max(1.0, np.abs(x).max()))
            assert abs(r - rnorm) <= 1e-6 * max(1.0, rnorm)
            count += 1
        assert np.all(res.fractions >= 0)  # exactly, not within a tolerance
    assert count == 10_000


def _kkt_violation(refs, spectra, fractions):
    """Largest violation of the KKT conditions of nonneg + sum_to_one (scaled)."""
    g = fractions @ (refs @ refs.T) - spectra @ refs.T  # gradient / 2, (N, k)
    support = fractions > 1e-9
    nu = -np.where(support, g, np.nan)
    nu = np.nanmean(nu, axis=1)[:, None]
    stationarity = np.where(support, np.abs(g + nu), 0).max(axis=1)
    dual = np.where(~support, np.minimum(g + nu, 0), 0).min(axis=1)
    scale = np.abs(g).max(axis=1) + 1
    return np.maximum(stationarity, -dual) / scale


def test_nonneg_sum_to_one_satisfies_kkt_on_1e4_problems(rng):
    for refs, spectra in _random_problems(rng):
        f = lcf(spectra, refs, nonneg=True, sum_to_one=True).fractions
        assert np.all(f >= 0)
        assert np.allclose(f.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        assert _kkt_violation(refs, spectra, f).max() < 1e-8


def test_nonneg_sum_to_one_matches_slsqp_and_brute_force(rng):
    k, n = 4, 25
    refs = rng.random((k, n)) + np.eye(k, n)
    spectra = rng.normal(size=(150, n)) * 0.3 + rng.dirichlet(np.ones(k), 150) @ refs
    res = lcf(spectra, refs, nonneg=True, sum_to_one=True)
    # brute force: objective on a fine simplex grid never beats ours
    grid = np.stack(np.meshgrid(*[np.linspace(0, 1, 21)] * (k - 1), indexing="ij"), -1)
    grid = grid.reshape(-1, k - 1)
    grid = grid[grid.sum(1) <= 1]
    grid = np.concatenate([grid, 1 - grid.sum(1, keepdims=True)], axis=1)
    for s, f, r in zip(spectra, res.fractions, res.residual):
        opt = minimize(lambda x: np.sum((x @ refs - s) ** 2), np.full(k, 1 / k),
                       jac=lambda x: 2 * refs @ (x @ refs - s), method="SLSQP",
                       bounds=[(0, None)] * k,
                       constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}],
                       options={"ftol": 1e-15, "maxiter": 500})
        assert r**2 <= opt.fun + 1e-9
        assert np.allclose(f, opt.x, atol=1e-5)
        brute = np.sum((grid @ refs - s) ** 2, axis=1).min()
        assert r**2 <= brute + 1e-12


def test_unconstrained_and_sum_to_one_alone_are_exact(rng):
    k, n = 3, 40
    refs = rng.random((k, n))
    spectra = rng.normal(size=(300, n))
    free = lcf(spectra, refs, nonneg=False)
    x = np.linalg.lstsq(refs.T, spectra.T, rcond=None)[0].T
    assert np.allclose(free.fractions, x, atol=1e-10)
    assert np.any(free.fractions < 0)  # no hidden non-negativity
    eq = lcf(spectra, refs, nonneg=False, sum_to_one=True)
    kkt = np.block([[refs @ refs.T, np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
    rhs = np.concatenate([refs @ spectra.T, np.ones((1, 300))])
    expected = np.linalg.solve(kkt, rhs)[:k].T
    assert np.allclose(eq.fractions, expected, atol=1e-10)
    assert np.allclose(eq.fractions.sum(axis=1), 1.0, atol=1e-12)
    assert np.allclose(eq.residual, np.linalg.norm(expected @ refs - spectra, axis=1), atol=1e-9)


def test_known_fractions_recovered_on_noisy_spectra(rng, refs3):
    energies, refs = refs3
    truth = rng.dirichlet(np.ones(3), size=(20, 30))  # a 2-D map of fractions
    sigma = 0.01
    spectra = truth @ refs + rng.normal(scale=sigma, size=(20, 30, energies.size))
    res = lcf(spectra.astype(np.float32), refs, nonneg=True, sum_to_one=True)
    assert res.fractions.shape == (20, 30, 3) and res.residual.shape == (20, 30)
    # expected noise of the unconstrained estimate: sigma * sqrt(diag((R R^T)^-1))
    expected_std = sigma * np.sqrt(np.diag(np.linalg.inv(refs @ refs.T))).max()
    err = res.fractions - truth
    assert np.sqrt(np.mean(err**2)) < 1.5 * expected_std
    assert np.abs(err).max() < 6 * expected_std
    # the residual is the noise: ~ sigma * sqrt(n - k)
    assert np.median(res.residual) == pytest.approx(sigma * np.sqrt(energies.size - 3), rel=0.1)
    assert res.quality_mask.all() and res.n_masked == 0


def test_nan_spectra_are_masked_and_counted(rng, refs3):
    _, refs = refs3
    spectra = rng.random((50, 3)) @ refs
    spectra[[3, 7], 10] = np.nan
    spectra[11, 0] = np.inf
    res = lcf(spectra, refs)
    assert res.n_masked == 3
    assert np.isnan(res.fractions[[3, 7, 11]]).all() and np.isnan(res.residual[[3, 7, 11]]).all()
    assert not res.quality_mask[[3, 7, 11]].any()
    ok = np.setdiff1d(np.arange(50), [3, 7, 11])
    assert np.isfinite(res.fractions[ok]).all() and res.quality_mask[ok].all()


def test_background_terms_are_eliminated_exactly(rng, refs3):
    energies, refs = refs3
    truth = rng.random((100, 3))
    line = rng.normal(size=(100, 1)) + rng.normal(size=(100, 1)) * np.linspace(-1, 1, energies.size)
    spectra = truth @ refs + line
    res = lcf(spectra, refs, background=1)
    assert np.allclose(res.fractions, truth, atol=1e-9)
    # residual from the Gram identity: absolute accuracy ~ sqrt(eps) * ||s||
    assert np.all(res.residual <= 1e-6 * np.linalg.norm(spectra, axis=1))


def test_dask_threaded_and_float32_paths_agree(rng, refs3):
    da = pytest.importorskip("dask.array")
    _, refs = refs3
    spectra = rng.random((16, 16, 3)) @ refs + rng.normal(scale=0.01, size=(16, 16, 100))
    eager = lcf(spectra, refs, sum_to_one=True, block=50)
    lazy = lcf(da.from_array(spectra, chunks=(5, 16, 50)), refs, sum_to_one=True)
    assert np.allclose(lazy.fractions.compute(), eager.fractions, atol=1e-12)
    assert np.array_equal(lazy.quality_mask.compute(), eager.quality_mask)
    threaded = lcf(spectra, refs, sum_to_one=True, block=50, workers=2)
    assert np.array_equal(threaded.fractions, eager.fractions)
    f32 = lcf(spectra.astype(np.float32), refs, sum_to_one=True, dtype=np.float32)
    assert f32.fractions.dtype == np.float32
    assert np.allclose(f32.fractions, eager.fractions, atol=1e-3)


def test_energy_first_layout_is_read_in_place_with_same_results(rng, refs3):
    """A transposed view of an energy-first array (as lcf_xarray passes a
    (energy, z, y, x) volume) takes the in-place path: same answers, same
    NaN masking, same background elimination, block boundaries included."""
    _, refs = refs3
    spectra = rng.random((6, 7, 3)) @ refs + rng.normal(scale=0.05, size=(6, 7, 100))
    spectra[2, 3, 40] = np.nan
    view = np.moveaxis(np.ascontiguousarray(np.moveaxis(spectra, -1, 0)), 0, -1)
    assert not view.flags.c_contiguous
    for kw in ({"sum_to_one": True}, {"background": 1}, {"nonneg": True}):
        a = lcf(spectra, refs, block=10, **kw)
        b = lcf(view, refs, block=10, **kw)
        np.testing.assert_allclose(b.fractions, a.fractions, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b.residual, a.residual, rtol=1e-9, atol=1e-12)
        assert b.n_masked == a.n_masked == 1 and np.isnan(b.fractions[2, 3]).all()


def test_duplicate_and_collinear_references_are_named(refs3):
    energies, refs = refs3
    with pytest.raises(ValidationError, match="'Mn3' and 'Mn3b'"):
        lcf(refs[:2], np.stack([refs[0], refs[1], 2 * refs[1]]), names=["Mn2", "Mn3", "Mn3b"])
    combo = np.stack([refs[0], refs[1], 0.3 * refs[0] + 0.7 * refs[1]])
    with pytest.raises(ValidationError, match="linearly dependent"):
        lcf(refs, combo)
    near = np.stack([refs[0], refs[1], 0.3 * refs[0] + 0.7 * refs[1] + 1e-4 * refs[2]])
    with pytest.warns(RuntimeWarning, match="nearly collinear"):
        lcf(refs, near)


def test_bad_shapes_are_rejected(rng, refs3):
    energies, refs = refs3
    with pytest.raises(ValidationError, match="more references"):
        lcf(rng.random((4, 3)), rng.random((5, 3)))
    with pytest.raises(ValidationError, match="resample"):
        lcf(rng.random((4, 99)), refs)
    with pytest.raises(ValidationError, match="finite"):
        bad = refs.copy()
        bad[1, 5] = np.nan
        lcf(rng.random((4, 100)), bad)


@pytest.mark.gpu
def test_cupy_matches_numpy(rng, refs3):
    import cupy

    _, refs = refs3
    spectra = rng.random((1000, 3)) @ refs + rng.normal(scale=0.01, size=(1000, 100))
    cpu = lcf(spectra, refs, sum_to_one=True)
    gpu = lcf(cupy.asarray(spectra), refs, sum_to_one=True)
    assert isinstance(gpu.fractions, cupy.ndarray)
    assert np.allclose(gpu.fractions.get(), cpu.fractions, atol=1e-10)


def test_xarray_wrapper_on_energy_dim(rng, refs3):
    from spectrotomo import volume
    from spectrotomo.spectra import lcf_xarray, references, resample

    energies, refs = refs3
    truth = rng.dirichlet(np.ones(3), size=(4, 5, 6))
    vol = volume(np.moveaxis(truth @ refs, -1, 0), energies=energies, voxel_size=15.0, units="1")
    ref_da = references(refs, energies, names=["Mn2+", "Mn3+", "Mn4+"], valences=[2, 3, 4])
    ds = lcf_xarray(vol, ref_da, sum_to_one=True)
    assert ds["fractions"].dims == ("state", "z", "y", "x")
    assert list(ds["state"].values) == ["Mn2+", "Mn3+", "Mn4+"]
    np.testing.assert_allclose(np.moveaxis(ds["fractions"].values, 0, -1), truth, atol=1e-9)
    assert ds.attrs["n_masked"] == 0 and ds["residual"].attrs["pixel_size"] == 15.0
    with pytest.raises(ValidationError, match="resample"):
        lcf_xarray(vol, resample(ref_da, energies[5:-5]))
    with pytest.raises(ValidationError, match="lcf_xarray"):
        lcf(vol, refs)
