"""Within an energy the preprocess step works by chunks of frames or rows (issue #19):
the same values as the whole-stack calls, and work arrays that follow the chunk --
what the plan's preprocess row counts."""

import tracemalloc

import numpy as np
import pytest

from spectrotomo.pipeline import _plan_prep
from spectrotomo.pipeline.steps import _prep_stream as ps
from spectrotomo.recon.prep import fourier_shift, normalize, remove_rings, warp

_SHAPE = (40, 48, 64)  # angles, rows, columns


def _raw(seed=0):
    """Counts (angle, y, x) uint16 of a ball with stripes and zingers; flats; darks."""
    rng = np.random.default_rng(seed)
    n_a, ny, nx = _SHAPE
    yy, xx = np.mgrid[:ny, :nx]
    ball = np.clip(1.0 - ((yy - 24) ** 2 + (xx - 30) ** 2) / 18.0 ** 2, 0, None)
    gain = 1.0 + 0.02 * (rng.random(nx) < 0.1)
    counts = 2e4 * gain * np.exp(-ball[None] * np.linspace(0.5, 1.0, n_a)[:, None, None])
    counts = counts + 140 * rng.standard_normal(counts.shape) + 100
    counts[7, 10, 11] = 60000  # a zinger, and one at a chunk's edge frame
    counts[8, 30, 40] = 60000
    flats = 2e4 + 100 + 140 * rng.standard_normal((3, ny, nx))
    darks = np.full((2, ny, nx), 100.0)
    return counts.astype(np.uint16), flats.astype(np.uint16), darks.astype(np.uint16)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 8 frames (and 3 rows of 40 angles x 64 columns)."""
    monkeypatch.setattr(ps, "CHUNK_BYTES", 8 * _SHAPE[1] * _SHAPE[2] * 4)
    return 8


def test_normalize_by_chunks_equals_the_whole_stack(small_chunks):
    raw, flats, darks = _raw()
    assert len(ps.frame_parts(*raw.shape)) == 5
    od, masked = ps.normalize_energy(raw, flats, darks, flat_mode="median", rings="blind")
    whole, report = normalize(raw, flats, darks, flat_mode="median")
    ringed = remove_rings(whole, method="blind")
    np.testing.assert_allclose(od, ringed, rtol=0, atol=2e-6)  # pooled column sums: rounding
    assert masked == report.n_nonpositive + report.n_saturated + report.n_nonfinite + \
        report.n_zingers and masked >= 2
    od_none, _ = ps.normalize_energy(raw, flats, darks, flat_mode="median", rings="none")
    np.testing.assert_array_equal(od_none, whole)  # per frame, halo frames: exact


def test_raw_read_by_store_chunks_of_angles_once_each(small_chunks):
    """A raw energy stored in chunks of 12 angles is read block by block, each block once
    (chunks of frames and their halo frames straddle blocks), with the chunk-wise
    values."""
    raw, flats, darks = _raw()

    class Stored:  # a lazily read store variable: counts the reads
        dtype, shape = raw.dtype, raw.shape
        encoding = {"preferred_chunks": {"angle": 12}}
        reads = []

        def __getitem__(self, angles):
            self.reads.append((angles.start, angles.stop))
            return raw[angles]

    stored = Stored()
    od, masked = ps.normalize_energy(stored, flats, darks, flat_mode="median", rings="blind")
    assert stored.reads == [(0, 12), (12, 24), (24, 36), (36, 48)]
    expected, n = ps.normalize_energy(raw, flats, darks, flat_mode="median", rings="blind")
    np.testing.assert_array_equal(od, expected)
    assert masked == n
    Stored.encoding = {"preferred_chunks": {"angle": 40}}  # one block: read chunk by chunk
    assert type(ps._AngleBlocks.of(Stored())) is Stored


@pytest.mark.parametrize("method", ["offset", "sorting"])
def test_row_local_ring_methods_by_rows_are_exact(method):
    od = np.random.default_rng(2).random(_SHAPE, dtype=np.float32)
    out = od.copy()
    remove_rings(out, method=method, rows=5, out=out)
    np.testing.assert_array_equal(out, remove_rings(od, method=method))


def test_warp_and_unjitter_by_chunks_equal_one_call(small_chunks):
    rng = np.random.default_rng(3)
    od = rng.random(_SHAPE, dtype=np.float32)
    whole = warp(od[None], np.array([1.01]), np.array([[0.4, -0.7]]))[0].astype(np.float32)
    np.testing.assert_allclose(ps.warp_energy(od.copy(), 1.01, [0.4, -0.7]), whole,
                               rtol=0, atol=1e-6)
    shifts = rng.normal(0, 1.5, (_SHAPE[0], 2))
    np.testing.assert_array_equal(ps.unjitter_energy(od.copy(), shifts),
                                  fourier_shift(od, -shifts).astype(np.float32))


def _traced(fn, *args, **kwargs) -> int:
    tracemalloc.start()
    try:
        fn(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_work_arrays_follow_the_chunk_not_the_stack(small_chunks):
    """Five chunks: the whole-stack normalize's work arrays are ~10x the stack; by
    chunks the peak is the stack's od plus a chunk's work (< 6 stacks here; the
    normalisation under the plan's per-energy bytes). In place, the warp and the shift hold < 2 stacks."""
    raw, flats, darks = _raw()
    stack = raw.size * 4
    ps.normalize_energy(raw, flats, darks, flat_mode="median", rings="blind")  # imports, caches
    whole = _traced(normalize, raw, flats, darks, flat_mode="median")
    chunked = _traced(ps.normalize_energy, raw, flats, darks, flat_mode="median",
                      rings="blind")
    normalized = _traced(ps.normalize_energy, raw, flats, darks, flat_mode="median",
                         rings="none")
    per_energy, _, _ = _plan_prep._prep_bytes(1, *_SHAPE)
    assert whole > 8 * stack and chunked < 6 * stack, (whole / stack, chunked / stack)
    # the plan's normalize term (ring removal on 9 rows of this tiny stack is mostly its
    # fixed work: 4.4 stacks, within the 6 above)
    assert normalized <= per_energy, (normalized, per_energy)
    od = np.random.default_rng(4).random(_SHAPE, dtype=np.float32)
    ps.warp_energy(od.copy(), 1.01, [0.3, 0.2]), ps.unjitter_energy(od.copy(), np.ones((40, 2)))
    assert _traced(ps.warp_energy, od, 1.01, [0.3, 0.2]) < 2 * stack
    assert _traced(ps.unjitter_energy, od, np.full((_SHAPE[0], 2), 0.5)) < 2 * stack


def test_alignment_bins_only_large_fields():
    assert ps.align_bin(131, 128, 128) == 1 and ps.align_bin(131, 256, 256) == 1  # demo, large
    assert ps.align_bin(131, 1024, 1024) == 2 and ps.align_bin(131, 2048, 2048) == 4
    for n in (512, 1024, 2048):
        b = ps.align_bin(131, n, n)
        assert ps.align_bytes(131, n // b, n // b) <= ps.ALIGN_BYTES


def test_binned_alignment_recovers_the_jitter(monkeypatch):
    """Forced to bin by 2, the jitter of the small particle (1 px RMS) comes back to
    well under a fine pixel, in fine pixels."""
    from spectrotomo.simulate import Imperfections, particle, tilt_series
    from spectrotomo.spectra import EDGES

    monkeypatch.setattr(ps, "ALIGN_BYTES", 0)
    monkeypatch.setattr(ps, "_ALIGN_MIN_PX", 32)
    angles = np.arange(-65.0, 66.0, 2.0)
    ts = tilt_series(particle("small", seed=0), energies=[EDGES["Mn"]["above"]], angles=angles,
                     imperfections=Imperfections(jitter_px=1.0, center_offset_px=1.7),
                     photons=2e4, seed=1)
    od, _ = normalize(ts.projections.values[0], ts.flats.values[0], ts.darks.values[0])
    shifts, b = ps.align_jitter(od, angles, ts.attrs["true_center"], 4)
    assert b == 2
    d = shifts - ts.true_shift.values
    d[:, 0] -= d[:, 0].mean()
    theta = np.deg2rad(angles)
    basis = np.stack([np.ones_like(theta), np.cos(theta), np.sin(theta)], axis=1)
    d[:, 1] -= basis @ np.linalg.lstsq(basis, d[:, 1], rcond=None)[0]
    rms = np.sqrt((d ** 2).mean(axis=0))
    assert rms.max() < 0.15, rms  # measured 0.03 / 0.01 px (dy / dx)


def test_mean_over_energies_by_slabs_of_rows_is_the_stacks_sum(tmp_path, monkeypatch):
    """The mean (pass 2) is summed from the store by slabs of rows, two in flight: the
    same float32 values as the sum of whole energy stacks in energy order."""
    from spectrotomo.pipeline.steps import preprocess

    n_e, (n_a, ny, nx) = 3, _SHAPE
    coords = {"energy": ("energy", [640.0, 650.0, 660.0], {"units": "eV"}),
              "angle": ("angle", np.linspace(0, 180, n_a), {"units": "deg"}),
              "y": ("y", np.arange(ny) * 20.0, {"units": "nm"}),
              "x": ("x", np.arange(nx) * 20.0, {"units": "nm"})}
    writer = preprocess._OdWriter(tmp_path / "s.zarr", (n_e, n_a, ny, nx), (1, n_a, 4, nx),
                                  coords, {"units": "1"})
    od = np.random.default_rng(1).random((n_e, n_a, ny, nx), dtype=np.float32)
    for e in range(n_e):
        writer.write(e, od[e])
    monkeypatch.setattr(ps, "FIXED_CHUNK_BYTES", 2 * n_a * 4 * nx * 4)  # slabs of 8 rows
    expected = od[0].copy()
    for e in range(1, n_e):
        expected += od[e]
    expected /= np.float32(n_e)
    np.testing.assert_array_equal(preprocess._mean_od(writer, n_e, 2), expected)
