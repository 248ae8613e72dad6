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


def test_amount_bias_reads_each_slab_once_and_matches_one_element_at_a_time(truth):
    """The interior means from slab-wise reads of all elements together equal those of
    the whole volume per element (the same voxels, in the same order: the same
    float32 nanmean), with NaN voxels skipped and each chunk read once."""
    import dask.array as da

    from spectrotomo.pipeline._truth_errors import _amount_bias
    from spectrotomo.pipeline._valence3d_report import truth_interior

    rng = np.random.default_rng(5)
    dens = truth["density"].transpose("element", "z", "y", "x")
    values = (dens.values * rng.uniform(0.9, 1.1, dens.shape)).astype(np.float32)
    values[:, 5, 10:14, 10:14] = np.nan
    reads = []

    def counted(block):
        reads.append(block.shape)
        return block

    lazy = da.from_array(values, chunks=(dens.sizes["element"], 5, -1, -1))
    chem = xr.Dataset({"amount": (dens.dims, lazy.map_blocks(counted, meta=values[:0]))},
                      coords={"element": dens["element"].values})
    got = _amount_bias(chem, truth)
    inner = truth_interior(truth)
    for i, el in enumerate(dens["element"].values):
        want = np.nanmean(values[i][inner]) / dens.sel(element=el).values[inner].mean() - 1
        assert got[str(el)] == float(want)
    assert len(reads) == len(lazy.chunks[1])
