"""Work memory of :func:`~spectrotomo.recon.prep.find_center`'s bounded searches.

What a memory plan needs to know of the centre search beside the projections it is
given: "opposite" correlates chunks of pairs, "vo" batches of (candidate, row)
images, so neither grows with the scan; "halves" batches of candidates, whose floor
is one candidate's rows (measured: gpu_bench/center_memory_bench.py).
"""

from __future__ import annotations

__all__ = ["center_work_bytes"]

_F4 = 4


def center_work_bytes(n_angles: int, n_rows: int, n_cols: int, method: str) -> float:
    """Peak work memory of ``find_center(..., method=method)`` beside its input, bytes.

    Parameters
    ----------
    n_angles, n_rows, n_cols : int
        Shape of the projections (optical density, float32).
    method : {"opposite", "vo", "halves", "consistency", "sharpness"}
        "opposite": one chunk of pairs (both frames copied) and ``phase_correlate``'s
        batch of it (80 B per pixel of each image); "vo": its batch of (candidate, row)
        images (~256 MiB) and the 4 rows' sinogram with its float32 and mirrored copies;
        "halves": its batch of candidates (:func:`._center_halves.halves_work_bytes`,
        the default 24 rows or ``n_rows`` if fewer): one candidate's rows at least,
        9.4 GiB at 2048 columns; "consistency" / "sharpness": their batch of candidates
        on the default 4 rows (512 MiB, one candidate's rows at least: 0.75 GiB at 2048
        columns).

    Returns
    -------
    float
        Bytes (tracemalloc: "opposite" 288 MiB at 256 x 2048 frames for 72 and 360
        angles alike; "vo" ~205 MiB at 180-360 angles x 256-512 columns; "halves" see
        RESULTS.prep.md).
    """
    from ._candidates import candidate_batch
    from ._center import _DEFAULT_ROWS, _LIMITED_BYTES_PER_PX, _ROWS, _pair_chunk
    from ._center_halves import halves_work_bytes
    from ._center_vo import _VO_BATCH_BYTES, _VO_BYTES_PER_PX, vo_batch
    from ._shift import _BYTES_PER_PIXEL, correlate_batch

    frame = n_rows * n_cols
    if method == "opposite":
        pairs = min(_pair_chunk(n_rows, n_cols), max(1, n_angles // 2))
        batch = min(correlate_batch(n_rows, n_cols), pairs)
        return 2 * pairs * frame * _F4 + batch * _BYTES_PER_PIXEL * frame
    if method == "vo":
        images = vo_batch(n_angles, n_cols) * _VO_BYTES_PER_PX * n_angles * n_cols
        return max(_VO_BATCH_BYTES, images) + 3 * 4 * n_angles * n_cols * _F4
    if method == "halves":
        return halves_work_bytes(n_cols, min(_ROWS["halves"], n_rows))
    if method in ("consistency", "sharpness"):
        rows = min(_ROWS.get(method, _DEFAULT_ROWS), n_rows)
        per = candidate_batch(rows, n_cols, _LIMITED_BYTES_PER_PX)
        return per * rows * n_cols * n_cols * _LIMITED_BYTES_PER_PX
    raise ValueError("center_work_bytes: method must be 'opposite', 'vo', 'halves', "
                     f"'consistency' or 'sharpness'; got {method!r}")
