"""Vo, Atwood & Drakopoulos (Opt. Express 22, 19078, 2014) centre metric for 180 deg scans
without opposite projections: the 180-360 half is the mirrored sinogram shifted for each
candidate centre; the right one leaves the least spectral energy outside the double wedge."""

from __future__ import annotations

import numpy as np

from ..._backend import to_numpy
from ._shift import fourier_shift, pad_width

def _vo_mask(n_rows: int, n_cols: int, radius: float, drop: int) -> np.ndarray:
    """Vo 2014 double-wedge complement mask on the fftshifted (2A, n) spectrum."""
    du = 1.0 / n_cols
    dv = (n_rows - 1.0) / (n_rows * 2.0 * np.pi)
    cen_row = int(np.ceil(n_rows / 2.0) - 1)
    cen_col = int(np.ceil(n_cols / 2.0) - 1)
    drop = min(drop, int(np.ceil(0.05 * n_rows)))
    pos = np.ceil(((np.arange(n_rows) - cen_row) * dv / radius) / du).astype(int)
    cols = np.arange(n_cols)[None, :]
    lo = np.clip(np.minimum(-pos + cen_col, pos + cen_col), 0, n_cols - 1)[:, None]
    hi = np.clip(np.maximum(-pos + cen_col, pos + cen_col), 0, n_cols - 1)[:, None]
    mask = ((cols >= lo) & (cols <= hi)).astype(np.float32)
    mask[cen_row - drop:cen_row + drop + 1] = 0.0
    mask[:, max(cen_col - 1, 0):cen_col + 2] = 0.0
    return mask


#: Work bytes of the metric per pixel of one (candidate, row) sinogram half (A x n):
#: its shifted mirror (padded, float32 and complex64 spectrum), the 2A x n sinogram and
#: its complex64 spectrum, fftshift copy, modulus, masked product (tracemalloc: 126 at
#: 360 x 256 and 180 x 512 with the 64 images of a chunk in one batch), rounded up
_VO_BYTES_PER_PX = 128
#: work bytes per batch of (candidate, row) images: a chunk of 16 candidates x 4 rows
#: held 64 images at once (710 MiB at 360 x 256, 25 GiB at 1500 x 2048)
_VO_BATCH_BYTES = 256 * 2**20


def vo_batch(n_angles: int, n_cols: int) -> int:
    """(candidate, row) images per batch of the Vo metric on (n_angles, n_cols) halves."""
    return max(1, _VO_BATCH_BYTES // (_VO_BYTES_PER_PX * int(n_angles) * int(n_cols)))


def _vo_metric(xp, sino, candidates, ratio=0.5, drop=20, chunk=16):
    """Metric per candidate; sino (n_rows_used, A, n) over [0, 180).

    Chunks of ``chunk`` candidates share the shift's edge padding (as they always
    did); within a chunk the (candidate, row) images run in batches of
    :func:`vo_batch` with that padding, so the values are those of the whole chunk
    at once (every step is per image) and the work is bounded whatever A and n.
    """
    r, a, n = sino.shape
    mirrored = sino[:, :, ::-1]
    mask = xp.asarray(_vo_mask(2 * a, n, 0.5 * ratio * n, drop))
    per = vo_batch(a, n)
    out = []
    for start in range(0, candidates.size, chunk):  # chunks: one padding each
        c = candidates[start:start + chunk]
        d = 2.0 * c - (n - 1)  # displacement of the mirrored half for centre c
        shifts = np.repeat(np.stack([np.zeros_like(d), d], 1), r, axis=0)  # image k: row k % r
        pad = pad_width(shifts)
        metric = []
        for lo in range(0, shifts.shape[0], per):  # batches of images bound the work
            rows = np.arange(lo, min(lo + per, shifts.shape[0])) % r
            shifted = fourier_shift(mirrored[rows], shifts[lo:lo + rows.size], pad=pad)
            full = xp.concatenate([sino[rows], shifted], axis=1)
            del shifted
            spec = xp.abs(xp.fft.fftshift(xp.fft.fft2(full), axes=(-2, -1)))
            del full
            metric.append((spec * mask).mean(axis=(-2, -1)))
            del spec
        out.append(to_numpy(xp.concatenate(metric).reshape(c.size, r).mean(axis=1)))
    return np.concatenate(out)


def refine_minimum(candidates, metric):
    k = int(np.argmin(metric))
    if 0 < k < metric.size - 1:
        a, b, c = metric[k - 1], metric[k], metric[k + 1]
        den = a - 2 * b + c
        if den > 0:
            step = candidates[k + 1] - candidates[k]
            return float(candidates[k] + step * np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    return float(candidates[k])


def center_vo(xp, projections, angles, search, rows, step):
    order = np.argsort(angles)
    # the rows first, then the angle order: sorting the whole stack copied it (the mean)
    sino = xp.moveaxis(projections[:, rows, :][order], 1, 0)  # (rows, A, n)
    sino = sino.astype(np.float32)
    coarse = np.arange(search[0], search[1] + 0.5, 1.0)
    m_coarse = _vo_metric(xp, sino, coarse)
    c0 = coarse[int(np.argmin(m_coarse))]
    fine = np.arange(c0 - 1.5, c0 + 1.5 + step / 2, step)
    m_fine = _vo_metric(xp, sino, fine)
    return refine_minimum(fine, m_fine), (np.concatenate([coarse, fine]),
                                           np.concatenate([m_coarse, m_fine]))
