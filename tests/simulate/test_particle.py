import numpy as np
import pytest

from spectrotomo.simulate import particle
from spectrotomo.simulate._chemistry import COMPOSITIONS, formula_unit_density

STATE_VALENCE = {"Mn2+": 2, "Mn3+": 3, "Mn4+": 4, "Co2+": 2, "Co3+": 3, "Co4+": 4,
                 "Ni2+": 2, "Ni3+": 3, "Ni4+": 4, "O2-": -2, "O1-": -1}
NO_DEVIATION = dict(radial_gradient=0.0, surface_layer_nm=0.0, o_poor=(0, 1.0),
                    o_rich=(0, 1.0), li_depletion=0.0)


@pytest.fixture(scope="module")
def truth():
    return particle("small", seed=3)


def test_contract_variables_dtypes_and_attrs(truth):
    assert truth.sizes["z"] <= 64 and truth.sizes["y"] <= 64 and truth.sizes["x"] <= 64
    dtypes = {"occupancy": np.float32, "particle": bool, "grain": np.int32, "void": bool,
              "crack": bool, "depth": np.float32, "tm_o_ratio": np.float32,
              "composition_class": np.uint8, "density": np.float32,
              "state_fraction": np.float32, "valence": np.float32}
    for name, dtype in dtypes.items():
        assert truth[name].dtype == dtype, name
    assert truth["density"].dims == ("element", "z", "y", "x")
    assert list(truth["element"].values) == ["Li", "Mn", "Co", "Ni", "O"]
    assert list(truth["state"].values) == list(STATE_VALENCE)
    np.testing.assert_array_equal(truth["state_valence"].values, list(STATE_VALENCE.values()))
    assert list(truth["state_element"].values) == [s.rstrip("+-12345") for s in STATE_VALENCE]
    attrs = truth.attrs
    assert attrs["pixel_size"] == 20.0 and attrs["preset"] == "small" and attrs["seed"] == 3
    assert attrs["formula"] == "Li1.2Mn0.56Ni0.16Co0.08O2"
    assert attrs["target_tm_o"] == pytest.approx(0.4) and attrs["tolerance"] == 0.05
    for dim in ("z", "y", "x"):
        assert truth[dim].attrs["units"] == "nm"
    assert truth["depth"].attrs["units"] == "nm" and truth["density"].attrs["units"] == "1/nm^3"


def test_geometry_is_a_porous_cracked_grain_aggregate(truth):
    occ, inside = truth["occupancy"].values, truth["particle"].values
    assert occ.min() >= 0 and occ.max() <= 1
    assert np.all(occ[~inside] < 0.5)
    void, crack = truth["void"].values, truth["crack"].values
    assert void.sum() > 20 and crack.sum() > 20
    assert np.all(inside[void | crack]) and np.all(occ[void | crack] < 0.5)
    grain = truth["grain"].values
    assert np.all(grain[~inside] == 0) and np.all(grain[inside] > 0)
    assert np.unique(grain[inside]).size == 40
    # particle about 1 um across (radius 470 nm), inside the field of view
    diameter = 2 * np.cbrt(inside.sum() * 3 / (4 * np.pi)) * truth.attrs["pixel_size"]
    assert 800 < diameter < 1100
    assert not inside[[0, -1]].any() and not inside[:, [0, -1]].any() and not inside[..., [0, -1]].any()


def test_depth_is_distance_from_the_surface(truth):
    depth, inside = truth["depth"].values, truth["particle"].values
    assert np.all(depth[~inside] == 0)
    z, y, x = np.indices(depth.shape)
    r = np.sqrt((z - 31.5) ** 2 + (y - 31.5) ** 2 + (x - 31.5) ** 2)
    # deepest point near the centre, about one radius (470 nm +- envelope roughness) deep
    assert 300 < depth.max() < 600 and r[depth == depth.max()].min() < 8
    # a voxel's depth never exceeds its distance to a voxel outside
    outside = np.argwhere(~inside)[::97]
    k = np.argwhere(inside)[::53]
    dist = np.sqrt(((k[:, None, :] - outside[None]) ** 2).sum(-1)).min(1) * 20
    assert np.all(depth[tuple(k.T)] <= dist + 1e-3)


def test_densities_follow_stoichiometry_without_deviations():
    truth = particle("small", seed=1, **NO_DEVIATION)
    fu = formula_unit_density("lrtmo") * truth.attrs["packing"]
    assert truth.attrs["formula_unit_density"] == pytest.approx(fu)
    occ = truth["occupancy"].values
    for el, n in COMPOSITIONS["lrtmo"]["stoich"].items():
        np.testing.assert_allclose(truth["density"].sel(element=el).values, occ * fu * n,
                                   rtol=1e-5, atol=1e-6)
    solid = occ > 0
    np.testing.assert_allclose(truth["tm_o_ratio"].values[solid], 0.4, rtol=1e-5)
    assert np.all(np.isin(truth["composition_class"].values, [0, 1]))


def test_dense_formula_unit_density_is_physical():
    # LRTMO: 4.3 g/cm^3 / 85.2 g/mol * N_A = 30.4 formula units per nm^3
    assert formula_unit_density("lrtmo") == pytest.approx(30.4, rel=0.01)


def test_state_fractions_sum_to_one_per_element(truth):
    frac = truth["state_fraction"]
    solid = truth["occupancy"].values > 0
    assert frac.values.min() >= 0 and frac.values.max() <= 1 + 1e-6
    for el in ("Mn", "Co", "Ni", "O"):
        total = frac.where(frac.state_element == el, drop=True).sum("state").values
        np.testing.assert_allclose(total[solid], 1.0, atol=1e-5)
        np.testing.assert_array_equal(total[~solid], 0.0)


def test_valence_is_the_state_weighted_mean_and_reduced_at_the_surface(truth):
    frac, val = truth["state_fraction"], truth["valence"]
    solid = truth["occupancy"].values > 0
    for el in ("Mn", "Co", "Ni", "O"):
        sub = frac.where(frac.state_element == el, drop=True)
        expected = (sub * sub.state_valence).sum("state").values
        np.testing.assert_allclose(val.sel(element=el).values[solid], expected[solid], atol=1e-5)
    np.testing.assert_array_equal(val.sel(element="Li").values[solid], 1.0)
    depth = truth["depth"].values
    mn = val.sel(element="Mn").values
    target = truth["composition_class"].values == 1
    assert mn[solid & (depth < 20)].mean() < mn[target & (depth > 200)].mean() - 0.3


def test_ratio_and_classes_are_consistent(truth):
    d = truth["density"]
    ratio = truth["tm_o_ratio"].values
    occ = truth["occupancy"].values
    tm = (d.sel(element="Mn") + d.sel(element="Co") + d.sel(element="Ni")).values
    solid = occ > 0
    np.testing.assert_allclose(ratio[solid], tm[solid] / d.sel(element="O").values[solid], rtol=1e-5)
    assert np.all(np.isnan(ratio[~solid]))
    cls = truth["composition_class"].values
    target, tol = truth.attrs["target_tm_o"], truth.attrs["tolerance"]
    np.testing.assert_array_equal(cls == 0, occ < 0.5)
    sel = occ >= 0.5
    expected = np.where(ratio[sel] > target * (1 + tol), 2, np.where(ratio[sel] < target * (1 - tol), 3, 1))
    np.testing.assert_array_equal(cls[sel], expected)
    fractions = np.bincount(cls[sel], minlength=4)[1:] / sel.sum()
    assert fractions[0] > 0.6 and fractions[1] > 0.05 and fractions[2] > 0.01, fractions


def test_ncm811_composition():
    truth = particle("small", seed=0, composition="ncm811", **NO_DEVIATION)
    assert truth.attrs["formula"] == "Li(Ni0.8Co0.15Mn0.05)O2"
    assert truth.attrs["target_tm_o"] == pytest.approx(0.5)
    solid = truth["occupancy"].values > 0
    d = truth["density"]
    np.testing.assert_allclose((d.sel(element="Ni") / d.sel(element="Mn")).values[solid], 16, rtol=1e-5)
    np.testing.assert_allclose(truth["tm_o_ratio"].values[solid], 0.5, rtol=1e-5)


def test_deterministic_per_seed():
    kw = dict(shape=(24, 32, 32), radius_nm=180.0, n_grains=8, n_voids=2, n_cracks=1)
    a, b, c = particle(seed=5, **kw), particle(seed=5, **kw), particle(seed=6, **kw)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert not np.array_equal(a["grain"].values, c["grain"].values)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="preset"):
        particle("huge")
    with pytest.raises(ValueError, match="unknown override"):
        particle("small", radius=3)
    with pytest.raises(ValueError, match="composition"):
        particle("small", composition="lfp")
    with pytest.raises(ValueError, match="radius"):
        particle("small", radius_nm=5000.0)
    with pytest.raises(ValueError, match="does not fit"):
        particle("small", radius_nm=600.0, roughness=0.3)


def test_depth_equals_scipys_distance_transform():
    """The particle depth from edt's squared distances is scipy's EDT bit for bit
    (an irregular mask: rough blob with holes touching nothing at the border)."""
    from scipy import ndimage

    from spectrotomo.simulate._grains import _depth

    rng = np.random.default_rng(11)
    blob = ndimage.gaussian_filter(rng.normal(size=(30, 34, 38)), 3) > -0.02
    blob[[0, -1]], blob[:, [0, -1]], blob[:, :, [0, -1]] = False, False, False
    expected = (np.clip(ndimage.distance_transform_edt(blob) - 0.5, 0.0, None)
                .astype(np.float32) * blob)
    got = _depth(blob)
    assert got.dtype == np.float32 and got.max() > 3
    np.testing.assert_array_equal(got, expected)


def test_lazy_truth_is_the_eager_truth_slab_by_slab(monkeypatch):
    from spectrotomo.simulate import _truth_slabs

    monkeypatch.setattr(_truth_slabs, "_LAZY_VOXELS", 5 * 40 * 40)  # 5-plane slabs, 3 left over
    eager = particle("small", seed=4, shape=(48, 40, 40), radius_nm=300.0, n_grains=12)
    lazy = particle("small", seed=4, lazy=True, shape=(48, 40, 40), radius_nm=300.0, n_grains=12)
    assert lazy["density"].chunks[1] == (5,) * 9 + (3,)
    lazy = lazy.compute()
    for name, var in eager.variables.items():  # bit for bit: every value is per voxel
        assert var.dtype == lazy[name].dtype, name
        np.testing.assert_array_equal(var.values, lazy[name].values, err_msg=name)
    assert eager.attrs == lazy.attrs
