"""The "opposite" and "vo" centre searches work by bounded batches (issue #19): the
same centre and scores as one batch, with work that does not grow with the scan."""

import numpy as np
import pytest

from spectrotomo.recon.prep import _center, _center_vo, _shift, find_center


def _mean(angles, rows=6, n=96, axis=50.3):
    """Mean optical density (angle, rows, n) of a ball with two voids, axis at ``axis``."""
    th = np.deg2rad(angles)[:, None, None]
    cols = np.arange(n, dtype=float)[None, None, :]
    rr = np.arange(rows, dtype=float)[None, :, None] - rows / 2.0
    od = np.zeros((angles.size, rows, n))
    for x, y, r, mu in ((0, 0, 25, 0.02), (8, -5, 5, -0.02), (-9, 6, 4, -0.02)):
        u = axis + x * np.cos(th) + y * np.sin(th)
        od += mu * 2 * np.sqrt(np.maximum(r * r - (cols - u) ** 2 - rr ** 2, 0))
    return od.astype(np.float32)


@pytest.mark.parametrize("method,angles", [
    ("opposite", np.linspace(0.0, 360.0, 72, endpoint=False)),
    ("vo", np.linspace(0.0, 180.0, 60, endpoint=False))])
def test_center_batches_give_the_one_batch_answer(monkeypatch, method, angles):
    mean = _mean(angles)
    one, one_scores = find_center(mean, angles, method=method, return_metric=True)
    assert abs(one - 50.3) < 0.3
    if method == "opposite":  # 1-image phase_correlate batches, 3-pair chunks
        monkeypatch.setattr(_shift, "_BATCH_BYTES", 80 * 6 * 96)
        monkeypatch.setattr(_center, "_CHUNK_BYTES", 3 * 2 * 6 * 96 * 4)
        assert _center._pair_chunk(6, 96) == 3
        # one call with the 1-image batches: the reference the chunks must equal
        one, one_scores = find_center(mean, angles, method=method, return_metric=True)
        monkeypatch.setattr(_center, "_CHUNK_BYTES", 2**40)
        whole = find_center(mean, angles, method=method)
        assert whole == one
        monkeypatch.setattr(_center, "_CHUNK_BYTES", 3 * 2 * 6 * 96 * 4)
    else:  # 3 images per batch: 16 candidates x 4 rows in 22 batches
        monkeypatch.setattr(_center_vo, "_VO_BATCH_BYTES", 3 * 128 * 60 * 96)
        assert _center_vo.vo_batch(60, 96) == 3
    got, scores = find_center(mean, angles, method=method, return_metric=True)
    assert got == one
    np.testing.assert_array_equal(scores.metric, one_scores.metric)
    np.testing.assert_array_equal(scores.x, one_scores.x)


def test_vo_batch_bounds_the_work_of_a_long_scan():
    """1500 angles x 2048 columns: one (candidate, row) image per batch (~384 MiB of
    work), where a chunk of 16 candidates x 4 rows held ~25 GiB."""
    assert _center_vo.vo_batch(1500, 2048) == 1
    assert _center_vo.vo_batch(180, 256) == 45
    assert _center._pair_chunk(2048, 2048) == 2  # 2048^2 frames: 2 pairs per chunk


def test_vo_does_not_copy_the_stack(monkeypatch):
    """'vo' takes its rows before sorting the angles (it sorted, i.e. copied, the whole
    mean first): its work is a fraction of a tall mean once the batches are small."""
    import tracemalloc

    angles = np.linspace(0.0, 180.0, 60, endpoint=False)[::-1].copy()  # needs the sort
    mean = _mean(angles, rows=400)
    monkeypatch.setattr(_center_vo, "_VO_BATCH_BYTES", 3 * 128 * 60 * 96)
    monkeypatch.setattr(_center, "_CHUNK_BYTES", mean.nbytes // 20)
    tracemalloc.start()
    got = find_center(mean, angles, method="vo")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert abs(got - 50.3) < 0.3
    assert peak < 0.5 * mean.nbytes, peak / mean.nbytes


def test_center_work_bytes_is_public_and_refuses_other_methods():
    from spectrotomo.recon.prep import center_work_bytes

    frame = 2048 ** 2 * 4
    # 2 pairs of 2048^2 frames copied, a one-image correlation batch (80 B/px)
    assert center_work_bytes(1500, 2048, 2048, "opposite") == 4 * frame + 20 * frame
    assert center_work_bytes(1500, 2048, 2048, "opposite") == \
        center_work_bytes(150, 2048, 2048, "opposite")
    # one (candidate, row) image (128 B x 1500 x 2048) and the 4 rows' sinogram copies
    assert center_work_bytes(1500, 2048, 2048, "vo") == 128 * 1500 * 2048 + 48 * 1500 * 2048
    # "halves": one candidate's 24 rows (100 B per slice pixel) where no more fit
    assert center_work_bytes(131, 2048, 2048, "halves") == 24 * 2048 ** 2 * 100
    # "sharpness": one candidate's 4 rows (48 B per slice pixel) where no more fit
    assert center_work_bytes(131, 2048, 2048, "sharpness") == 4 * 2048 ** 2 * 48
    with pytest.raises(ValueError, match="'consistency' or 'sharpness'"):
        center_work_bytes(10, 8, 8, "com")

