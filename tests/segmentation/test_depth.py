import numpy as np
import pytest

from spectrotomo import ValidationError, spatial_map
from spectrotomo.segmentation import depth

from .phantoms import centred_radius, sphere


@pytest.mark.parametrize("spacing", [1.0, 10.0, (20.0, 10.0, 10.0)])
def test_sphere_depth_exact_within_one_voxel(spacing):
    n = 48 if np.ndim(spacing) == 0 else 40
    shape = (n // 2, n, n) if np.ndim(spacing) else (n,) * 3
    r = centred_radius(shape, spacing)
    radius = 17.2 * float(np.min(spacing))
    mask = r <= radius
    d = depth(mask, spacing)
    assert d.dtype == np.float32 and d.shape == mask.shape
    assert np.all(d[~mask] == 0)
    err = d[mask] - (radius - r[mask])
    # Boundary convention: within one (largest) voxel of the analytic depth.
    assert np.abs(err).max() <= np.max(spacing)
    assert np.abs(err).max() <= 0.6 * np.max(spacing)  # in fact within ~half a voxel
    # Unbiased on average: the surface is on the voxel faces.
    assert abs(err.mean()) < 0.25 * np.max(spacing)


def test_flat_face_depths_are_half_voxel_steps():
    mask = np.zeros((5, 12, 12), bool)
    mask[:, 2:10, 2:10] = True  # slab through the whole z range (edge = outside)
    d = depth(mask, (20.0, 10.0, 10.0))
    assert d[2, 5, 2] == pytest.approx(5.0)  # outer x-face voxel
    assert d[2, 5, 3] == pytest.approx(15.0)
    assert d[0, 5, 5] == pytest.approx(10.0)  # z: edge of array counts as outside


def test_centre_convention_zero_on_outer_voxels():
    mask, r, radius = sphere(32, 12.0, 2.0)
    d = depth(mask, 2.0, surface="centre")
    from scipy import ndimage

    outer = mask & ~ndimage.binary_erosion(mask)
    assert np.all(d[outer] == 0) and np.all(d[mask & ~outer] > 0)
    assert np.abs(d[mask] - (radius - r[mask])).max() <= 2.0 * 1.5


def test_labels_get_their_own_surface():
    mask, _, _ = sphere(24, 8.0)
    labels = np.zeros((24, 24, 48), np.int32)
    labels[:, :, :24][mask] = 3
    labels[:, :, 24:][mask] = 7  # non-contiguous label values
    labels[:, :, 20:28][labels[:, :, 20:28] > 0] = 0
    labels[:, 10:14, 20:28][:, :, :4] = 3  # a bridge of particle 3 touching 7
    labels[:, 10:14, 20:28][:, :, 4:] = 7
    d = depth(labels, 1.0)
    np.testing.assert_allclose(d[labels == 7], depth(labels == 7, 1.0)[labels == 7])
    assert d[12, 12, 23] == pytest.approx(0.5)  # shared face is a surface
    assert d[12, 12, 24] == pytest.approx(0.5)


def test_dataarray_spacing_from_attrs():
    mask, r, radius = sphere(32, 12.0, 5.0)
    da = spatial_map(mask, voxel_size=5.0, units="1", name="particle")
    d = depth(da)
    assert d.attrs["units"] == "nm" and d.dims == ("z", "y", "x")
    assert np.abs(d.values[mask] - (radius - r[mask])).max() <= 5.0


def test_bad_input():
    with pytest.raises(ValidationError, match="empty"):
        depth(np.zeros((8, 8, 8), bool))
    with pytest.raises(ValidationError, match="spacing"):
        depth(np.ones((8, 8), bool), (1.0, 2.0, 3.0))
    with pytest.raises(ValidationError, match="spacing"):
        depth(np.ones((8, 8), bool), -1.0)
    with pytest.raises(ValidationError, match=">= 0"):
        depth(-np.ones((8, 8), int))
    with pytest.raises(ValueError, match="surface"):
        depth(np.ones((8, 8), bool), surface="middle")


def test_spacing_from_nm_coords_without_attrs():
    import xarray as xr

    mask, r, radius = sphere(24, 9.0, 1.0)
    coords = {d: xr.DataArray(np.arange(n) * s, dims=d, attrs={"units": "nm"})
              for d, n, s in zip("zyx", mask.shape, (7.0, 7.0, 7.0))}
    da = xr.DataArray(mask, dims=("z", "y", "x"), coords=coords)
    d = depth(da)
    assert d.attrs["spacing"] == [7.0, 7.0, 7.0]
    assert np.abs(d.values[mask] - 7.0 * (radius - r[mask])).max() <= 7.0
