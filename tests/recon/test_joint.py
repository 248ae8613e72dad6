"""reconstruct_joint: Toeplitz normal operator, regulariser, accuracy vs the simulator."""

import warnings

import numpy as np
import pytest
from recon_helpers import rmse
from scipy import ndimage

from spectrotomo import simulate
from spectrotomo._model import ValidationError
from spectrotomo.recon import SolverStoppedWarning, reconstruct, reconstruct_joint
from spectrotomo.recon.prep import normalize
from spectrotomo.recon._nufft import irfft
from spectrotomo.recon._operator import ParallelBeamOperator
from spectrotomo.recon._regularize import divergence, gradient, sinogram_noise
from spectrotomo.recon import _toeplitz
from spectrotomo.recon._toeplitz import FilteredNormal, filtered_normal

ANGLES = np.arange(-65.0, 65.5, 2.0)
ENERGIES = np.array([635.0, 665.0, 848.0, 880.0])  # Mn and Ni pairs


@pytest.fixture(scope="module")
def tiny():
    """simulate "tiny" (32^3, 36 nm) seed 3, Mn and Ni pairs, -65..+65 deg, 2e4 photons."""
    truth = simulate.particle("tiny", seed=3)
    ts = simulate.tilt_series(truth, energies=ENERGIES, angles=ANGLES, seed=4)
    p, f, d = ts["projections"].values, ts["flats"].values, ts["darks"].values
    od = np.stack([normalize(p[e], f[e], d[e])[0] for e in range(len(ENERGIES))])
    mu = simulate.attenuation(truth, ENERGIES).values * truth.attrs["pixel_size"]
    px = truth.attrs["pixel_size"]
    inner = ((truth["depth"].values > 3 * px) & (truth["occupancy"].values > 0.99)
             & ~truth["void"].values & ~truth["crack"].values)
    return od.astype(np.float32), mu, inner, ndimage.binary_fill_holes(truth["particle"].values)


@pytest.mark.parametrize("backend", ["ducc0", "scipy"])
def test_filtered_normal_is_the_operator_pair(backend, monkeypatch):
    if backend == "scipy":  # the generic path (cupy's, and the host's without ducc0)
        monkeypatch.setattr(_toeplitz, "_ducc", lambda: None)
    op = ParallelBeamOperator(ANGLES, 31, 14.6, eps=1e-6)
    normal = FilteredNormal(op)
    x = np.random.default_rng(0).random((2, 31, 31)).astype(np.float32)
    full = irfft(np, op._spectra(x, op._phase), op.n_pad)  # uncropped periodic window
    ref = op.adjoint(full, periodic=True, weights=normal.weights)
    np.testing.assert_allclose(normal.apply(x), ref, atol=1e-4 * np.abs(ref).max())
    # rhs = A^T W b of the zero-extended data: for an object whose projections fit on
    # the detector (a smooth blob), rhs(A x) = A^T W A x
    yy, xx = np.mgrid[:31, :31] - 15.0
    blob = np.exp(-(yy**2 + xx**2) / 18.0).astype(np.float32)[None].repeat(2, 0)
    b = op.forward(blob)
    np.testing.assert_allclose(normal.rhs(b), normal.apply(blob), atol=1e-3)


def test_filtered_normal_is_shared_per_geometry():
    a = filtered_normal(ANGLES, 24, 11.5)
    assert filtered_normal(ANGLES.tolist(), 24, 11.5) is a  # chunks of one sample
    assert filtered_normal(ANGLES, 24, 11.0) is not a
    assert filtered_normal(ANGLES[1:], 24, 11.5) is not a
    x = np.random.default_rng(3).random((5, 24, 24)).astype(np.float32)
    ref = FilteredNormal(ParallelBeamOperator(ANGLES, 24, 11.5, eps=1e-4)).apply(x)
    np.testing.assert_array_equal(a.apply(x), ref)


def test_spectral_basis_leading_column_is_the_positive_structure():
    from spectrotomo.recon._spectral import spectral_basis

    rng = np.random.default_rng(4)
    for _ in range(8):  # eigh's signs are arbitrary: about half would come out negative
        od = rng.random((4, 6, 2, 16)) * rng.random((4, 1, 1, 1))
        U = spectral_basis(od, np.ones(4))
        np.testing.assert_allclose(U.T @ U, np.eye(4), atol=1e-12)
        assert (U[:, 0] > 0).all()  # all-positive data: a same-sign (Perron) vector


def test_gradient_divergence_adjoint():
    rng = np.random.default_rng(1)
    x = rng.random((2, 3, 8, 9)).astype(np.float32)
    q = rng.random((2, 2, 3, 8, 9)).astype(np.float32)
    g = gradient(np, x, np.empty_like(q))
    d = divergence(np, q, np.empty_like(x))
    assert np.isclose((g * q).sum(), -(x * d).sum(), rtol=1e-5)


def test_sinogram_noise_recovers_white_noise():
    rng = np.random.default_rng(2)
    u = np.linspace(-1, 1, 64)
    clean = np.maximum(0, 1 - u**2)[None, None, None, :] * np.ones((2, 30, 4, 1))
    sigma = np.array([0.01, 0.03])
    noisy = clean + sigma[:, None, None, None] * rng.normal(size=clean.shape)
    np.testing.assert_allclose(sinogram_noise(np, noisy), sigma, rtol=0.1)


def test_joint_fixes_the_limited_angle_bias(tiny):
    od, mu, inner, solid = tiny
    fbp = np.stack([reconstruct(o, ANGLES) for o in od])
    x = reconstruct_joint(od, ANGLES)
    assert x.shape == mu.shape and x.dtype == np.float32
    assert x.min() >= 0  # non-negative
    bias_fbp = fbp[:, inner].mean() / mu[:, inner].mean() - 1
    x_bias = x[:, inner].mean() / mu[:, inner].mean() - 1
    assert bias_fbp < -0.15  # the problem: mass lost into the missing wedge
    assert abs(x_bias) < 0.06, x_bias
    assert rmse(x, mu) < 0.6 * rmse(fbp, mu)
    from spectrotomo.segmentation import particle_mask

    m = particle_mask(x.mean(0))
    assert (m & solid).sum() / (m | solid).sum() > 0.9


def test_joint_edge_jumps_less_noisy_than_independent(tiny):
    od, mu, inner, _ = tiny
    joint = reconstruct_joint(od, ANGLES)
    indep = reconstruct_joint(od, ANGLES, joint=False)
    for below, above in ((0, 1), (2, 3)):
        true = (mu[above] - mu[below])[inner]
        err_j = rmse((joint[above] - joint[below])[inner], true)
        err_i = rmse((indep[above] - indep[below])[inner], true)
        assert err_j < 0.9 * err_i, (below, err_j, err_i)


def test_auto_weight_near_the_best_hand_picked():
    n = 48
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    img = (0.04 * (yy**2 + xx**2 < 15**2) + 0.03 * ((yy - 4) ** 2 + (xx + 3) ** 2 < 5**2))
    stack = np.repeat(img[None], 2, 0).astype(np.float32)
    od = simulate.project(stack, ANGLES)
    od = od + 0.02 * od.max() * np.random.default_rng(9).normal(size=od.shape)
    od = od.astype(np.float32)[None]
    errs = {w: rmse(reconstruct_joint(od, ANGLES, weight=w)[0], stack) for w in (0.05, 0.25, 1, 4)}
    auto = rmse(reconstruct_joint(od, ANGLES)[0], stack)
    assert auto < 1.25 * min(errs.values()), (auto, errs)


def test_pixel_size_and_noise_arguments(tiny):
    od = tiny[0][:, :, 10:14]
    a = reconstruct_joint(od, ANGLES, noise=[0.01] * 4)
    b = reconstruct_joint(od, ANGLES, noise=[0.01] * 4, pixel_size=36.0)
    np.testing.assert_allclose(b, a / 36.0, rtol=1e-5, atol=1e-9)


def test_progress_counts_every_level(tiny):
    od = tiny[0][:, :, 12:16]  # 32 columns: one coarse level
    calls = []
    reconstruct_joint(od, ANGLES, coarse_iterations=6, iterations=3, debias_iterations=2,
                      progress=lambda done, total, t: calls.append((done, total, t)))
    assert [c[:2] for c in calls] == [(k, 11) for k in range(1, 12)]  # 6 + 3 + 2 refinement
    assert all(b[2] >= a[2] >= 0 for a, b in zip(calls, calls[1:]))


def test_max_seconds_stops_early_with_a_full_grid_result(tiny):
    od, mu = tiny[0][:, :, 8:24], tiny[1][:, 8:24]
    calls = []
    with pytest.warns(SolverStoppedWarning, match=r"stopped after 2 of 50 iterations \(all "
                                                  r"levels\): max_seconds = 0 s"):
        x = reconstruct_joint(od, ANGLES, max_seconds=0.0, coarse_iterations=40, iterations=5,
                              progress=lambda done, total, t: calls.append(done))
    assert calls == [1, 2]  # one iteration per level once the time is spent, no refinement
    assert x.shape == mu.shape and x.min() >= 0
    # one full-grid step from the coarse start already beats FBP (no wedge fill there)
    fbp = np.stack([reconstruct(o, ANGLES) for o in od])
    assert rmse(x, mu) < 0.8 * rmse(fbp, mu)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a cap that is not reached says nothing
        reconstruct_joint(od[:, :, :2], ANGLES, max_seconds=3600.0)
        # a stop the caller reports itself (warn_on_stop=False) says nothing either
        calls.clear()
        reconstruct_joint(od[:, :, :2], ANGLES, max_seconds=0.0, warn_on_stop=False,
                          progress=lambda done, total, t: calls.append(done))
    assert calls == [1, 2]


def test_components_fit_then_reconstruct(tiny):
    """Ten energies spanned by two spectra (a XANES-like series): the leading two
    components alone reconstruct them as well as all ten, non-negative, and
    ``components`` = n_energies is the untruncated default."""
    od, mu = tiny[0][:, :, 10:22], tiny[1][:, 10:22]
    a, b = np.linspace(0.5, 1.5, 10), np.linspace(1.2, 0.3, 10)
    noise = 0.01 * np.random.default_rng(4).normal(size=(10, *od.shape[1:]))
    series = (a[:, None, None, None] * od[1] + b[:, None, None, None] * od[3]
              + noise * od.max()).astype(np.float32)
    true = a[:, None, None, None] * mu[1] + b[:, None, None, None] * mu[3]
    full = reconstruct_joint(series, ANGLES)
    two = reconstruct_joint(series, ANGLES, components=2)
    assert two.shape == true.shape and two.min() >= 0
    assert rmse(two, true) < 1.05 * rmse(full, true), (rmse(two, true), rmse(full, true))
    np.testing.assert_array_equal(reconstruct_joint(od[:, :, :4], ANGLES, components=4),
                                  reconstruct_joint(od[:, :, :4], ANGLES))


def test_support_removes_the_wedge_smear_outside(tiny):
    """The shrink-wrap support on the coarse levels: the missing wedge's smear 1-3
    voxels outside the particle (along y mostly) drops (here 0.019 -> 0.016 of the
    interior level: tiny has one coarse level of 16 columns), RMSE 2.35e-3 -> 2.16e-3,
    the particle mask's y extent does not grow and the interior amounts stay."""
    from spectrotomo.segmentation import particle_mask

    od, mu, inner, solid = tiny
    shell = ndimage.binary_dilation(solid, iterations=3) & ~ndimage.binary_dilation(solid)
    res = {}
    for f in (None, 0.3):
        x = reconstruct_joint(od, ANGLES, support_fraction=f)
        m = particle_mask(x.mean(0))
        ys = np.flatnonzero(m.any(axis=(0, 2)))
        res[f] = (x.mean(0)[shell].mean() / x.mean(0)[inner].mean(), ys[-1] - ys[0],
                  x[:, inner].mean() / mu[:, inner].mean() - 1, rmse(x, mu))
    assert res[0.3][0] < 0.9 * res[None][0], res
    assert res[0.3][1] <= res[None][1], res
    assert abs(res[0.3][2]) < 0.06 and res[0.3][3] < 0.95 * res[None][3], res
    # the full grid is free: one level alone is the solve without support
    od4 = od[:, :, 12:16]
    np.testing.assert_array_equal(reconstruct_joint(od4, ANGLES, levels=0),
                                  reconstruct_joint(od4, ANGLES, levels=0, support_fraction=None))


def test_support_mask_is_per_slice():
    from spectrotomo.recon._regularize import support_mask

    s = np.random.default_rng(3).random((6, 20, 24)).astype(np.float32)
    s[:, 5:15, 6:18] += 4.0
    s[3] *= 0.1  # a faint slice keeps its own support (fraction of its own maximum)
    full = support_mask(np, s, 0.3)
    np.testing.assert_array_equal(full[2:5], support_mask(np, s[2:5], 0.3))
    assert full.dtype == np.float32 and set(np.unique(full)) == {0.0, 1.0}
    assert full[3, 10, 12] == 1 and full[3, 0, 0] == 0 and full[:, 5:15, 6:18].all()


def test_weight_zero_is_finite(tiny):
    x = reconstruct_joint(tiny[0][:, :, 12:16], ANGLES, weight=0.0)
    assert np.isfinite(x).all() and x.min() >= 0


def test_debias_on_a_coarse_level_restores_contrast(tiny):
    """The refinement on the first binned level: counted by progress like on the full
    grid, and it brings the solution closer to the truth (RMSE 2.67e-3 -> 2.59e-3 here,
    16-column level; full grid 2.35e-3). Without the support constraint, which
    alone takes the plain solve's RMSE to 2.0e-3 and leaves less to restore."""
    od, mu = tiny[:2]
    calls = []
    coarse = reconstruct_joint(od, ANGLES, debias_level=1, support_fraction=None,
                               progress=lambda done, total, t: calls.append((done, total)))
    assert calls[-1] == (calls[-1][1],) * 2 and calls[-1][1] == 30 + 4 + 5
    plain = reconstruct_joint(od, ANGLES, debias_iterations=0, support_fraction=None)
    assert rmse(coarse, mu) < 0.985 * rmse(plain, mu), (rmse(coarse, mu), rmse(plain, mu))


@pytest.mark.parametrize("bad, match", [
    (dict(od=np.zeros((2, 3, 4))), "n_energies"),
    (dict(weight="high"), "weight"),
    (dict(iterations=0), "iterations"),
    (dict(components=0), "components"),
    (dict(components=3), "components"),
    (dict(pixel_size=-1.0), "pixel_size"),
    (dict(max_seconds=-1.0), "max_seconds"),
    (dict(max_seconds=float("nan")), "max_seconds"),
    (dict(support_fraction=1.0), "support_fraction"),
    (dict(support_fraction=-0.1), "support_fraction"),
])
def test_bad_input_is_named(bad, match):
    args = dict(od=np.zeros((2, ANGLES.size, 2, 16), np.float32))
    args.update(bad)
    with pytest.raises(ValidationError, match=match):
        reconstruct_joint(args.pop("od"), ANGLES, **args)


@pytest.mark.gpu
def test_numpy_and_cupy_agree(tiny):
    cp = pytest.importorskip("cupy")
    od = np.ascontiguousarray(tiny[0][:, :, 12:20])
    cpu = reconstruct_joint(od, ANGLES)
    gpu = reconstruct_joint(cp.asarray(od), ANGLES)
    assert isinstance(gpu, cp.ndarray)
    np.testing.assert_allclose(gpu.get(), cpu, atol=2e-3 * float(np.abs(cpu).max()))
