"""Centre searches that score trial axes by reconstructing rows for each of them
("halves", "consistency", "sharpness"): the candidates in batches of bounded work.

Every candidate's FBP slices and score are its own, so batches change nothing but the
memory: one batch's (candidate, row) slices, not the whole search range's (which grew
as the cube of the columns: ~n/4 candidates x rows x n^2 slices).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CANDIDATE_BATCH_BYTES", "candidate_batch", "in_candidate_batches"]

#: work memory of one batch of (candidate, row) slices; one candidate's rows at least
CANDIDATE_BATCH_BYTES = 512 * 2**20


def candidate_batch(n_rows: int, n_cols: int, bytes_per_px: float) -> int:
    """Candidates per batch of ``n_rows`` rows of ``n_cols`` columns, at ``bytes_per_px``
    work bytes per pixel of each (candidate, row) slice: as many as fit
    :data:`CANDIDATE_BATCH_BYTES`, at least one."""
    return max(1, int(CANDIDATE_BATCH_BYTES // (n_rows * n_cols * n_cols * bytes_per_px)))


def in_candidate_batches(score, candidates: np.ndarray, n_rows: int, n_cols: int,
                         bytes_per_px: float):
    """``score(batch)`` over ``candidates`` (k,) in batches of :func:`candidate_batch`,
    each of its results (arrays of the batch's candidates along axis 0, or a tuple of
    them) concatenated in candidate order."""
    per = candidate_batch(n_rows, n_cols, bytes_per_px)
    parts = [score(candidates[i:i + per]) for i in range(0, candidates.size, per)]
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(p) for p in zip(*parts))
    return np.concatenate(parts)
