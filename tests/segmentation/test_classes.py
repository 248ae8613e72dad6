import numpy as np
import pytest
import xarray as xr

from spectrotomo import ValidationError, spatial_map
from spectrotomo.segmentation import CLASS_LEGEND, class_fractions, composition_classes

TARGET = 0.8 / 2.0  # (Mn+Ni+Co)/O of Li1.2Mn0.56Ni0.16Co0.08O2


def _ratio_phantom(rng, shape=(24, 32, 32)):
    truth = rng.choice([1, 2, 3], size=shape, p=[0.7, 0.2, 0.1]).astype(np.uint8)
    ratio = np.empty(shape)
    ratio[truth == 1] = TARGET * rng.uniform(0.96, 1.04, (truth == 1).sum())
    ratio[truth == 2] = TARGET * rng.uniform(1.06, 1.5, (truth == 2).sum())
    ratio[truth == 3] = TARGET * rng.uniform(0.5, 0.94, (truth == 3).sum())
    return ratio, truth


def test_classes_exact_on_known_ratios(rng):
    ratio, truth = _ratio_phantom(rng)
    classes = composition_classes(ratio, TARGET, 0.05)
    assert classes.dtype == np.uint8
    np.testing.assert_array_equal(classes, truth)


def test_boundaries_are_inclusive_for_target():
    ratio = TARGET * np.array([0.94, 0.9500001, 1.0, 1.0499999, 1.06])
    np.testing.assert_array_equal(composition_classes(ratio, TARGET, 0.05), [3, 1, 1, 1, 2])


def test_nan_low_signal_and_mask_are_unclassified_and_counted(rng):
    ratio, truth = _ratio_phantom(rng, (16, 16, 16))
    mask = np.ones(ratio.shape, bool)
    mask[:, :, :4] = False
    ratio[0] = np.nan
    ratio[1] = np.inf
    signal = np.ones(ratio.shape)
    signal[2] = 0.01
    classes = composition_classes(ratio, TARGET, mask=mask, signal=signal, min_signal=0.1)
    assert np.all(classes[:3] == 0) and np.all(classes[:, :, :4] == 0)
    np.testing.assert_array_equal(classes[3:, :, 4:], truth[3:, :, 4:])
    table = class_fractions(classes, mask)
    unclassified = 3 * 16 * 12
    assert int(table["count"].sel(particle=1, **{"class": 0})) == unclassified
    assert float(table["unclassified_fraction"].sel(particle=1)) == pytest.approx(
        unclassified / mask.sum())
    expected = np.bincount(truth[3:, :, 4:].ravel(), minlength=4)[1:] / truth[3:, :, 4:].size
    np.testing.assert_allclose(table["fraction"].sel(particle=1).values[1:], expected)
    assert float(table["fraction"].sel(particle=1).values[1:].sum()) == pytest.approx(1.0)


def test_fractions_per_particle(rng):
    ratio, truth = _ratio_phantom(rng, (16, 16, 32))
    labels = np.zeros(ratio.shape, np.int32)
    labels[:, :, :16] = 3
    labels[:, :, 16:] = 5
    table = class_fractions(composition_classes(ratio, TARGET), labels)
    assert list(table["particle"].values) == [3, 5]
    for lab, sl in ((3, np.s_[:, :, :16]), (5, np.s_[:, :, 16:])):
        exp = np.bincount(truth[sl].ravel(), minlength=4)[1:] / truth[sl].size
        np.testing.assert_allclose(table["fraction"].sel(particle=lab).values[1:], exp)
    assert list(table["class_name"].values) == [v[0] for v in CLASS_LEGEND.values()]


def test_dataarray_legend_and_volume(rng):
    ratio, _ = _ratio_phantom(rng, (8, 8, 8))
    da = spatial_map(ratio, voxel_size=10.0, units="1", name="tm_o_ratio")
    classes = composition_classes(da, TARGET, 0.05)
    assert isinstance(classes, xr.DataArray) and classes.dims == ("z", "y", "x")
    assert classes.attrs["flag_values"] == [0, 1, 2, 3]
    assert classes.attrs["flag_meanings"].split() == [v[0] for v in CLASS_LEGEND.values()]
    assert len(classes.attrs["flag_colors"].split()) == 4
    assert classes.attrs["tolerance"] == 0.05
    table = class_fractions(classes)
    assert float(table["volume"].sum()) == pytest.approx(8 ** 3 * 1000.0)


def test_dask_stays_lazy(rng):
    da = pytest.importorskip("dask.array")
    ratio, truth = _ratio_phantom(rng, (16, 16, 16))
    lazy = composition_classes(da.from_array(ratio, chunks=8), TARGET)
    assert type(lazy).__module__.startswith("dask")
    np.testing.assert_array_equal(lazy.compute(), truth)


@pytest.mark.gpu
def test_cupy_matches_numpy(rng):
    import cupy

    ratio, truth = _ratio_phantom(rng, (16, 16, 16))
    out = composition_classes(cupy.asarray(ratio), TARGET)
    np.testing.assert_array_equal(out.get(), truth)


def test_bad_input(rng):
    ratio, _ = _ratio_phantom(rng, (4, 4, 4))
    for tol in (0.0, -0.05, np.nan):
        with pytest.raises(ValidationError, match="tolerance"):
            composition_classes(ratio, TARGET, tol)
    with pytest.raises(ValidationError, match="target"):
        composition_classes(ratio, 0.0)
    with pytest.raises(ValidationError, match="same shape"):
        composition_classes(ratio, TARGET, mask=np.ones((4, 4, 5), bool))
    with pytest.raises(ValidationError, match="together"):
        composition_classes(ratio, TARGET, signal=ratio)
    with pytest.raises(ValidationError, match="empty"):
        class_fractions(composition_classes(ratio, TARGET), np.zeros((4, 4, 4), bool))
    with pytest.raises(ValidationError, match="all 0"):
        class_fractions(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValidationError, match="same shape"):
        class_fractions(composition_classes(ratio, TARGET), np.ones((4, 4, 5), bool))
