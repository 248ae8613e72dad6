"""masked_smooth: normalized convolution over a mask, iso-depth layers near the surface."""

import numpy as np
import pytest

from spectrotomo._model import ValidationError
from spectrotomo.segmentation import masked_smooth


def _ball(n=32, r=12.0):
    z, y, x = np.ogrid[:n, :n, :n]
    c = (n - 1) / 2
    return ((z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2) <= r * r


def test_constant_inside_mask_is_kept_up_to_the_surface():
    mask = _ball()
    data = np.where(mask, 3.0, 100.0)  # outside values must never leak in
    out = masked_smooth(data, mask, sigma_nm=20.0, spacing=10.0)
    assert np.allclose(out[mask], 3.0, rtol=1e-5)
    assert np.isnan(out[~mask]).all()


def test_noise_is_reduced_as_expected_for_white_noise():
    rng = np.random.default_rng(0)
    mask = np.ones((40, 40, 40), bool)
    noise = rng.normal(0, 1, mask.shape)
    sigma_vox = 2.0
    out = masked_smooth(noise, mask, sigma_nm=2 * sigma_vox, spacing=2.0)
    inner = out[8:-8, 8:-8, 8:-8]
    # white noise through a normalized 3-D Gaussian: std / (2 sqrt(pi) sigma)^(3/2)
    expected = 1.0 / (2 * np.sqrt(np.pi) * sigma_vox) ** 1.5
    assert inner.std() == pytest.approx(expected, rel=0.15)


def test_surface_layer_keeps_its_own_value():
    mask = _ball()
    dist = np.zeros(mask.shape)
    from scipy import ndimage
    dist = ndimage.distance_transform_edt(mask)
    skin = mask & (dist <= 1)  # the outermost one-voxel layer
    data = np.where(skin, 2.0, 1.0)
    iso = masked_smooth(data, mask, sigma_nm=2.0, spacing=1.0)
    layered = masked_smooth(data, mask, sigma_nm=2.0, spacing=1.0, surface_nm=2.0)
    assert np.allclose(layered[skin], 2.0, rtol=1e-5)
    assert np.allclose(layered[mask & ~skin], 1.0, rtol=1e-5)
    # isotropic averaging dilutes the skin towards the interior (the reason for layers)
    assert iso[skin].mean() < 1.7


def test_leading_axes_smoothed_independently_and_nan_is_missing():
    mask = _ball(24, 9.0)
    data = np.stack([np.where(mask, 1.0, 0.0), np.where(mask, 5.0, 0.0)])
    data[1, 12, 12, 12] = np.nan
    out = masked_smooth(data, mask, sigma_nm=1.5, spacing=1.0, surface_nm=3.0)
    assert np.allclose(out[0][mask], 1.0, rtol=1e-5)
    assert np.allclose(out[1][mask], 5.0, rtol=1e-5)  # NaN voxel filled from neighbours


def test_anisotropic_spacing_is_honoured():
    mask = np.ones((30, 30, 30), bool)
    data = np.zeros(mask.shape)
    data[15, 15, 15] = 1.0
    out = masked_smooth(data, mask, sigma_nm=4.0, spacing=(4.0, 1.0, 1.0))
    # sigma 1 voxel along z, 4 voxels along y and x
    assert out[16, 15, 15] / out[15, 15, 15] == pytest.approx(np.exp(-0.5), rel=0.02)
    assert out[15, 19, 15] / out[15, 15, 15] == pytest.approx(np.exp(-0.5), rel=0.02)


def test_bad_input():
    mask = _ball(16, 5.0)
    with pytest.raises(ValidationError, match="sigma_nm"):
        masked_smooth(np.zeros(mask.shape), mask, sigma_nm=-1.0)
    with pytest.raises(ValidationError, match="surface_nm"):
        masked_smooth(np.zeros(mask.shape), mask, sigma_nm=1.0, surface_nm=np.nan)
    with pytest.raises(ValidationError, match="shape"):
        masked_smooth(np.zeros((4, 4, 4)), mask, sigma_nm=1.0)
    with pytest.raises(ValidationError, match="empty"):
        masked_smooth(np.zeros(mask.shape), np.zeros(mask.shape, bool), sigma_nm=1.0)
    with pytest.raises(ValidationError, match="spacing"):
        masked_smooth(np.zeros(mask.shape), mask, sigma_nm=1.0, spacing=0.0)
