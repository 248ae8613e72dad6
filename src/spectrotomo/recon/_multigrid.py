"""Grid helpers of the joint solver (:mod:`._joint`): the 2x coarse-to-fine pyramid
(binning of the data, linear upsampling of a solution) and the host's row blocks."""

from __future__ import annotations

import numpy as np

__all__ = ["bin2", "upsample", "levels", "row_blocks"]

_MIN_COARSE = 16  # columns of the coarsest level
_BLOCK_BYTES = 1 << 20  # one block of every channel's rows (host): fits a core's L2


def row_blocks(xp, shape):
    """Slices of rows (axis 1 of (C, R, ny, nx)) of ~_BLOCK_BYTES each on the host;
    one slice of all rows on a GPU (large kernels are what it needs)."""
    C, R, ny, nx = shape
    rows = R if xp is not np else max(1, _BLOCK_BYTES // (4 * C * ny * nx))
    return [slice(r, min(r + rows, R)) for r in range(0, R, rows)]


def bin2(od):
    """Average 2 x 2 (rows, columns) of od (C, A, R, n); odd ends are dropped."""
    R, n = od.shape[2:]
    o = od[..., :n // 2 * 2]
    if R > 1:
        o = o[:, :, :R // 2 * 2]
        o = 0.5 * (o[:, :, 0::2] + o[:, :, 1::2])
    return 0.5 * (o[..., 0::2] + o[..., 1::2])


def _up2(xp, y, axis: int, n_out: int):
    """Linear interpolation by 2 along ``axis`` (voxel centres at (2i + 0.5) / 2),
    edge-clamped, cut or extended (last value) to ``n_out``. Written in place
    along the axis (no moveaxis copies: this ran 13 % of a demo solve)."""
    m = y.shape[axis]

    def at(start=None, stop=None, step=None):
        idx = [slice(None)] * y.ndim
        idx[axis] = slice(start, stop, step)
        return tuple(idx)

    shape = list(y.shape)
    shape[axis] = max(2 * m, n_out)
    out = xp.empty(shape, dtype=y.dtype)
    even, odd = out[at(0, 2 * m, 2)], out[at(1, 2 * m, 2)]
    quarter = y * y.dtype.type(0.25)
    xp.multiply(quarter, 3, out=even)
    odd[...] = even
    even[at(1)] += quarter[at(None, -1)]  # 0.75 y + 0.25 previous
    even[at(0, 1)] += quarter[at(0, 1)]
    odd[at(None, -1)] += quarter[at(1)]  # 0.75 y + 0.25 next
    odd[at(-1)] += quarter[at(-1)]
    out[at(2 * m)] = out[at(2 * m - 1, 2 * m)]
    return out[at(0, n_out)]


def upsample(xp, y, shape):
    """Coarse (C, R', n', n') values per coarse voxel -> fine (C, R, n, n) per fine voxel."""
    x = y * xp.float32(0.5)  # a coarse voxel is twice as long: half the value per fine voxel
    if shape[1] > 1:
        x = _up2(xp, x, 1, shape[1])
    x = _up2(xp, _up2(xp, x, 2, shape[2]), 3, shape[3])
    return xp.ascontiguousarray(x, dtype=xp.float32)


def levels(n_cols: int) -> int:
    return max(0, int(np.floor(np.log2(n_cols / _MIN_COARSE))))
