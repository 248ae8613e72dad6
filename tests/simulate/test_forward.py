import numpy as np
import pytest
from scipy import ndimage

from spectrotomo import validate_tilt_series
from spectrotomo.simulate import Calibration, Imperfections, attenuation, particle, project, tilt_series
from spectrotomo.simulate._forward import _misalign, _sigma, components
from spectrotomo.spectra import EDGES, builtin_references, cross_section

TINY = dict(shape=(32, 40, 40), radius_nm=240.0, n_grains=8, n_voids=2, n_cracks=1)
ANGLES = np.arange(-65, 66.0, 5.0)


@pytest.fixture(scope="module")
def truth():
    return particle("small", seed=2, **TINY)


def _od_from_counts(ds):
    dark = ds["darks"].astype(float).mean("dark")
    flat = ds["flats"].astype(float).mean("flat") - dark
    return -np.log((ds["projections"].astype(float) - dark) / flat)


def test_attenuation_is_density_times_cross_section(truth):
    energies = [640.0, 660.0]
    mu = attenuation(truth, energies)
    assert mu.dims == ("energy", "z", "y", "x") and mu.attrs["units"] == "1/nm"
    spectra = builtin_references(energies=energies, normalized=False)
    k = np.unravel_index(np.argmax(truth["occupancy"].values), truth["occupancy"].shape)
    d = truth["density"].values[(slice(None), *k)]
    f = truth["state_fraction"].values[(slice(None), *k)]
    el_index = {"Li": 0, "Mn": 1, "Co": 2, "Ni": 3, "O": 4}
    expected = d[0] * cross_section("Li", energies)
    for i, el in enumerate(spectra["state_element"].values):
        expected = expected + d[el_index[el]] * f[i] * spectra.values[i]
    np.testing.assert_allclose(mu.values[(slice(None), *k)], expected, rtol=1e-5)


def test_noise_free_series_is_beer_lambert_of_the_projected_attenuation(truth):
    energies = [635.0, 643.0, 665.0]
    ds = tilt_series(truth, energies=energies, angles=ANGLES, photons=None,
                     imperfections=Imperfections(center_offset_px=1.5), calibration=Calibration())
    validate_tilt_series(ds)
    assert ds.attrs["true_center"] == pytest.approx((40 - 1) / 2 + 1.5)
    mu = attenuation(truth, energies).values
    px = truth.attrs["pixel_size"]
    for e in range(3):
        ref = project(mu[e], ANGLES, center=ds.attrs["true_center"]) * px
        np.testing.assert_allclose(ds["true_od"].values[e], ref, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(_od_from_counts(ds).values, ds["true_od"].values, rtol=1e-4, atol=1e-5)


def test_soft_xray_optical_density_stays_below_four():
    energies = np.arange(525.0, 880.0, 0.25)
    for comp in ("lrtmo", "ncm811"):
        truth = particle("small", seed=0, composition=comp)
        names, cube = components(truth)
        n_c, nz, ny, nx = cube.shape
        proj = project(cube.reshape(n_c * nz, ny, nx), [-65.0, -30.0, 0.0, 30.0, 65.0])
        sigma = _sigma(names, energies)  # (components, energies)
        od = np.einsum("ce,acp->eap", sigma, proj.reshape(5, n_c, -1)) * truth.attrs["pixel_size"]
        assert 1.0 < od.max() <= 4.0, (comp, od.max())


def test_poisson_statistics_of_flats_and_of_a_uniform_field(truth):
    empty = truth.copy(deep=True)
    empty["density"][:] = 0.0
    ds = tilt_series(empty, energies=[640.0, 660.0], angles=np.arange(-65, 66.0), photons=2e4,
                     n_flats=20, seed=4)
    flats = ds["flats"].values.astype(float)
    ratio = flats.var(axis=1, ddof=1) / flats.mean(axis=1)
    assert ratio.mean() == pytest.approx(1.0, abs=0.03)
    proj = ds["projections"].values.astype(float)  # empty sample: transmission 1
    ratio = proj.var(axis=1, ddof=1) / proj.mean(axis=1)
    assert ratio.mean() == pytest.approx(1.0, abs=0.02)
    np.testing.assert_allclose(proj.mean(axis=1), flats.mean(axis=1), rtol=0.02)
    assert 1.9e4 < flats.max() < 2.1e4
    darks = ds["darks"].values.astype(float)
    assert darks.mean() == pytest.approx(100, rel=0.01) and darks.var() == pytest.approx(100, rel=0.1)


def test_deterministic_per_seed(truth):
    kw = dict(energies=[640.0], angles=ANGLES,
              imperfections=Imperfections(jitter_px=1.0, ring_strength=0.01))
    a, b, c = (tilt_series(truth, seed=s, **kw) for s in (7, 7, 8))
    for name in ("projections", "flats", "darks", "true_od", "true_shift"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert not np.array_equal(a["projections"].values, c["projections"].values)
    assert not np.array_equal(a["true_shift"].values, c["true_shift"].values)


def test_counts_do_not_depend_on_the_thread_count(truth, monkeypatch):
    """Each energy draws its noise from its own child generator: one thread or three
    give the same counts, and energies get independent noise."""
    kw = dict(energies=[640.0, 650.0, 660.0], angles=ANGLES[::4], seed=3)
    runs = []
    for threads in ("1", "3"):
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        runs.append(tilt_series(truth, **kw))
    for name in ("projections", "flats", "darks"):
        np.testing.assert_array_equal(runs[0][name].values, runs[1][name].values)
    darks = runs[0]["darks"].values.astype(float)
    assert not np.array_equal(darks[0], darks[1])  # same mean, independent draws


def _subpixel_shift(ref, img):
    from skimage.registration import phase_cross_correlation

    shift, _, _ = phase_cross_correlation(ref, img, upsample_factor=50, normalization=None)
    return -shift  # shift that moves ref onto img


def test_true_shifts_are_recovered_by_cross_correlation(truth):
    kw = dict(energies=[640.0, 660.0], angles=[-20.0, 0.0, 35.0], photons=None, seed=9)
    ideal = tilt_series(truth, **kw)
    moved = tilt_series(truth, imperfections=Imperfections(jitter_px=1.5, energy_shift_px=1.0), **kw)
    total = moved["true_shift"].values[None] + moved["true_energy_shift"].values[:, None]
    assert np.abs(total).max() > 0.5
    for e in range(2):
        for a in range(3):
            found = _subpixel_shift(ideal["true_od"].values[e, a], moved["true_od"].values[e, a])
            np.testing.assert_allclose(found, total[e, a], atol=0.1)


def test_true_scale_magnifies_about_the_detector_centre(truth):
    kw = dict(energies=[640.0, 660.0], angles=[0.0], photons=None, seed=3)
    ideal = tilt_series(truth, **kw)["true_od"].values
    ds = tilt_series(truth, imperfections=Imperfections(magnification=0.05), **kw)
    scale = ds["true_scale"].values
    assert np.all(np.abs(scale - 1) <= 0.05) and np.abs(scale - 1).max() > 0.005
    # integrated optical density scales with the magnified area
    np.testing.assert_allclose(ds["true_od"].values.sum(axis=(1, 2, 3)) / ideal.sum(axis=(1, 2, 3)),
                               scale**2, rtol=0.01)


def _blobs(yy, xx, centres, sigma):
    return sum(np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * sigma**2)) for y0, x0 in centres)


def test_misalignment_samples_the_moved_band_limited_image(rng):
    # Gaussian blobs (sigma 1.5 px: band-limited to ~1e-5 at Nyquist), moved and magnified
    # analytically; the bilinear resampling this replaced is off by ~5 % of the peak here.
    shape, sigma = (20, 24), 1.5
    centres = [(8.3, 9.1), (11.6, 14.7), (9.9, 6.2)]
    yy, xx = np.indices(shape, dtype=float)
    od = np.broadcast_to(_blobs(yy, xx, centres, sigma), (2, 3, *shape)).astype(np.float32)
    shifts, scales = rng.normal(size=(2, 3, 2)), np.array([1.02, 0.97])
    out = _misalign(od, shifts, scales)
    for e in range(2):
        for a in range(3):
            sy = 9.5 + (yy - 9.5 - shifts[e, a, 0]) / scales[e]
            sx = 11.5 + (xx - 11.5 - shifts[e, a, 1]) / scales[e]
            np.testing.assert_allclose(out[e, a], _blobs(sy, sx, centres, sigma), atol=2e-3)


def test_misalignment_blur_does_not_depend_on_the_subpixel_shift(rng):
    # Fine texture (near Nyquist) away from the field edges: half a pixel there and back
    # returns it, so no energy is blurred more than another by its sub-pixel shift.
    texture = ndimage.gaussian_filter(rng.normal(size=(48, 48)), 0.8)
    window = np.outer(*[np.hanning(48)] * 2) ** 2
    od = (texture * window)[None, None]
    half = np.full((1, 1, 2), 0.5)
    back = _misalign(_misalign(od, half, np.ones(1)), -half, np.ones(1))
    inner = (slice(None), slice(None), slice(12, 36), slice(12, 36))
    err = np.sqrt(np.mean((back - od)[inner] ** 2) / np.mean(od[inner] ** 2))
    assert err < 0.02, err
    np.testing.assert_allclose(_misalign(od, np.zeros((1, 1, 2)), np.ones(1)), od, atol=1e-12)


def test_center_offset_shifts_the_zero_degree_projection(truth):
    kw = dict(energies=[640.0], angles=[0.0], photons=None)
    a = tilt_series(truth, **kw)["true_od"].values
    b = tilt_series(truth, imperfections=Imperfections(center_offset_px=2.0), **kw)["true_od"].values
    np.testing.assert_allclose(b[..., 2:], a[..., :-2], atol=1e-6)


def test_ring_gain_appears_only_in_projections(truth):
    ds = tilt_series(truth, energies=[640.0], angles=ANGLES, photons=None,
                     imperfections=Imperfections(ring_strength=0.02))
    gain = ds["true_gain"].values
    assert 0.005 < np.log(gain).std() < 0.05
    residual = _od_from_counts(ds).values - ds["true_od"].values
    np.testing.assert_allclose(residual, np.broadcast_to(-np.log(gain), residual.shape), atol=1e-4)


def test_dual_energy_jump_with_xraydb_recovers_the_projected_element():
    truth = particle("small", seed=0, **TINY)
    only_mn = truth.copy(deep=True)
    only_mn["density"].loc[{"element": ["Li", "Co", "Ni", "O"]}] = 0.0
    pair = [EDGES["Mn"]["below"], EDGES["Mn"]["above"]]
    od = tilt_series(only_mn, energies=pair, angles=[0.0, 40.0], photons=None)["true_od"].values
    d_sigma = np.diff(cross_section("Mn", pair))[0]  # nm^2
    areal = (od[1] - od[0]) / d_sigma  # atoms per nm^2
    mn = truth["density"].sel(element="Mn").values
    expected = project(mn, [0.0, 40.0]) * truth.attrs["pixel_size"]
    big = expected > 0.2 * expected.max()
    np.testing.assert_allclose(areal[big], expected[big], rtol=0.01)


def test_components_cover_every_state(truth):
    names, cube = components(truth)
    assert names[0] == "Li" and len(names) == 12
    np.testing.assert_allclose(cube[1:4].sum(0), truth["density"].sel(element="Mn").values, rtol=1e-5,
                               atol=1e-6)


def test_bad_arguments_are_rejected(truth):
    with pytest.raises(ValueError, match="increasing"):
        tilt_series(truth, energies=[660.0, 640.0])
    with pytest.raises(ValueError, match="photons"):
        tilt_series(truth, energies=[640.0], photons=-1)
    with pytest.raises(ValueError, match="jitter_px"):
        Imperfections(jitter_px=-1)
    with pytest.raises(ValueError, match="magnification_per_ev"):
        tilt_series(truth, energies=[640.0, 660.0],
                    imperfections=Imperfections(magnification_per_ev=0.03))  # 60 % over 20 eV


def test_bright_beams_switch_to_uint32_without_wrapping(truth):
    ds = tilt_series(truth, energies=[640.0], angles=[0.0], photons=1e5, n_flats=2)
    assert ds["projections"].dtype == np.uint32 and ds["flats"].dtype == np.uint32
    assert ds["flats"].values.mean() > 7e4
    dim = tilt_series(truth, energies=[640.0], angles=[0.0], photons=1e3, n_flats=2)
    assert dim["projections"].dtype == np.uint16


def test_pixel_size_metadata_records_the_true_magnification_only_when_asked(truth):
    from spectrotomo import energy_pixel_sizes

    kw = dict(energies=[640.0, 650.0, 660.0], angles=[0.0, 10.0],
              imperfections=Imperfections(magnification=0.01), seed=4)
    plain = tilt_series(truth, **kw)
    with_meta = tilt_series(truth, pixel_size_metadata=True, **kw)
    assert energy_pixel_sizes(plain) is None  # default output unchanged
    validate_tilt_series(with_meta)
    px = truth.attrs["pixel_size"]
    np.testing.assert_allclose(energy_pixel_sizes(with_meta), px / with_meta["true_scale"].values,
                               rtol=1e-12)
    assert with_meta.attrs["pixel_size"] == px
    for name in ("projections", "flats", "true_od", "true_scale"):  # same draws, same data
        np.testing.assert_array_equal(with_meta[name].values, plain[name].values)


def test_calibration_offset_and_broadening_of_the_scan(truth):
    """The scan sees the model spectra moved up by the offset and broadened."""
    kw = dict(angles=[0.0], photons=None)
    energies = np.arange(638.0, 646.01, 0.5)
    exact = tilt_series(truth, energies=energies, calibration=Calibration(), **kw)
    moved = tilt_series(truth, energies=energies + 0.5, calibration=Calibration(0.5, 0.0), **kw)
    np.testing.assert_allclose(moved["true_od"].values, exact["true_od"].values, rtol=1e-5,
                               atol=1e-6)
    assert moved.attrs["true_energy_offset_ev"] == 0.5
    broad = tilt_series(truth, energies=energies, calibration=Calibration(0.0, 0.4), **kw)
    peak = lambda ds: ds["true_od"].values.max()  # noqa: E731  the Mn L3 white line
    assert 0.6 * peak(exact) < peak(broad) < 0.97 * peak(exact)
    default = tilt_series(truth, energies=energies, **kw)  # a realistic calibration by default
    assert default.attrs["true_energy_offset_ev"] > 0 and default.attrs["true_broadening_ev"] > 0
    with pytest.raises(ValueError, match="broadening_ev"):
        Calibration(0.0, -0.1)


def test_attenuation_volumes_by_slabs_equal_one_product(monkeypatch):
    """The dual series' attenuation volumes, made by slabs of z in threads, are the
    single tensordot bit for bit (each voxel's sum over components is the same)."""
    from spectrotomo.simulate._forward import _attenuation_volumes

    rng = np.random.default_rng(4)
    sigma = rng.random((12, 8)).astype(np.float32)
    cube = rng.random((12, 50, 20, 24)).astype(np.float32)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # 3 slabs of 16-17 planes
    got = _attenuation_volumes(sigma, cube)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.tensordot(sigma.T, cube, axes=1))


def test_slabs_and_angle_blocks_give_the_whole_volume_series(truth, monkeypatch):
    from spectrotomo.simulate import _forward

    kwargs = dict(energies=[640.0, 650.0], angles=ANGLES, imperfections=Imperfections(
        jitter_px=0.4, energy_shift_px=0.3, magnification=0.01), seed=5)
    whole = tilt_series(truth, **kwargs)
    monkeypatch.setattr(_forward, "_SLAB_VOXELS", 12 * 7 * 40 * 40)  # 7-plane slabs of 32
    monkeypatch.setattr(_forward, "_MISALIGN_VOXELS", 4 * 32 * 40)  # 4 angles a block of 27
    parts = tilt_series(truth, **kwargs)
    for name in ("true_od", "projections", "flats", "darks"):
        assert parts[name].dtype == whole[name].dtype, name
        np.testing.assert_array_equal(parts[name].values, whole[name].values, err_msg=name)


def test_counts_turn_uint32_when_one_energy_exceeds_uint16():
    from spectrotomo.simulate._detector import _Frames

    frames = _Frames({"projections": (2, 3), "flats": (2, 1)}, np.uint16)
    frames.put("projections", 0, np.array([1, 2, 65535], np.int64))
    frames.put("flats", 0, np.array([7], np.int64))
    frames.put("projections", 1, np.array([70000, 3, 4], np.int64))
    frames.put("flats", 1, np.array([8], np.int64))
    assert {a.dtype for a in frames.arrays.values()} == {np.dtype(np.uint32)}
    np.testing.assert_array_equal(frames.arrays["projections"], [[1, 2, 65535], [70000, 3, 4]])
    np.testing.assert_array_equal(frames.arrays["flats"], [[7], [8]])
