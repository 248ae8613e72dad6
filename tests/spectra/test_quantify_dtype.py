"""float32 amounts and ratios (element_maps' default) leave the science numbers -- class
fractions and shell / depth / class profiles -- within 1e-5 relative of float64."""

import numpy as np
import pytest


def test_float32_amounts_keep_class_fractions_and_profiles(truth_small):
    from spectrotomo import segmentation as seg
    from spectrotomo.simulate import attenuation
    from spectrotomo.spectra import EDGES
    from spectrotomo.spectra import element_maps

    pairs = {el: (EDGES[el]["below"], EDGES[el]["above"]) for el in ("O", "Mn", "Co", "Ni")}
    mu = attenuation(truth_small, sorted(e for p in pairs.values() for e in p))
    mu = mu + np.random.default_rng(5).normal(0, 0.02 * float(mu.max()), mu.shape)
    li = truth_small["density"].sel(element="Li").values
    px = float(truth_small.attrs["pixel_size"])
    mask = truth_small["occupancy"].values > 0.5
    depth = seg.depth(mask, spacing=px)
    shells = seg.shells(mask, 5, px, depth_map=depth)
    out = {}
    for dtype in (np.float64, np.float32):
        maps = element_maps(mu, pairs=pairs, fixed={"Li": li}, threshold=1e-3, dtype=dtype)
        assert maps["amount"].dtype == dtype and maps["tm_o_ratio"].dtype == dtype
        a = maps["amount"].sel(element=["Mn", "Co", "Ni", "O"]).values
        tm, o = seg.masked_smooth(np.stack([a[:3].sum(axis=0), a[3]]), mask, sigma_nm=30,
                                  spacing=px, surface_nm=40)
        ratio = np.where(mask & (o > 0), tm / np.where(o > 0, o, 1), np.nan)
        classes = seg.composition_classes(ratio, 0.4, 0.05, mask=mask)
        fractions = seg.class_fractions(classes, mask)["fraction"].values
        tables = [seg.profile_table(maps[q], r, by=by, labels=mask, bins=[0, 40, 100, 400])
                  for q in ("tm_o_ratio", "amount")
                  for by, r in (("shell", shells), ("depth", depth), ("class", classes))]
        out[dtype] = (fractions, [t[s].values for t in tables for s in ("mean", "median",
                                                                           "std", "count")])
    assert out[np.float64][0][0, 1:].min() > 0.01  # classes present
    np.testing.assert_allclose(out[np.float32][0], out[np.float64][0], rtol=1e-5)
    for got, ref in zip(out[np.float32][1], out[np.float64][1]):
        np.testing.assert_allclose(got, ref, rtol=1e-5)
