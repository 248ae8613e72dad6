import numpy as np
import pytest
import xarray as xr

from spectrotomo import validate_tilt_series
from spectrotomo.simulate import Imperfections, sample
from spectrotomo.spectra import EDGES


def test_small_sample_has_truth_series_xanes_and_references():
    tree = sample("small", seed=0)
    assert isinstance(tree, xr.DataTree)
    assert set(tree.children) == {"truth", "tilt_series", "xanes", "references"}
    ts = validate_tilt_series(tree["tilt_series"].to_dataset())
    pairs = sorted(EDGES[e][k] for e in EDGES for k in ("below", "above"))
    np.testing.assert_array_equal(ts["energy"].values, pairs)
    np.testing.assert_array_equal(ts["angle"].values, np.arange(-65, 66.0))
    assert ts.attrs["true_center"] != (ts.sizes["x"] - 1) / 2  # imperfect by default
    xanes = validate_tilt_series(tree["xanes"].to_dataset())
    assert xanes.sizes["energy"] == 25 and xanes.sizes["angle"] == 1
    assert xanes["energy"].min() >= 635 and xanes["energy"].max() <= 665
    spectra = tree["references"]["spectra"]
    assert spectra.attrs["synthetic"] is True and spectra.dims == ("state", "energy")
    truth = tree["truth"].to_dataset()
    assert truth.attrs["preset"] == "small" and truth["density"].sizes["element"] == 5
    # the Mn white lines are seen in the 2D scan: OD peaks between the pair's energies
    od = xanes["true_od"].isel(angle=0).max(("y", "x"))
    assert 639 <= float(od["energy"][int(od.argmax("energy"))]) <= 646


def test_ideal_sample_has_no_imperfections():
    tree = sample("small", seed=1, imperfections=Imperfections(), shape=(32, 40, 40),
                  radius_nm=240.0, n_grains=8)
    ts = tree["tilt_series"].to_dataset()
    assert np.all(ts["true_shift"].values == 0) and np.all(ts["true_scale"].values == 1)
    assert ts.attrs["true_center"] == (ts.sizes["x"] - 1) / 2


def test_tiny_preset_is_the_small_particle_on_a_coarser_grid():
    tree = sample("tiny", seed=0, imperfections=Imperfections())
    truth, ts = tree["truth"].to_dataset(), tree["tilt_series"].to_dataset()
    assert truth.sizes == {**truth.sizes, "z": 32, "y": 32, "x": 32}
    assert truth.attrs["pixel_size"] == 36.0
    np.testing.assert_array_equal(ts["angle"].values, np.arange(-65.0, 65.1, 2.0))
    # same envelope as "small": ~0.95 um across
    extent = truth["particle"].values.any(axis=(0, 1)).sum() * 36.0
    assert 800 < extent < 1100


def test_pixel_size_metadata_reaches_both_series():
    tree = sample("tiny", seed=0, pixel_size_metadata=True)
    assert tree.attrs["pixel_size_metadata"] is True
    for child in ("tilt_series", "xanes"):
        ts = tree[child].to_dataset()
        np.testing.assert_allclose(ts["pixel_size_energy"].values,
                                   36.0 / ts["true_scale"].values, rtol=1e-12)
    assert "pixel_size_energy" not in sample("tiny", seed=0)["tilt_series"].to_dataset().coords


def test_on_truth_gets_the_truth_before_the_series_and_its_error_is_raised():
    seen = []
    tree = sample("tiny", seed=1, on_truth=seen.append)
    assert len(seen) == 1
    xr.testing.assert_identical(seen[0], tree["truth"].to_dataset())
    # the series simulated beside on_truth are those of a run without it
    plain = sample("tiny", seed=1)
    np.testing.assert_array_equal(tree["tilt_series"]["projections"].values,
                                  plain["tilt_series"]["projections"].values)
    np.testing.assert_array_equal(tree["xanes"]["projections"].values,
                                  plain["xanes"]["projections"].values)

    def fails(truth):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        sample("tiny", seed=1, on_truth=fails)
