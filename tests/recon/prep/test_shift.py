"""Batched phase correlation: long stacks run in bounded batches with the same answer."""

import numpy as np

from spectrotomo.recon.prep import _shift
from spectrotomo.recon.prep._shift import fourier_shift, phase_correlate


def test_batches_give_the_unbatched_displacements(rng, monkeypatch):
    ref = rng.normal(size=(48, 48))
    truth = rng.uniform(-3, 3, (40, 2))
    moved = fourier_shift(np.repeat(ref[None], 40, axis=0), truth)
    whole = phase_correlate(ref, moved)
    refs = np.repeat(ref[None], 40, axis=0)  # one reference per image, split alongside
    monkeypatch.setattr(_shift, "_BATCH_BYTES", 3 * _shift._BYTES_PER_PIXEL * 48 * 48)
    np.testing.assert_allclose(phase_correlate(ref, moved), whole, atol=1e-9)
    np.testing.assert_allclose(phase_correlate(refs, moved), whole, atol=1e-9)
    assert np.abs(whole - truth).max() < 0.05


def test_threads_do_not_change_shifts_or_correlation_peaks(monkeypatch):
    """phase_correlate splits the stack over host threads (one whitening floor for the
    whole stack), fourier_shift splits its FFTs, warp resamples one image per thread:
    the one-thread result. Bit for bit but for phase_correlate's cross power: numpy's
    complex product takes SIMD or scalar paths by the alignment of each part (FMA or
    not: 1e-16 relative), so its peaks agree to rounding (on 128^2 frames, page-aligned
    parts, the demo's jitter was bit-identical)."""
    from spectrotomo.recon.prep import warp

    rng = np.random.default_rng(2)
    moved, ref = rng.normal(size=(40, 24, 28)), rng.normal(size=(40, 24, 28))
    shifts = rng.uniform(-3, 3, (40, 2))
    scales = rng.uniform(0.97, 1.03, 40)

    def run():
        return (phase_correlate(ref, moved, whiten=0.5, lowpass=0.25),
                phase_correlate(ref[0], moved, upsample=10, max_shift=5.0),
                fourier_shift(moved, shifts, workers=3), warp(moved, scales, shifts))

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = run()
    one = (*one[:2], fourier_shift(moved, shifts), one[3])
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    three = run()
    for a, b in zip(three[:2], one[:2]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    for a, b in zip(three[2:], one[2:]):
        np.testing.assert_array_equal(a, b)


def test_fourier_shift_by_chunks_into_out_gives_one_calls_values(rng):
    """``chunk_bytes`` / ``out``: chunks of frames with the whole stack's padding give
    the values of one call (in place too); an ``out`` of another shape is refused."""
    import pytest

    images = rng.random((7, 12, 10)).astype(np.float32)
    shifts = rng.uniform(-3, 3, (7, 2))
    whole = fourier_shift(images, shifts)
    chunked = fourier_shift(images, shifts, chunk_bytes=2 * images[0].nbytes)
    np.testing.assert_array_equal(chunked, whole)
    inplace = images.copy()
    assert fourier_shift(inplace, shifts, out=inplace, chunk_bytes=1) is inplace
    np.testing.assert_array_equal(inplace, whole)
    with pytest.raises(ValueError, match="'out' must have the images' shape"):
        fourier_shift(images, shifts, out=np.empty((7, 12, 9), np.float32))
