"""pipeline.steps.segment: the in-memory class_ratio (diagnostics) equals the step's
block-wise ratio (segment_volume), layer pooling included; one set of smoothing keywords."""

from dataclasses import replace

import numpy as np
import pytest
import xarray as xr

from spectrotomo import segmentation as seg
from spectrotomo.pipeline import Config
from spectrotomo.pipeline.steps.segment import class_ratio, smoothing_options
from spectrotomo.spectra import EDGES

ALL = (slice(None),) * 3


def test_class_ratio_equals_segment_volume():
    simulate = pytest.importorskip("spectrotomo.simulate")
    truth = simulate.particle("small", seed=3)
    px, target = float(truth.attrs["pixel_size"]), float(truth.attrs["target_tm_o"])
    rng = np.random.default_rng(5)
    mu = simulate.attenuation(truth, [EDGES["Mn"]["above"]]).values[0]
    mu = (mu + rng.normal(0, 0.03 * mu.max(), mu.shape)).astype(np.float32)
    amounts = truth["density"].sel(element=["Mn", "Co", "Ni", "O"])
    amounts = (amounts * (1 + rng.normal(0, 0.05, amounts.shape))).astype(np.float32)
    cfg = Config().segmentation
    assert cfg.layer_pooling > 0  # the default pools: the comparison covers it
    res = seg.segment_volume(mu, spacing=px, chunk=32, amounts=amounts.values,
                             elements=["Mn", "Co", "Ni", "O"], target=target,
                             tolerance=cfg.tolerance, **smoothing_options(cfg))
    try:
        got = {k: np.asarray(res.arrays[k][ALL]) for k in ("mask", "depth", "pores", "cracks",
                                                           "tm_o_ratio_smoothed")}
    finally:
        res.close()
    solid = got["mask"] & (got["pores"] == 0) & (got["cracks"] == 0)
    chem = xr.Dataset({"amount": amounts})
    ratio, defined = class_ratio(chem, solid, px, cfg, depth=got["depth"])
    np.testing.assert_array_equal(defined, np.isfinite(got["tm_o_ratio_smoothed"]))
    np.testing.assert_allclose(ratio, got["tm_o_ratio_smoothed"], rtol=1e-6, equal_nan=True)
    unpooled, _ = class_ratio(chem, solid, px, replace(cfg, layer_pooling=0.0),
                              depth=got["depth"])
    near = defined & (got["depth"] < cfg.surface_layer_nm)
    assert np.abs(unpooled[near] - ratio[near]).max() > 1e-3  # pooling acted near the surface
