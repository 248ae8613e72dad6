"""Vo, Atwood & Drakopoulos (Opt. Express 22, 19078, 2014) centre metric for 180 deg scans
without opposite projections: the 180-360 half is the mirrored sinogram shifted for each
candidate centre; the right one leaves the least spectral energy outside the double wedge."""

from __future__ import annotations

import numpy as np

from ..._backend import to_numpy
from ._shift import fourier_shift

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


def _vo_metric(xp, sino, candidates, ratio=0.5, drop=20, chunk=16):
    """Metric per candidate; sino (n_rows_used, A, n) over [0, 180)."""
    r, a, n = sino.shape
    mirrored = sino[:, :, ::-1]
    mask = xp.asarray(_vo_mask(2 * a, n, 0.5 * ratio * n, drop))
    out = []
    for start in range(0, candidates.size, chunk):  # chunks bound memory
        c = candidates[start:start + chunk]
        d = 2.0 * c - (n - 1)  # displacement of the mirrored half for centre c
        shifted = fourier_shift(xp.broadcast_to(mirrored[None], (c.size, r, a, n)).reshape(-1, a, n),
                                np.repeat(np.stack([np.zeros_like(d), d], 1), r, axis=0))
        full = xp.concatenate([xp.broadcast_to(sino[None], (c.size, r, a, n)).reshape(-1, a, n),
                               shifted], axis=1)
        spec = xp.abs(xp.fft.fftshift(xp.fft.fft2(full), axes=(-2, -1)))
        out.append(to_numpy((spec * mask).mean(axis=(-2, -1)).reshape(c.size, r).mean(axis=1)))
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
    sino = xp.moveaxis(projections[order][:, rows, :], 1, 0)  # (rows, A, n)
    sino = sino.astype(np.float32)
    coarse = np.arange(search[0], search[1] + 0.5, 1.0)
    m_coarse = _vo_metric(xp, sino, coarse)
    c0 = coarse[int(np.argmin(m_coarse))]
    fine = np.arange(c0 - 1.5, c0 + 1.5 + step / 2, step)
    m_fine = _vo_metric(xp, sino, fine)
    return refine_minimum(fine, m_fine), (np.concatenate([coarse, fine]),
                                           np.concatenate([m_coarse, m_fine]))
