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
