"""The report's bounded reads: block sums, strided samples and block histograms give
what the whole arrays give (counts and histograms exactly)."""

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from spectrotomo.pipeline._figures import class_counts, class_fraction_table, \
    class_fractions_of_counts, robust_limits
from spectrotomo.pipeline._report_reads import block_map, block_sums, masked_histogram, sample
from spectrotomo.pipeline.steps.report import _masked_sum, _segment_counts


@pytest.fixture(scope="module")
def volumes():
    rng = np.random.default_rng(5)
    shape = (20, 18, 22)
    mask = rng.random(shape) < 0.6
    pores = np.where(rng.random(shape) < 0.05, rng.integers(1, 9, shape), 0).astype(np.int32)
    cracks = np.where(rng.random(shape) < 0.02, 3, 0).astype(np.int32)
    classes = np.where(mask, rng.integers(0, 4, shape), 0).astype(np.uint8)
    values = rng.normal(1.0, 0.3, shape).astype(np.float32)
    values[rng.random(shape) < 0.03] = np.nan
    return mask, pores, cracks, classes, values


def test_block_counts_equal_the_whole_volume(volumes):
    """Chunked (7^3, uneven edges) block counts give the whole array's porosity, crack
    fraction and class fractions to the bit, on threads or serially."""
    from concurrent.futures import ThreadPoolExecutor

    mask, pores, cracks, classes, _ = volumes
    lazy = [da.from_array(a, chunks=7) for a in (mask, pores, cracks, classes)]
    with ThreadPoolExecutor(2) as pool:
        threaded = block_sums(_segment_counts, *lazy, pool=pool)
    counts = block_sums(_segment_counts, *lazy)
    np.testing.assert_array_equal(threaded, counts)
    assert counts[1] / counts[0] == (pores > 0).sum() / mask.sum()
    assert counts[2] / counts[0] == (cracks > 0).sum() / mask.sum()
    assert class_fractions_of_counts(counts[3:]) == class_fraction_table(classes)
    assert len(block_map(class_counts, lazy[3])) == 3 * 3 * 4  # 20, 18, 22 in 7s


def test_block_mean_within_float32_rounding(volumes):
    """The masked mean as float64 block sums (the report's mean electron density) is the
    whole array's float32 mean within 1e-6 relative."""
    mask, *_, values = volumes
    vals = np.nan_to_num(values, nan=1.0)
    total, n = block_sums(_masked_sum, da.from_array(vals, chunks=(5, 18, 11)),
                          xr.DataArray(da.from_array(mask, chunks=6)))
    assert n == mask.sum()
    assert total / n == pytest.approx(float(vals[mask].mean()), rel=1e-6)


def test_sample_is_every_voxel_under_the_cap_and_strided_over_it():
    values = np.arange(24 * 30 * 32, dtype=np.float32).reshape(24, 30, 32)
    lazy = da.from_array(values, chunks=8)
    np.testing.assert_array_equal(sample(lazy), values)
    small = sample(lazy, cap=2000)
    assert small.size <= 2000
    np.testing.assert_array_equal(small, values[1::3, 1::3, 1::3])  # 8*10*11 = 880 (::2: 2880)


@pytest.mark.parametrize("shape", [(60, 64), (2, 24, 30, 32), (1, 24, 30, 32)])
def test_sample_keeps_to_the_cap_for_2d_and_4d_inputs(shape):
    # (2-D and 4-D inputs were never strided: the voxel count's sign flipped with the
    # number of axes) -- leading axes (elements) kept whole
    values = np.zeros(shape, np.float32)
    small = sample(values, cap=2000)
    assert small.size <= 2000
    assert small.shape[:-3] == shape[:-3]


def test_sampled_colour_limits_near_the_whole_volumes():
    """Percentiles of a smooth map from a strided sample of 1/27 of it differ from the
    whole volume's by < 1 % of the colour range (0.2 % here; 3.6 % were the sample
    started at voxel 0, missing the gradient's top end)."""
    z, y, x = np.mgrid[:60, :60, :60] / 60.0
    rng = np.random.default_rng(2)
    values = np.sin(3 * z) + y * x + rng.normal(0, 0.05, z.shape)
    whole = np.percentile(values, [1, 99])
    part = np.percentile(sample(values, cap=60 ** 3 // 27), [1, 99])
    assert np.abs(part - whole).max() < 0.01 * (whole[1] - whole[0])
    assert robust_limits(da.from_array(values, chunks=16)) == tuple(whole)


@pytest.mark.parametrize("case", ["values", "empty", "constant"])
def test_block_histogram_equals_numpy_on_the_gathered_values(volumes, case):
    mask, *_, values = volumes
    if case == "empty":
        mask = np.zeros_like(mask)
    if case == "constant":
        values = np.full_like(values, 2.5)
    counts, edges = masked_histogram(da.from_array(values, chunks=6),
                                     da.from_array(mask, chunks=9), bins=40)
    kept = values[mask & np.isfinite(values)].astype(float)
    expected, expected_edges = np.histogram(kept, bins=40)
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(edges, expected_edges)


def test_block_histogram_over_a_range_counts_what_falls_outside(volumes):
    """A histogram over given limits (the report's robust ones: TM/O outliers of ~1e5 no
    longer squeeze the distribution into one bar) equals numpy's with that range, and
    says how many values fell below and above it."""
    mask, *_, values = volumes
    values = values.copy()
    values[0, 0, :5] = 1e5  # outliers, as TM/O where the O amount is noise
    counts, edges, (below, above) = masked_histogram(
        da.from_array(values, chunks=6), da.from_array(mask, chunks=9), bins=30,
        range=(0.5, 1.5))
    kept = values[mask & np.isfinite(values)].astype(float)
    expected, expected_edges = np.histogram(kept, bins=30, range=(0.5, 1.5))
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(edges, expected_edges)
    assert (below, above) == ((kept < 0.5).sum(), (kept > 1.5).sum())
    assert above >= int(mask[0, 0, :5].sum()) > 0


def test_class_counts_take_float_labels_and_negative_fill():
    # NaN outside (xarray's where) and a -1 fill count as background, as 0 does
    np.testing.assert_array_equal(class_counts(np.array([0, 1, 2, np.nan, 3, 5])),
                                  [2, 1, 1, 1, 1])
    np.testing.assert_array_equal(class_counts(np.array([-1, 1, 1], np.int8)), [1, 2, 0, 0, 0])


def test_report_freezes_old_objects_only_for_its_block_and_not_nested():
    """The report's work runs with the objects made before it frozen (no full GC scan of
    the imports' objects), thawed after, and leaves a caller's freeze alone."""
    import gc

    from spectrotomo.pipeline.steps.report import _old_objects_frozen

    assert gc.get_freeze_count() == 0
    with _old_objects_frozen():
        assert gc.get_freeze_count() > 0
        made = [[]]
        made[0].append(made)  # a cycle made inside the block is still collectable
        del made
        assert gc.collect() > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with _old_objects_frozen():
            pass
        assert gc.get_freeze_count() == frozen  # the caller's freeze stays
    finally:
        gc.unfreeze()
