"""The valence step's XANES scan by energy: the streamed normalisation and the in-place
registration equal the whole-scan calls; the binned estimate of a large scan keeps the
unbinned one's transform; the plan's valence row follows the scan, bounded."""

import numpy as np
import pytest
import xarray as xr

from spectrotomo.pipeline.steps import _xanes_stream as xs


def _scan(n_e=5, ny=64, nx=72, seed=0):
    """A raw XANES scan (energy, angle=1, y, x) of counts with flats and darks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:ny, :nx]
    blob = np.exp(-(((yy - ny / 2) / (ny / 4)) ** 2 + ((xx - nx / 2) / (nx / 4)) ** 2))
    od = blob[None] * np.linspace(0.5, 1.5, n_e)[:, None, None]
    counts = rng.poisson(20000 * np.exp(-od))[:, None].astype(np.uint16)
    counts[2, 0, 5, 7] = 0  # a dead pixel
    flats = rng.poisson(20000, (n_e, 3, ny, nx)).astype(np.uint16)
    darks = np.full((n_e, 2, ny, nx), 100, np.uint16)
    dims = ("energy", "angle", "y", "x")
    return xr.Dataset(
        {"projections": (dims, counts), "flats": (("energy", "flat", "y", "x"), flats),
         "darks": (("energy", "dark", "y", "x"), darks)},
        coords={"energy": ("energy", np.linspace(635.0, 660.0, n_e), {"units": "eV"}),
                "angle": ("angle", [0.0], {"units": "deg"}),
                "y": ("y", np.arange(ny) * 10.0, {"units": "nm"}),
                "x": ("x", np.arange(nx) * 10.0, {"units": "nm"})},
        attrs={"pixel_size": 10.0, "pixel_size_units": "nm"})


@pytest.mark.parametrize("threads", [1, 3])
def test_xanes_od_equals_normalize_series(threads):
    from spectrotomo.recon.prep import normalize_series

    ds = _scan()
    whole = normalize_series(ds, flat_mode="median")
    od, masked = xs.xanes_od(ds, flat_mode="median", threads=threads)
    np.testing.assert_array_equal(od, whole["projections"].values[:, 0])
    assert od.dtype == np.float32
    assert masked == sum(int(r["n_masked"]) for r in whole.attrs["normalize_report"]) >= 1


def test_xanes_od_names_missing_flats():
    from spectrotomo import ValidationError

    with pytest.raises(ValidationError, match="flats"):
        xs.xanes_od(_scan().drop_vars("flats"))


def _textured(ny, nx, seed=1):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:ny, :nx]
    disc = (((yy - ny / 2) / (0.35 * ny)) ** 2 + ((xx - nx / 2) / (0.3 * nx)) ** 2) < 1
    texture = ndimage.gaussian_filter(rng.standard_normal((ny, nx)), 3) * 4
    return ndimage.gaussian_filter(disc * (1.0 + texture), 1.5)


def _displaced(ny, nx, scales, shifts):
    from spectrotomo.recon.prep import warp

    ref = _textured(ny, nx)
    n = len(scales)
    return warp(np.repeat(ref[None], n, 0), np.asarray(scales), np.asarray(shifts)).astype(
        np.float32)


def test_register_xanes_unbinned_equals_register_energies():
    from spectrotomo.recon.prep import register_energies

    od = _displaced(96, 100, [1.0, 1.01, 0.995, 1.0], [[0, 0], [1.3, -0.7], [-2.1, 0.4],
                                                     [0.6, 1.8]])
    moved, expected = register_energies(od.copy(), reference=0, model="intensity")
    reg, b = xs.register_xanes(od, reference=0, model="intensity")
    assert b == 1
    np.testing.assert_array_equal(reg.shifts, expected.shifts)
    np.testing.assert_array_equal(reg.scales, expected.scales)
    np.testing.assert_array_equal(od, moved.astype(np.float32))  # warped in place


@pytest.mark.parametrize("n", [256, 257])  # 257: the binned frame crops a column and a row
def test_binned_registration_keeps_the_transform(monkeypatch, n):
    scales = [1.0, 1.012, 0.992, 1.005]
    shifts = [[0, 0], [2.3, -1.7], [-3.1, 0.9], [0.8, 2.6]]
    od = _displaced(n, n, scales, shifts)
    whole, b1 = xs.register_xanes(od.copy(), reference=0, model="intensity")
    monkeypatch.setattr(xs, "REGISTER_BYTES", 2**20)  # forces the binned estimate
    binned, b2 = xs.register_xanes(od.copy(), reference=0, model="intensity")
    assert (b1, b2) == (1, 2)
    np.testing.assert_allclose(binned.scales, whole.scales, atol=1e-3)
    np.testing.assert_allclose(binned.shifts, whole.shifts, atol=0.1)  # full-frame px


def test_full_resolution_shifts_map_the_binned_warp():
    """The binned transform, applied at full resolution through the mapped shift, samples
    the same points as the binned grid does (exact)."""
    ny, nx, b = 257, 130, 2
    s, d_b = np.array([1.02]), np.array([[0.7, -1.2]])
    d = xs._full_resolution_shifts(d_b, s, b, ny, nx)
    q_b = np.array([[3.0, 5.0], [100.0, 60.0]])  # binned pixels
    c_b = np.array([(ny // b - 1) / 2, (nx // b - 1) / 2])
    p_b = c_b + s[0] * (q_b - c_b) + d_b[0]
    q = b * q_b + (b - 1) / 2  # their centres in full pixels
    c = np.array([(ny - 1) / 2, (nx - 1) / 2])
    np.testing.assert_allclose(c + s[0] * (q - c) + d[0], b * p_b + (b - 1) / 2, atol=1e-12)


def test_register_bin_bounds_the_work_and_keeps_a_usable_field():
    for n_e, n in [(25, 256), (25, 2048), (150, 2048), (400, 4096)]:
        b = xs.register_bin(n_e, n, n)
        assert n // b >= 128
        assert b == 1 or n_e * (n // b) ** 2 * xs.REGISTER_WORK <= xs.REGISTER_BYTES
        assert b == 1 or n_e * (n // (b - 1)) ** 2 * xs.REGISTER_WORK > xs.REGISTER_BYTES
    assert xs.register_bin(25, 256, 256) == 1  # simulate:large: as before


def test_plan_valence_row_follows_the_scan_within_16_gib():
    from spectrotomo.pipeline._plan import plan_run

    def valence(n_xanes, n):
        rows = plan_run(n_energies=8, n_angles=131, ny=n, nx=n, chunk_rows=8, n_xanes=n_xanes)
        return next(r for r in rows if r.step == "valence").peak_bytes

    assert valence(25, 256) < valence(25, 2048) < valence(150, 2048) <= 16 * 2**30
    # the scan itself is held (float32): the row is at least that
    assert valence(150, 2048) > 150 * 2048**2 * 4
