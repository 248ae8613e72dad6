"""surface_layer_pooling: near-surface TM/O shrunk towards its iso-depth layer's mean."""

import numpy as np
import pytest

from spectrotomo._model import ValidationError
from spectrotomo.segmentation import composition_classes, depth, surface_layer_pooling


def _ball_with_skin(n=40, radius=15.0, px=20.0):
    """Ball with a 30 nm skin of TM/O 1.136 (target 1); half the skin (x < centre) is
    measured diluted to 1.03 -- as where the missing wedge blurs it into the interior."""
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    mask = np.sqrt(z * z + y * y + x * x) <= radius
    d = np.asarray(depth(mask, spacing=px))
    skin = mask & (d < 30.0)
    o = np.where(mask, 10.0, 0.0).astype(np.float32)
    true = np.where(skin, 1.136, 1.0)
    measured = np.where(skin & (x < 0), 1.03, true)
    ratio = np.where(mask, measured, np.nan).astype(np.float32)
    return ratio, (ratio * o).astype(np.float32), o, d, mask, skin, px


def test_diluted_skin_recovered_and_interior_untouched():
    ratio, tm, o, d, mask, skin, px = _ball_with_skin()
    out = surface_layer_pooling(ratio, tm, o, d, mask=mask, spacing=px, surface_nm=40.0,
                                pooling=0.7)
    before = np.asarray(composition_classes(ratio, 1.0, 0.05, mask=mask))
    after = np.asarray(composition_classes(out, 1.0, 0.05, mask=mask))
    assert (before[skin] == 2).mean() < 0.6  # the diluted half is called "target"
    assert (after[skin] == 2).mean() == 1.0
    deep = mask & (d >= 40.0)
    np.testing.assert_array_equal(out[deep], ratio[deep])
    assert np.isnan(out[~mask]).all()


def test_pooling_limits_and_kept_departure():
    ratio, tm, o, d, mask, skin, px = _ball_with_skin()
    kw = dict(mask=mask, spacing=px, surface_nm=40.0)
    np.testing.assert_array_equal(surface_layer_pooling(ratio, tm, o, d, pooling=0.0, **kw),
                                  ratio)
    full = surface_layer_pooling(ratio, tm, o, d, pooling=1.0, **kw)
    half = surface_layer_pooling(ratio, tm, o, d, pooling=0.5, **kw)
    bins = np.floor(d / (0.25 * px))
    for b in np.unique(bins[skin]):  # pooling 1: one value per layer, its amount-weighted mean
        sel = skin & (bins == b)
        np.testing.assert_allclose(full[sel], tm[sel].sum() / o[sel].sum(), rtol=1e-5)
    # pooling 0.5 keeps half of each voxel's departure from its layer mean
    np.testing.assert_allclose(half[skin] - full[skin], 0.5 * (ratio[skin] - full[skin]),
                               atol=1e-5)


@pytest.mark.parametrize("bad", [-0.1, 1.5, np.nan])
def test_bad_pooling_is_a_clear_error(bad):
    ratio, tm, o, d, mask, _, px = _ball_with_skin(n=12, radius=4.0)
    with pytest.raises(ValidationError, match="layer_pooling"):
        surface_layer_pooling(ratio, tm, o, d, mask=mask, spacing=px, surface_nm=40.0,
                              pooling=bad)


def test_zone_of_one_voxel_layer_is_not_pooled():
    ratio, tm, o, d, mask, _, px = _ball_with_skin()
    out = surface_layer_pooling(ratio, tm, o, d, mask=mask, spacing=px, surface_nm=25.0,
                                pooling=0.7)  # round(25 / 20) = 1 layer: partial volume only
    np.testing.assert_array_equal(out, ratio)


def test_spacing_from_the_dataarray_and_checked():
    xr = pytest.importorskip("xarray")
    ratio, tm, o, d, mask, _, px = _ball_with_skin(n=24, radius=9.0)
    kw = dict(mask=mask, surface_nm=40.0, pooling=0.6)
    explicit = surface_layer_pooling(ratio, tm, o, d, spacing=px, **kw)
    da = xr.DataArray(ratio, dims=("z", "y", "x"), attrs={"pixel_size": px})
    np.testing.assert_array_equal(surface_layer_pooling(da, tm, o, d, **kw), explicit)
    assert not np.array_equal(explicit, ratio)  # pooled at 20 nm (2 layers)
    with pytest.raises(ValidationError, match="spacing"):
        surface_layer_pooling(ratio, tm, o, d, spacing=(px, -px, px), **kw)
