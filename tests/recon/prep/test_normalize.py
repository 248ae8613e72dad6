import numpy as np
import pytest

from spectrotomo import ValidationError
from spectrotomo.recon.prep import normalize


def _raw(rng, n=6, shape=(16, 20), counts=1000.0, dark=50.0, od=None):
    od = rng.uniform(0.1, 1.5, (n, *shape)) if od is None else od
    flat = counts * rng.uniform(0.8, 1.2, shape)  # pixel gains
    proj = dark + flat * np.exp(-od)
    return proj, dark + flat, od  # a measured flat includes the dark current


def test_recovers_optical_density_mean_and_median(rng):
    proj, flat, od = _raw(rng)
    flats = np.stack([flat] * 4)
    darks = np.full((3, 16, 20), 50.0)
    for mode in ("mean", "median"):
        out, rep = normalize(proj, flats, darks, flat_mode=mode, zinger_threshold=None)
        assert out.dtype == np.float32 and out.shape == od.shape
        np.testing.assert_allclose(out, od, atol=1e-5)
        assert rep.n_masked == 0 and (rep.mask == 0).all()


def test_median_flats_reject_a_zinger_in_one_flat(rng):
    proj, flat, od = _raw(rng, dark=0.0)
    flats = np.stack([flat] * 5)
    flats[2, 3, 4] *= 40.0
    med, _ = normalize(proj, flats, None, flat_mode="median", zinger_threshold=None)
    mean, _ = normalize(proj, flats, None, flat_mode="mean", zinger_threshold=None)
    np.testing.assert_allclose(med, od, atol=1e-4)
    assert abs(mean[0, 3, 4] - od[0, 3, 4]) > 1.0


def test_flat_interpolation_between_before_and_after(rng):
    n = 11
    od = rng.uniform(0.1, 1.0, (n, 8, 9))
    f0, f1 = 1000.0 * rng.uniform(0.9, 1.1, (2, 8, 9))
    t = np.linspace(0, 1, n)[:, None, None]  # beam decays linearly during the scan
    proj = ((1 - t) * f0 + t * f1) * np.exp(-od)
    flats = np.stack([f0, f0, f1, f1])
    out, _ = normalize(proj, flats, flat_positions=[0, 0, n - 1, n - 1], zinger_threshold=None)
    np.testing.assert_allclose(out, od, atol=1e-5)
    plain, _ = normalize(proj, flats, zinger_threshold=None)
    assert np.abs(plain - od).max() > 0.02  # interpolation is what makes it exact


def test_nonpositive_saturated_and_nan_pixels_are_masked_and_counted(rng):
    proj, flat, od = _raw(rng, counts=1000.0)
    proj = proj.astype(np.float64)
    proj[0, 2, 2] = 10.0          # below dark -> transmission < 0
    proj[1, 5, 5] = np.nan
    proj[2, 7, 7] = 60000.0
    out, rep = normalize(proj, flat, np.full((16, 20), 50.0), saturation=50000.0,
                         zinger_threshold=None)
    assert (rep.n_nonpositive, rep.n_nonfinite, rep.n_saturated) == (1, 1, 1)
    assert rep.mask[0, 2, 2] == 1 and rep.mask[2, 7, 7] == 2 and rep.mask[1, 5, 5] == 3
    assert np.isfinite(out).all()
    # filled from neighbours: close to the local values, not clipped to an extreme
    for idx in ((0, 2, 2), (1, 5, 5), (2, 7, 7)):
        assert abs(out[idx] - od[idx]) < 1.0
    nan_out, _ = normalize(proj, flat, np.full((16, 20), 50.0), saturation=50000.0,
                           zinger_threshold=None, fill="nan")
    assert np.isnan(nan_out).sum() == 3


def test_integer_input_saturates_at_dtype_max(rng):
    proj, flat, _ = _raw(rng)
    raw = np.round(proj).astype(np.uint16)
    raw[0, 0, 0] = 65535
    _, rep = normalize(raw, flat, zinger_threshold=None)
    assert rep.n_saturated == 1


def test_zingers_found_and_removed(rng):
    from scipy.ndimage import gaussian_filter

    od = gaussian_filter(rng.uniform(0, 1.5, (4, 32, 32)), (0, 2, 2))
    proj, flat, _ = _raw(rng, n=4, shape=(32, 32), od=od, dark=0.0, counts=2e4)
    proj = rng.poisson(proj).astype(float)
    hits = [(0, 5, 6), (1, 20, 3), (3, 30, 30)]
    for h in hits:
        proj[h] *= 8.0  # a bright spot from a scattered photon burst
    out, rep = normalize(proj, flat, zinger_threshold=8.0)
    assert rep.n_zingers == len(hits)
    assert all(rep.mask[h] == 4 for h in hits)
    assert np.abs(out - od).max() < 0.1  # photon noise ~0.01, zingers would be ~2


def test_zinger_search_spares_the_particles_structure(rng):
    """On a simulated tilt series the spatial 3x3 test alone masked ~1.4 pixels of real
    structure per frame above the Mn L3 edge (pores, grain corners), each filled ~0.3 off
    in optical density; structure is still there one angle step later, a zinger is not."""
    from spectrotomo.simulate import particle, tilt_series

    ts = tilt_series(particle("small", seed=0), energies=[655.0], photons=2e4, seed=1)
    proj = ts["projections"].values[0].astype(np.float64)
    n, ny, nx = proj.shape
    hits = tuple(rng.integers(0, m, 60) for m in (n, ny, nx))
    proj[hits] *= 3.0
    out, rep = normalize(proj, ts["flats"].values[0], ts["darks"].values[0])
    injected = np.zeros(proj.shape, bool)
    injected[hits] = True
    flagged = rep.mask == 4
    assert (flagged & ~injected).sum() <= 3, (flagged & ~injected).sum()
    assert (flagged & injected).sum() >= 0.9 * injected.sum()
    clean = ~injected & (rep.mask == 0)
    assert np.abs(out - ts["true_od"].values[0])[clean].max() < 0.35  # photon noise only


def test_nan_frame_reported_and_left_nan(rng):
    proj, flat, _ = _raw(rng)
    proj[3] = np.nan
    out, rep = normalize(proj, flat, zinger_threshold=None)
    assert rep.nan_frames == [3] and np.isnan(out[3]).all() and np.isfinite(out[[0, 1, 2, 4, 5]]).all()
    assert rep.n_nonfinite == 16 * 20


def test_nan_flat_frame_dropped_and_counted(rng):
    proj, flat, od = _raw(rng, dark=0.0)
    flats = np.stack([flat, np.full_like(flat, np.nan), flat])
    out, rep = normalize(proj, flats, zinger_threshold=None)
    assert rep.n_flats_dropped == 1
    np.testing.assert_allclose(out, od, atol=1e-5)


@pytest.mark.parametrize("flats, match", [
    (None, "flats is missing"),
    (np.zeros((0, 16, 20)), "no frames"),
    (np.ones((2, 16, 21)), r"flats frames have shape \(16, 21\)"),
    (np.full((2, 16, 20), np.nan), "every frame of flats"),
    (np.zeros((2, 16, 20)), "flats must exceed darks"),
])
def test_bad_flats_raise_clear_errors(rng, flats, match):
    proj, _, _ = _raw(rng)
    with pytest.raises(ValidationError, match=match):
        normalize(proj, flats, np.full((16, 20), 50.0))


def test_dark_above_flat_raises_or_masks(rng):
    proj, flat, _ = _raw(rng, dark=0.0)
    with pytest.raises(ValidationError, match="flats must exceed darks"):
        normalize(proj, flat, flat + 1.0)
    dark = np.zeros_like(flat)
    dark[4, 4] = flat[4, 4] + 1.0  # one dead pixel: masked, counted
    out, rep = normalize(proj, flat, dark, zinger_threshold=None)
    assert rep.n_bad_reference == proj.shape[0] and (rep.mask[:, 4, 4] == 5).all()
    assert np.isfinite(out).all()


def test_bad_arguments():
    with pytest.raises(ValidationError, match="projections must be 3-D"):
        normalize(np.ones((4, 4)), np.ones((4, 4)))
    with pytest.raises(ValueError, match="flat_mode"):
        normalize(np.ones((2, 4, 4)), np.ones((4, 4)), flat_mode="max")
    with pytest.raises(ValidationError, match="flat_positions"):
        normalize(np.ones((2, 4, 4)), np.ones((3, 4, 4)), flat_positions=[0, 1])


def test_series_form_on_simulated_tilt_series(small_particle):
    from spectrotomo import provenance, validate_tilt_series
    from spectrotomo.recon.prep import normalize_series
    from spectrotomo.simulate import tilt_series

    ts = tilt_series(small_particle, energies=[640.0, 660.0], angles=[-30.0, 0.0, 30.0],
                     photons=2e4, seed=2)
    out = normalize_series(ts)
    validate_tilt_series(out)
    assert out["projections"].attrs["quantity"] == "optical_density"
    assert out["mask"].shape == out["projections"].shape
    err = out["projections"].values - ts["true_od"].values
    assert np.abs(err).mean() < 0.02  # photon noise only (2e4 photons)
    assert len(out.attrs["normalize_report"]) == 2
    assert provenance(out)[-1]["step"] == "recon.prep.normalize_series"


@pytest.mark.parametrize("shape", [(3, 17, 23), (2, 1, 9), (1, 8, 1), (4, 2, 2)])
def test_median3x3_equals_scipy_median_filter(shape):
    """The min/max network of the zinger search is scipy's 3x3 median exactly
    (random values, many ties, degenerate frame shapes, edges replicated)."""
    from scipy.ndimage import median_filter

    from spectrotomo.recon.prep._pixel_masks import _median3x3

    rng = np.random.default_rng(sum(shape))
    for x in (rng.normal(size=shape), rng.integers(0, 3, shape).astype(np.float32)):
        np.testing.assert_array_equal(_median3x3(np, x),
                                      median_filter(x, size=(1, 3, 3), mode="nearest"))


def test_fill_at_masked_pixels_equals_two_5x5_median_passes(rng):
    """Filling only the masked pixels gives what two whole-frame 5x5 median
    passes (the previous implementation, scipy) give, clusters and edges included."""
    from scipy.ndimage import median_filter

    from spectrotomo.recon.prep._pixel_masks import fill_masked as _fill_masked

    od = rng.normal(1.0, 0.1, (3, 12, 15)).astype(np.float32)
    invalid = rng.random(od.shape) < 0.08
    invalid[1, :3, :3] = True  # a corner cluster
    invalid[2] = False  # a frame with nothing masked
    sub, bad = od[:2], invalid[:2]
    filled = np.stack([np.where(bad[k], np.nanmedian(np.where(bad[k], np.nan, sub[k])), sub[k])
                       for k in range(2)])
    for _ in range(2):
        filled = np.where(bad, median_filter(filled, size=(1, 5, 5), mode="nearest"), sub)
    out = _fill_masked(np, od, invalid, "median")
    np.testing.assert_array_equal(out[:2], filled)
    np.testing.assert_array_equal(out[2], od[2])
