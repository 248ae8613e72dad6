import numpy as np
import pytest

from spectrotomo import ValidationError, volume
from spectrotomo.spectra import (DEFAULT_WINDOWS, builtin_references, effective_valence, lcf,
                                 valence_maps)


def test_effective_valence_formula_and_masking():
    f = np.array([[0.2, 0.3, 0.5], [0.0, 0.0, 0.0], [np.nan, 1, 0], [2.0, 0.0, 2.0]])
    v = effective_valence(f, [2, 3, 4])
    assert v[0] == pytest.approx(0.2 * 2 + 0.3 * 3 + 0.5 * 4)
    assert np.isnan(v[1]) and np.isnan(v[2])
    assert v[3] == pytest.approx(3.0)  # amounts, not fractions: divided by their sum
    with pytest.raises(ValidationError, match="len\\(valences\\)"):
        effective_valence(f, [2, 3])


def test_builtin_references_are_the_synthetic_model():
    refs = builtin_references(["Mn"], energies=np.arange(635.0, 665.1, 0.5))
    assert refs.dims == ("state", "energy") and refs.attrs["synthetic"] is True
    assert list(refs.state_valence.values) == [2.0, 3.0, 4.0]
    assert set(refs.state_element.values) == {"Mn"}
    assert refs.attrs["units"] == "1"
    # usable as LCF references: well conditioned, a mixture is recovered exactly
    mix = np.array([0.2, 0.5, 0.3]) @ refs.values
    assert np.allclose(lcf(mix, refs.values, sum_to_one=True).fractions, [0.2, 0.5, 0.3], atol=1e-9)


@pytest.fixture(scope="module")
def xanes_volume(truth_small):
    from spectrotomo.simulate import attenuation

    energies = np.unique(np.concatenate([np.arange(lo, hi + 1e-9, 0.5)
                                         for lo, hi in DEFAULT_WINDOWS.values()]))
    return attenuation(truth_small, energies)


def test_valence_maps_match_truth_noise_free(truth_small, xanes_volume):
    refs = builtin_references(energies=xanes_volume.energy.values, normalized=False)
    maps = valence_maps(xanes_volume, refs, min_amount=0.5)
    solid = truth_small["occupancy"].values > 0.9
    assert maps["valence"].dims == ("element", "z", "y", "x")
    for el in ("Mn", "Co", "Ni", "O"):
        got = maps["valence"].sel(element=el).values[solid]
        true = truth_small["valence"].sel(element=el).values[solid]
        np.testing.assert_allclose(got, true, atol=1e-3)
        amount = maps["amount"].sel(element=el).values[solid]
        np.testing.assert_allclose(amount, truth_small["density"].sel(element=el).values[solid],
                                   rtol=2e-3)
    empty = truth_small["occupancy"].values == 0
    assert np.isnan(maps["valence"].values[:, empty]).all()


def test_valence_maps_interior_with_noise(truth_small, xanes_volume, rng):
    refs = builtin_references(energies=xanes_volume.energy.values, normalized=False)
    noise = 0.01 * float(xanes_volume.max())
    noisy = xanes_volume.copy(data=xanes_volume.values + rng.normal(scale=noise, size=xanes_volume.shape))
    maps = valence_maps(noisy, refs, min_amount=0.5, r_factor_max=1.0)
    solid = truth_small["occupancy"].values > 0.9
    for el, tol in (("Mn", 0.1), ("Ni", 0.3)):
        err = maps["valence"].sel(element=el).values[solid] - truth_small["valence"].sel(element=el).values[solid]
        assert np.nanmedian(np.abs(err)) < tol, el  # stated error at 1 % noise per energy
        assert abs(np.nanmean(err)) < tol / 2, el


def test_valence_maps_normalized_mode_sum_to_one(rng):
    energies = np.arange(635.0, 665.1, 0.5)
    refs = builtin_references(["Mn"], energies=energies, normalized=True)
    truth = rng.dirichlet(np.ones(3), size=(6, 7))
    spectra = truth @ refs.values + rng.normal(scale=0.01, size=(6, 7, energies.size))
    vol = volume(np.moveaxis(spectra, -1, 0)[:, None], energies=energies, voxel_size=10.0,
                 units="1")
    maps = valence_maps(vol, refs, normalized=True)
    fr = maps["fractions"].values[:, 0]  # (state, y, x)
    assert np.allclose(fr.sum(axis=0), 1.0, atol=1e-12) and (fr >= 0).all()
    expected = truth @ np.array([2.0, 3.0, 4.0])
    assert np.abs(maps["valence"].sel(element="Mn").values[0] - expected).max() < 0.05


def test_valence_maps_bad_inputs(xanes_volume):
    refs = builtin_references(["Mn"], energies=np.arange(635.0, 665.1, 0.5))
    with pytest.raises(ValidationError, match="state_valence"):
        valence_maps(xanes_volume, refs.drop_vars("state_valence"))
    with pytest.raises(ValidationError, match="no references"):
        valence_maps(xanes_volume, refs, elements=["Co"])
    with pytest.raises(ValidationError, match="outside the references' range"):
        valence_maps(xanes_volume, refs.sel(energy=slice(640, 660)))


def test_valence_maps_dask_chunked_matches_eager(xanes_volume):
    pytest.importorskip("dask.array")
    refs = builtin_references(["Mn"], energies=xanes_volume.energy.values, normalized=False)
    eager = valence_maps(xanes_volume, refs, min_amount=0.5)
    lazy = valence_maps(xanes_volume.chunk({"z": 8, "energy": -1}), refs, min_amount=0.5)
    np.testing.assert_allclose(lazy["valence"].values, eager["valence"].values, equal_nan=True,
                               atol=1e-12)
