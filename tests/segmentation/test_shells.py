import numpy as np
import pytest

from spectrotomo import ValidationError, spatial_map
from spectrotomo.segmentation import depth, shells

from .phantoms import blob, centred_radius, ellipsoid, sphere


def _check_equal_and_monotonic(mask, spacing, n=5):
    s = shells(mask, n, spacing)
    d = depth(mask, spacing)
    assert s.shape == mask.shape
    assert np.all((s > 0) == mask)
    counts = np.bincount(s.ravel(), minlength=n + 1)[1:]
    volumes = counts * np.prod(np.broadcast_to(spacing, (mask.ndim,)))
    assert np.all(np.abs(volumes / volumes.mean() - 1) < 0.01)
    assert counts.max() - counts.min() <= 1
    lo = np.array([d[s == k].min() for k in range(1, n + 1)])
    hi = np.array([d[s == k].max() for k in range(1, n + 1)])
    mean = np.array([d[s == k].mean() for k in range(1, n + 1)])
    assert np.all(hi[:-1] <= lo[1:])  # every voxel of k+1 is at least as deep as k
    assert np.all(np.diff(mean) > 0)
    return s


def test_sphere_shells_equal_volume_and_radii():
    mask, r, radius = sphere(48, 18.3, 10.0)
    s = _check_equal_and_monotonic(mask, 10.0)
    # Equal-volume shell k starts at radius R (1 - (k-1)/5)^(1/3) from the centre.
    for k in range(2, 6):
        expected = radius * (1 - (k - 1) / 5) ** (1 / 3)
        boundary = 0.5 * (r[s == k - 1].min() + r[s == k].max())
        assert abs(boundary - expected) < 10.0  # one voxel


def test_disk_shells_equal_area():
    r = centred_radius((64, 64), 5.0)
    mask = r <= 150.0
    s = _check_equal_and_monotonic(mask, 5.0)
    for k in range(2, 6):  # equal area: radius R sqrt(1 - (k-1)/5)
        expected = 150.0 * np.sqrt(1 - (k - 1) / 5)
        assert abs(0.5 * (r[s == k - 1].min() + r[s == k].max()) - expected) < 5.0


def test_anisotropic_ellipsoid_shells():
    spacing = (20.0, 10.0, 10.0)
    mask = ellipsoid(spacing=spacing)
    _check_equal_and_monotonic(mask, spacing)


def test_irregular_blob_shells():
    mask = blob()
    assert mask.sum() > 5000
    _check_equal_and_monotonic(mask, 1.0, n=5)
    _check_equal_and_monotonic(mask, 1.0, n=7)


def test_shells_per_particle_label():
    a, _, _ = sphere(24, 9.0)
    labels = np.zeros((24, 24, 60), np.int32)
    labels[:, :, :24][a] = 1
    small, _, _ = sphere(24, 6.0)
    labels[:, :, 30:54][small] = 7
    s = shells(labels, 4)
    for lab in (1, 7):
        counts = np.bincount(s[labels == lab], minlength=5)[1:]
        assert counts.max() - counts.min() <= 1


def test_shells_dataarray_and_depth_map():
    mask, _, _ = sphere(32, 12.0, 8.0)
    da = spatial_map(mask, voxel_size=8.0, units="1", name="particle")
    s = shells(da, 5)
    assert s.dims == ("z", "y", "x") and s.attrs["n_shells"] == 5
    np.testing.assert_array_equal(s.values, shells(mask, 5, 8.0, depth_map=depth(mask, 8.0)))


def test_bad_input():
    with pytest.raises(ValidationError, match="empty"):
        shells(np.zeros((6, 6, 6), bool))
    with pytest.raises(ValidationError, match="n"):
        shells(np.ones((6, 6), bool), 0)
    with pytest.raises(ValidationError, match="same shape"):
        shells(np.ones((6, 6), bool), 2, depth_map=np.ones((5, 6)))
