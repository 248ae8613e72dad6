import numpy as np
import pytest

from spectrotomo.recon import ParallelBeamOperator, backproject, project
from spectrotomo.simulate import project as sim_project


BLOBS = [(0.30, 0.55, 3.0, 1.0), (0.62, 0.40, 4.0, 0.5)]  # (x/n, y/n, sigma px, amplitude)


def gaussian_blobs(n, centers):
    y, x = np.mgrid[:n, :n].astype(float)
    return np.stack([a * np.exp(-((x - fx * n) ** 2 + (y - fy * n) ** 2) / (2 * s**2))
                     for fx, fy, s, a in centers])


def analytic_projection(n, centers, angles, center):
    """Exact line integrals of the Gaussians in the documented geometry."""
    th = np.deg2rad(angles)[:, None, None]
    u = np.arange(n)[None, None, :]
    out = []
    for fx, fy, s, a in centers:
        X, Y = fx * n - (n - 1) / 2, fy * n - (n - 1) / 2
        d = u - center - (X * np.cos(th) + Y * np.sin(th))
        out.append(a * np.sqrt(2 * np.pi) * s * np.exp(-d**2 / (2 * s**2)))
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize("n", [48, 49])
@pytest.mark.parametrize("shift", [0.0, 4.3, -6.5])
def test_project_matches_analytic_and_ground_truth_projector(n, shift):
    vol = gaussian_blobs(n, BLOBS)
    angles = np.array([-65.0, -10.0, 0.0, 33.0, 90.0, 147.0])
    center = (n - 1) / 2 + shift
    ours = project(vol.astype(np.float32), angles, center=center)
    assert ours.shape == (6, 2, n) and ours.dtype == np.float32
    exact = analytic_projection(n, BLOBS, angles, center)
    np.testing.assert_allclose(ours, exact, atol=2e-4 * exact.max())
    # simulate.project interpolates linearly (slight blur): same geometry, looser match.
    ref = sim_project(vol, angles, center=center)
    np.testing.assert_allclose(ours, ref, atol=0.03 * ref.max())


def test_zero_degrees_is_sum_along_y(rng):
    vol = np.pad(rng.random((2, 12, 16)), ((0, 0), (6, 6), (4, 4))).astype(np.float32)
    p = project(vol, [0.0])
    # Sinc model of point samples: column sums exactly, up to NUFFT tolerance.
    np.testing.assert_allclose(p[0], vol.sum(axis=1), atol=1e-3)


@pytest.mark.parametrize("shape,n_cols,center", [((32, 32), 32, None), ((31, 36), 40, 17.25)])
def test_adjoint_dot_product(rng, shape, n_cols, center):
    op = ParallelBeamOperator(rng.uniform(-70, 170, 23), n_cols, center, shape)
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    y = rng.standard_normal((23, 3, n_cols)).astype(np.float32)
    lhs = np.vdot(op.forward(x).astype(float), y)
    rhs = np.vdot(x.astype(float), op.adjoint(y).astype(float))
    assert abs(lhs - rhs) <= 1e-4 * np.sqrt(np.vdot(lhs, lhs)) + 1e-4 * abs(lhs) + 1e-6 * (
        np.linalg.norm(x) * np.linalg.norm(y))
    assert abs(lhs - rhs) / abs(lhs) < 1e-4


def test_out_arguments_and_functions_agree(rng):
    angles = np.linspace(0, 180, 20, endpoint=False)
    op = ParallelBeamOperator(angles, 24)
    x = rng.random((5, 24, 24)).astype(np.float32)
    out = np.full((20, 5, 24), np.nan, np.float32)
    assert op.forward(x, out=out) is out
    np.testing.assert_allclose(out, project(x, angles), atol=1e-5 * out.max())
    back = np.empty((5, 24, 24), np.float32)
    assert op.adjoint(out, out=back) is back
    np.testing.assert_allclose(back, backproject(out, angles), atol=1e-5 * back.max())


def test_batches_give_the_same_result(rng):
    angles = np.linspace(-60, 60, 15)
    x = rng.random((7, 20, 20)).astype(np.float32)
    whole = ParallelBeamOperator(angles, 20).forward(x)
    batched = ParallelBeamOperator(angles, 20, batch=3).forward(x)
    np.testing.assert_allclose(batched, whole, atol=1e-5 * whole.max())


def test_operator_norm_matches_svd():
    angles = np.linspace(0, 180, 12, endpoint=False)
    op = ParallelBeamOperator(angles, 10)
    eye = np.eye(100, dtype=np.float32).reshape(100, 10, 10)
    dense = op.forward(eye).transpose(1, 0, 2).reshape(100, -1)
    assert op.norm(iterations=40) == pytest.approx(np.linalg.norm(dense, 2), rel=1e-3)


@pytest.mark.gpu
def test_gpu_operator_matches_cpu(rng):
    cp = pytest.importorskip("cupy")
    angles = np.linspace(-65, 65, 31)
    x = rng.random((4, 32, 32)).astype(np.float32)
    cpu = ParallelBeamOperator(angles, 32, 15.7)
    gpu = ParallelBeamOperator(angles, 32, 15.7, xp=cp)
    np.testing.assert_allclose(gpu.forward(cp.asarray(x)).get(), cpu.forward(x),
                               atol=1e-4 * np.abs(cpu.forward(x)).max())
    y = cpu.forward(x)
    np.testing.assert_allclose(gpu.adjoint(cp.asarray(y)).get(), cpu.adjoint(y),
                               atol=1e-4 * np.abs(cpu.adjoint(y)).max())
