"""The truth moved into the registered frame: the report compares volumes where the
reconstruction put them (shifted along z by the reference energy's simulated drift)."""

import numpy as np
import pytest
import xarray as xr

from spectrotomo.pipeline._truth_frame import registered_z_shift, truth_in_frame, z_blend
from spectrotomo.pipeline._truth_errors import _mask_errors
from spectrotomo.simulate import particle


@pytest.fixture(scope="module")
def truth():
    return particle("small", seed=3, shape=(24, 28, 28), radius_nm=180.0, n_grains=6,
                    n_voids=1, n_cracks=1)


def test_zero_shift_is_the_truth(truth):
    same = truth_in_frame(truth, 0.0)
    assert same.attrs["frame_shift_z_vox"] == 0.0
    xr.testing.assert_identical(same.drop_attrs(), truth.drop_attrs())


def test_whole_voxel_shift_moves_every_field(truth):
    moved = truth_in_frame(truth, 2.0)
    for name in ("particle", "occupancy", "density", "composition_class", "void"):
        np.testing.assert_array_equal(moved[name].isel(z=slice(2, None)).values,
                                      truth[name].isel(z=slice(None, -2)).values, err_msg=name)


def test_sub_voxel_shift_moves_the_surface_by_that_fraction(truth):
    """The particle is re-voxelised from its partial volume: its occupancy-weighted
    centre moves by the shift, and the mask of the shifted truth lies between the
    masks of the two neighbouring whole-voxel shifts."""
    z = np.arange(truth.sizes["z"])[:, None, None]

    def centre(occ):
        return float((occ * z).sum() / occ.sum())

    moved = truth_in_frame(truth, 0.4)
    assert centre(moved["occupancy"].values) - centre(truth["occupancy"].values) == \
        pytest.approx(0.4, abs=0.02)
    lo, hi = truth_in_frame(truth, 0.0)["particle"].values, truth_in_frame(truth, 1.0)["particle"].values
    mask = moved["particle"].values
    assert (lo & hi & ~mask).sum() == 0 and (mask & ~(lo | hi)).sum() == 0
    assert 0 < (mask != lo).sum() < (hi != lo).sum()


def test_mask_errors_in_the_frame_are_exact_for_a_shifted_volume(truth):
    """A reconstruction that is the truth one voxel down scores IoU < 1 against the
    unshifted truth and exactly 1 in the frame its drift says."""
    mask = np.roll(truth["particle"].values, 1, axis=0)
    raw = xr.Dataset({"true_energy_shift": (("energy", "shift"), [[0.3, 0.2], [1.25, -0.4]]),
                      "true_shift": (("angle", "shift"), [[-0.5, 0.1], [0.0, 0.0], [0.5, 0.3],
                                                          [-0.2, 0.0]])})
    od = xr.Dataset(attrs={"registration_reference": 1})
    dz = registered_z_shift(raw, od)
    assert dz == pytest.approx(1.25 - 0.05)
    assert _mask_errors(mask, truth)["mask_iou"] < 0.9
    frame = _mask_errors(mask, truth_in_frame(truth, 1.0))
    assert frame["mask_iou"] == 1.0 and set(frame["extent_error_vox"].values()) == {0}
    assert registered_z_shift(raw.drop_vars("true_energy_shift"), od) == 0.0


def test_chosen_variables_equal_the_whole_shift(truth):
    # the report shifts only the variables its errors use
    whole = truth_in_frame(truth, 0.37)
    part = truth_in_frame(truth, 0.37, variables=("particle", "density", "composition_class"))
    assert set(part.data_vars) == {"particle", "density", "composition_class"}
    for name in part.data_vars:
        np.testing.assert_array_equal(part[name].values, whole[name].values, err_msg=name)
    assert part.attrs["frame_shift_z_vox"] == 0.37


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dz", [0.37, -0.35, 1.0, -2.6, 1e-9, 5.5, -40.2])
def test_z_blend_is_ndimage_shift_bit_for_bit(dtype, dz, rng):
    """The two-plane blend computes what ndimage's order-1 spline does along one axis
    (edges repeated), to the bit, on (z, y, x) and (element, z, y, x) arrays."""
    from scipy import ndimage

    for shape, axis in (((17, 6, 5), 0), ((3, 17, 6, 5), 1)):
        values = (rng.random(shape) * 3 - 1).astype(dtype)
        shift = [dz if a == axis else 0.0 for a in range(len(shape))]
        expected = ndimage.shift(values, shift, order=1, mode="nearest")
        got = z_blend(values, dz, axis=axis)
        assert got.dtype == values.dtype
        np.testing.assert_array_equal(got, expected)


def test_solid_by_slabs_is_the_whole_erosion(truth):
    """The density errors' solid (particle without pores, eroded one voxel), slab by slab
    with a plane of halo, is the whole volume's erosion."""
    from scipy import ndimage

    from spectrotomo.pipeline._truth_errors import SLAB_VOXELS, _density_errors, _slabs, \
        _solid_slab

    whole = ndimage.binary_erosion(truth["particle"].values & ~truth["void"].values)
    nz = whole.shape[0]
    parts = [_solid_slab(truth, z0, z1) for z0, z1 in _slabs(nz, SLAB_VOXELS // 3)]  # 3 planes
    assert len(parts) > 2
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    rng = np.random.default_rng(0)
    true = rng.uniform(1.0, 2.0, whole.sum())
    est = true * rng.normal(1.0, 0.1, true.size)
    errors = _density_errors(np.array([est.sum(), true.sum(), ((est - true) ** 2).sum(),
                                       true.size]))
    assert errors["electron_density_mean_rel_error"] == pytest.approx(
        abs(est.mean() - true.mean()) / true.mean(), rel=1e-12)
    assert errors["electron_density_rms_rel_error"] == pytest.approx(
        np.sqrt(((est - true) ** 2).mean()) / true.mean(), rel=1e-12)


@pytest.mark.parametrize("dz", [0.0, 0.37, -0.7, 1.6, -2.3])
def test_truth_slabs_equal_the_whole_shift(truth, dz):
    """The errors' truth slab by slab, one variable at a time, the planes a shift reads
    beyond a slab carried over from the slab before (slabs up for dz > 0, down for
    dz < 0): what the whole volume's shift and its own planes give (the blend's
    weights, from the plane's index in the slab, within a float32 rounding)."""
    from spectrotomo.pipeline._truth_slabs import TruthSlabs

    whole = truth_in_frame(truth, dz)
    nz = truth.sizes["z"]
    slabs = TruthSlabs(truth, dz, [(z, min(nz, z + 5)) for z in range(0, nz, 5)])
    seen = []
    for z0, z1 in slabs:
        frame, _ = slabs.read({"particle": None, "occupancy": None, "composition_class": None})
        mn, own = slabs.read({"density": ["Mn"]}, unshifted=True)
        _, o = slabs.read({"density": ["O"]}, shifted=False, unshifted=True)
        for name in ("particle", "composition_class"):
            np.testing.assert_array_equal(frame[name].values, whole[name][z0:z1].values)
        np.testing.assert_allclose(frame["occupancy"].values,
                                   whole["occupancy"][z0:z1].values, rtol=1e-6, atol=0)
        np.testing.assert_allclose(mn["density_Mn"].values, whole["density"].sel(
            element="Mn")[z0:z1].values, rtol=1e-6, atol=0)
        np.testing.assert_array_equal(own["density_Mn"].values,
                                      truth["density"].sel(element="Mn")[z0:z1].values)
        np.testing.assert_array_equal(o["density_O"].values,
                                      truth["density"].sel(element="O")[z0:z1].values)
        seen.append((z0, z1))
    assert sorted(seen) == [(z, min(nz, z + 5)) for z in range(0, nz, 5)]
    assert [z0 for z0, _ in seen] == sorted(z0 for z0, _ in seen)[::-1 if dz < 0 else 1]


def test_mask_iou_in_the_particles_box_is_the_whole_volumes(rng):
    """The true particle's holes are filled in its bounding box (a voxel of margin):
    the IoU is the whole volume's filling's, to the bit."""
    from scipy import ndimage

    for k in range(60):
        shape = tuple(int(n) for n in rng.integers(3, 13, 3))
        particle = ndimage.binary_opening(rng.random(shape) > rng.uniform(0.2, 0.6)) \
            if k % 3 else rng.random(shape) > 0.5
        mask = rng.random(shape) > 0.5 if k % 2 else ndimage.binary_fill_holes(particle)
        true = ndimage.binary_fill_holes(particle)
        union = (mask | true).sum()
        got = _mask_errors(mask, xr.Dataset({"particle": (("z", "y", "x"), particle)}))
        assert got["mask_iou"] == (float((mask & true).sum() / union) if union else None)
