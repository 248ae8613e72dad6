"""The same preprocessing on cupy (GPU, skipped without one) and under dask."""

import numpy as np
import pytest

from spectrotomo.recon.prep import normalize, remove_rings
from spectrotomo.recon.prep._shift import fourier_shift, phase_correlate


def _stack(rng):
    from scipy.ndimage import gaussian_filter

    od = gaussian_filter(rng.uniform(0, 1, (12, 6, 40)), (0, 1, 2))
    return od - np.log(1 + 0.03 * rng.standard_normal(40))[None, None]


def test_remove_rings_chunked_over_rows_with_dask(rng):
    da = pytest.importorskip("dask.array")
    stack = _stack(rng).astype(np.float32)
    lazy = da.from_array(stack, chunks=(-1, 2, -1))  # every chunk holds all angles
    for kwargs in ({"method": "offset"}, {"method": "blind", "columns": False}):
        # (the default pools one offset per column over all rows: chunks must hold them all)
        out = lazy.map_blocks(remove_rings, dtype=np.float32, **kwargs).compute()
        np.testing.assert_allclose(out, remove_rings(stack, **kwargs), atol=1e-6)


def test_normalize_chunked_over_angles_with_dask(rng):
    da = pytest.importorskip("dask.array")
    n = 12
    od = rng.uniform(0.1, 1.0, (n, 6, 8))
    f0, f1 = 1000 * rng.uniform(0.9, 1.1, (2, 6, 8))
    t = np.linspace(0, 1, n)[:, None, None]
    proj = ((1 - t) * f0 + t * f1) * np.exp(-od)
    flats = np.stack([f0, f1])

    def block(p, block_info=None):
        start = block_info[0]["array-location"][0][0]
        pos = np.arange(start, start + p.shape[0])
        return normalize(p, flats, flat_positions=[0, n - 1], projection_positions=pos,
                         zinger_threshold=None)[0]

    out = da.from_array(proj, chunks=(4, -1, -1)).map_blocks(block, dtype=np.float32).compute()
    np.testing.assert_allclose(out, od, atol=1e-5)


@pytest.mark.gpu
def test_cupy_matches_numpy(rng):
    import cupy

    stack = _stack(rng)
    for method in ("blind", "offset", "sorting"):
        gpu = remove_rings(cupy.asarray(stack), method=method)
        np.testing.assert_allclose(gpu.get(), remove_rings(stack, method=method), atol=1e-5)
    raw = 1000 * np.exp(-stack)
    od, rep = normalize(cupy.asarray(raw), cupy.full((6, 40), 1000.0))
    np.testing.assert_allclose(od.get(), stack, atol=1e-4)
    # shifts on blobs inside the field (the random stack's edges hold the correlation
    # peak at zero, on numpy too: seen on the device, 2026-12-04): parity, then accuracy
    blobs = _blobs(rng)
    d = np.array([[0.3, -1.2]] * 12)
    moved = fourier_shift(cupy.asarray(blobs), d)
    np.testing.assert_allclose(moved.get(), fourier_shift(blobs, d), atol=1e-12)
    found = phase_correlate(cupy.asarray(blobs), moved)
    np.testing.assert_allclose(found, phase_correlate(blobs, moved.get()), atol=1e-9)
    np.testing.assert_allclose(found, d, atol=0.2)


def _blobs(rng, n=12):
    """Two Gaussian blobs per image, inside a 24 x 40 field."""
    yy, xx = np.mgrid[:24, :40]
    c = rng.uniform([8, 12], [16, 28], (n, 2))[:, :, None, None]
    return (np.exp(-((yy - c[:, 0]) ** 2 + (xx - c[:, 1]) ** 2) / 18.0)
            + 0.5 * np.exp(-((yy - c[:, 0] - 3) ** 2 + (xx - c[:, 1] + 5) ** 2) / 4.5))


def test_phase_correlate_finds_subpixel_shifts_of_blobs(rng):
    blobs = _blobs(rng)
    d = np.array([[0.3, -1.2]] * 12)
    np.testing.assert_allclose(phase_correlate(blobs, fourier_shift(blobs, d)), d, atol=0.2)
