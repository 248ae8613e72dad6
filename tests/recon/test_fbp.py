import numpy as np
import pytest

from spectrotomo._model import ValidationError
from spectrotomo.recon import FILTERS, reconstruct
from spectrotomo.simulate import ball, project

from recon_helpers import astra_fbp, rmse


def test_fbp_180_beats_astra_and_matches_truth(phantom128, sino180):
    angles, sino = sino180
    ours = reconstruct(sino[:, None, :], angles)
    assert ours.shape == (1, 128, 128) and ours.dtype == np.float32
    ref = astra_fbp(sino, angles)
    err, err_astra = rmse(ours[0], phantom128), rmse(ref, phantom128)
    assert err <= 1.05 * err_astra, (err, err_astra)
    assert err < 0.03
    # No DC offset / cupping: the mean over the object matches the truth.
    assert abs(ours[0].mean() - phantom128.mean()) < 2e-3


@pytest.mark.parametrize("name", FILTERS)
def test_every_filter_reconstructs(phantom128, sino180, name):
    angles, sino = sino180
    err = rmse(reconstruct(sino, angles, filter=name), phantom128)
    assert err < 0.08, (name, err)


def test_off_centre_axis_and_sub_pixel_centre():
    n = 64
    vol = ball((2, n, n), 10.0, center=(0.5, 28.0, 36.0))
    angles = np.arange(0.0, 180.0, 1.5)
    center = 36.7  # 5.2 px right of the detector middle
    sino = project(vol, angles, center=center)
    good = reconstruct(sino, angles, center=center)
    wrong = reconstruct(sino, angles)
    assert rmse(good, vol) < 0.03
    assert rmse(wrong, vol) > 3 * rmse(good, vol)


def test_non_uniform_angles(rng):
    n = 64
    vol = ball((1, n, n), 14.0, center=(0, 30.0, 34.0))
    angles = np.sort(rng.uniform(0, 180, 150))
    sino = project(vol, angles)
    assert rmse(reconstruct(sino, angles), vol) < 0.035


def test_360_scan_equals_180(phantom128):
    a180 = np.arange(0.0, 180.0, 2.0)
    a360 = np.arange(0.0, 360.0, 2.0)
    r180 = reconstruct(project(phantom128, a180)[:, None], a180)
    r360 = reconstruct(project(phantom128, a360)[:, None], a360)
    assert rmse(r360, phantom128) <= 1.02 * rmse(r180, phantom128)


@pytest.mark.parametrize("n", [33, 34])
def test_single_slice_odd_and_even_widths(n):
    vol = ball((n, n), n / 4, center=((n - 1) / 2 + 2.5, (n - 1) / 2 - 3))
    angles = np.arange(0.0, 180.0, 2.0)
    sino = project(vol, angles)  # 2-D sinogram
    rec = reconstruct(sino, angles)
    assert rec.shape == (n, n)
    assert rmse(rec, vol) < 0.05


def test_pixel_size_scales_to_per_nm(sino180):
    angles, sino = sino180
    per_px = reconstruct(sino, angles)
    per_nm = reconstruct(sino, angles, pixel_size=10.0)
    np.testing.assert_allclose(per_nm, per_px / 10.0, rtol=1e-6, atol=1e-7)


def test_edge_padding_removes_bright_rim_of_truncated_projections():
    n = 64
    vol = ball((1, 96, 96), 40.0)  # wider than the 64-column detector
    angles = np.arange(0.0, 180.0, 2.0)
    sino = project(vol, angles, center=31.5, n_cols=n)
    inner = np.hypot(*np.mgrid[-31.5:32.5, -31.5:32.5]) < 30
    zero = reconstruct(sino, angles, padding="zero")[0]
    edge = reconstruct(sino, angles, padding="edge")[0]
    assert zero[inner].max() > 1.5  # the classic truncation rim
    assert edge[inner].max() < 1.0


def test_bad_input():
    angles = np.arange(0.0, 180.0, 10.0)
    sino = np.ones((18, 2, 16), np.float32)
    with pytest.raises(ValidationError, match="18 along axis 0"):
        reconstruct(sino, angles[:-1])
    bad = sino.copy()
    bad[3, 1, 4] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        reconstruct(bad, angles)
    with pytest.raises(ValidationError, match="non-empty"):
        reconstruct(np.ones((18, 0, 16)), angles)
    with pytest.raises(ValidationError, match="non-empty"):
        reconstruct(np.ones((0, 2, 16)), [])
    with pytest.warns(UserWarning, match="radians"):
        reconstruct(sino, np.deg2rad(angles))
    with pytest.raises(ValidationError, match="algorithm"):
        reconstruct(sino, angles, algorithm="art")
    with pytest.raises(ValidationError, match="center"):
        reconstruct(sino, angles, center=40.0)
    with pytest.raises(ValueError, match="filter"):
        reconstruct(sino, angles, filter="butterworth")


def test_angular_weights():
    from spectrotomo.recon._filters import angular_weights

    np.testing.assert_allclose(angular_weights(np.arange(0, 180, 2.0)), np.deg2rad(2.0))
    np.testing.assert_allclose(angular_weights(np.arange(0, 360, 2.0)), np.deg2rad(1.0))
    limited = angular_weights(np.arange(-65, 66.0))
    np.testing.assert_allclose(limited, np.deg2rad(1.0))  # the wedge gets no weight
    w = angular_weights([0.0, 10.0, 12.0, 90.0, 100.0])
    assert w.sum() == pytest.approx(np.pi)
