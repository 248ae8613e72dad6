import numpy as np
import pytest

from spectrotomo import ValidationError, spatial_map
from spectrotomo.segmentation import particle_mask, split_particles

from .phantoms import centred_radius


def _two_touching_spheres(n=40, radius=10.0, gap=-2.0):
    shape = (n, n, 2 * n)
    c1 = [(n - 1) / 2, (n - 1) / 2, n - 1 - radius - gap / 2]
    c2 = [(n - 1) / 2, (n - 1) / 2, n + radius + gap / 2]
    s1 = centred_radius(shape, 1.0, c1) <= radius
    s2 = centred_radius(shape, 1.0, c2) <= radius
    return s1, s2


def test_mask_recovers_envelope_with_noise_pores_and_speckles(rng):
    s1, s2 = _two_touching_spheres()
    truth = s1 | s2
    vol = truth * 0.02 + rng.normal(0, 0.004, truth.shape)  # attenuation 1/nm, SNR 5
    pore = centred_radius(truth.shape, 1.0, [19.5, 19.5, 25]) <= 3
    vol[pore] = 0.0
    vol[2:4, 2:4, 2:4] = 0.05  # bright speck outside: removed as a small object
    mask = particle_mask(vol, min_size=64)
    assert mask.dtype == bool
    dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice > 0.97
    assert mask[pore].all()  # holes filled: the mask is the envelope
    assert not mask[2:4, 2:4, 2:4].any()
    # peer: the same rule straight from scikit-image on the smoothed volume
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    smooth = ndimage.gaussian_filter(vol.astype(np.float32), 1.0)
    peer = ndimage.binary_fill_holes(smooth > threshold_otsu(smooth))
    assert (peer ^ mask).sum() <= 8  # only the speck differs


def test_mask_options_and_dataarray(rng):
    vol = np.where(centred_radius((32, 32), 1.0) <= 10, 1.0, 0.0)
    vol[0, 0] = np.nan
    da = spatial_map(vol, voxel_size=10.0, units="1/nm", name="mu")
    mask = particle_mask(da, method=0.5, smooth=0)
    assert mask.attrs["threshold"] == 0.5 and not mask.values[0, 0]
    np.testing.assert_array_equal(mask.values, vol > 0.5)
    dark = particle_mask(1 - np.nan_to_num(vol), method="li", bright=False, smooth=0,
                         min_size=1)
    np.testing.assert_array_equal(dark, vol > 0.5)


def test_split_touching_spheres():
    s1, s2 = _two_touching_spheres()
    labels = split_particles(s1 | s2, spacing=10.0, min_distance=80.0)
    assert labels.dtype == np.int32 and labels.max() == 2
    for sphere in (s1, s2):
        ids, counts = np.unique(labels[sphere], return_counts=True)
        assert counts.max() / sphere.sum() > 0.97  # one label covers the sphere


def test_split_keeps_single_ellipsoid_whole():
    z, y, x = np.indices((24, 32, 64)) - np.array([11.5, 15.5, 31.5])[:, None, None, None]
    ellipsoid = (z / 9) ** 2 + (y / 11) ** 2 + (x / 26) ** 2 <= 1
    labels = split_particles(ellipsoid, min_distance=8.0)
    assert labels.max() == 1


def test_bad_input():
    with pytest.raises(ValidationError, match="no finite"):
        particle_mask(np.full((8, 8), np.nan))
    with pytest.raises(ValidationError, match="constant"):
        particle_mask(np.ones((8, 8)))
    with pytest.raises(ValidationError, match="method"):
        particle_mask(np.arange(64.0).reshape(8, 8), method="magic")
    with pytest.raises(ValidationError, match="empty"):
        split_particles(np.zeros((8, 8), bool))
