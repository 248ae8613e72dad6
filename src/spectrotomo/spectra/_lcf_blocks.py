"""Block-wise exact fitting of many spectra on numpy or cupy arrays.

Spectra are processed in blocks; each block is read from memory once, in
L2-sized chunks (squared norm, which streams the chunk into cache, then one
matrix product with the references from cache); the exact solve
(:mod:`._nnls_batch`), residuals and masks of the block then work on
(k + 1) x block numbers in cache. Blocks may run in parallel threads (numpy
ufuncs and BLAS release the GIL).
"""

from __future__ import annotations

import numpy as np

from ._nnls_batch import solve_block

#: Spectra per block on the CPU: the block's sufficient statistics and its
#: solve's temporaries ((k + 1) x block floats each) stay in L2 cache.
DEFAULT_BLOCK = 32768
#: Spectra per block on a GPU (one kernel launch per operation per block).
DEFAULT_GPU_BLOCK = 2**21
#: Values (spectra x energies) per read of the spectra on the CPU: the chunk
#: stays in L2 between its two reads (squared norm, then matrix product) and
#: below the size at which OpenBLAS switches to threads (measured 5-10x
#: slower on a loaded 2-core machine at 8192 x 100 float32).
_READ_VALUES = 2**17


def _squared_norms(part, xp, out):
    """``out[i] = part[i] . part[i]``. numpy's vecdot loops over rows, which
    costs per row: for short spectra einsum's fused loop is 1.5x faster
    (measured 1.9e7 vs 2.9e7 spectra/s at 30 energies; vecdot wins at 100)."""
    if xp is not np:
        out[...] = xp.sum(part * part, axis=1)
    elif part.shape[1] < 64 or not hasattr(np, "vecdot"):  # vecdot: numpy >= 2
        np.einsum("ij,ij->i", part, part, out=out)
    else:
        np.vecdot(part, part, out=out)


def _statistics(chunk, op_t, n_bg, xp, sub, energy_major=False):
    """Sufficient statistics of a block of spectra (B, n), or (n, B) when
    ``energy_major``: ``b = R s`` (k + n_bg, B) and ``||s||^2`` (B,),
    reading the spectra in L2-sized sub-chunks (each read from memory once,
    then once more from cache)."""
    n_spec = chunk.shape[1] if energy_major else chunk.shape[0]
    rows = op_t.shape[1]
    ss = xp.empty(n_spec, dtype=op_t.dtype)
    if energy_major:
        bt = xp.empty((rows, n_spec), dtype=op_t.dtype)
        op = op_t.T
        # the chunk's rows lie a whole volume apart: copied first into one
        # contiguous buffer (in cache), the product is 1.7x faster than
        # OpenBLAS packing the strided rows (106 vs 183 ns per spectrum)
        buf = xp.empty((chunk.shape[0], min(sub, n_spec)), dtype=op_t.dtype) if xp is np else None
    else:
        proj = xp.empty((n_spec, rows), dtype=op_t.dtype)
    for lo in range(0, n_spec, sub):  # a few L2-sized chunks of the block
        part = chunk[:, lo:lo + sub] if energy_major else chunk[lo:lo + sub]
        if energy_major and buf is not None:
            part = _copy_into(buf, part)
        elif part.dtype != op_t.dtype:
            part = part.astype(op_t.dtype)
        if energy_major:
            _squared_norms_columns(part, xp, out=ss[lo:lo + sub])
            xp.matmul(op, part, out=bt[:, lo:lo + sub])
        else:
            # the squared norm first: it streams the chunk from memory into
            # cache (measured 20 % faster than matmul first)
            _squared_norms(part, xp, out=ss[lo:lo + sub])
            xp.matmul(part, op_t, out=proj[lo:lo + sub])
    if not energy_major:
        bt = xp.ascontiguousarray(proj.T)
    if n_bg:
        ss -= xp.sum(bt[-n_bg:] ** 2, axis=0)
    return bt, ss


def _copy_into(buf, part):
    view = buf[:, :part.shape[1]]
    np.copyto(view, part, casting="same_kind")
    return view


def _squared_norms_columns(part, xp, out):
    if xp is np:
        np.einsum("ij,ij->j", part, part, out=out)
    else:
        out[...] = xp.sum(part * part, axis=0)


def _fit_block(chunk, op_t, plan, n_bg, xp, sub, energy_major=False):
    """Exact fit of one block (B, n) (or (n, B) when ``energy_major``):
    fractions (k, B), residual (B,), R-factor (B,)."""
    bt, ss = _statistics(chunk, op_t, n_bg, xp, sub, energy_major)
    bt = bt[:plan.k]
    # a NaN/inf anywhere in a spectrum makes its ||s||^2 non-finite (so do
    # values beyond ~1e19 in float32): such spectra are masked, not fitted.
    # One sum (no temporary) clears the usual all-finite block.
    all_finite = bool(xp.isfinite(ss.sum()))
    if not all_finite:
        bad = ~xp.isfinite(ss)
        bt[:, bad] = 0
    ft, obj = solve_block(bt, plan, xp)
    r2 = obj  # solve_block's own array: updated in place (cache-resident)
    r2 += ss
    xp.maximum(r2, 0, out=r2)
    with np.errstate(invalid="ignore", divide="ignore"):  # fixed just below
        rf = r2 / ss
    if not bool(ss.min() > 0):  # an all-zero spectrum: f = 0 fits, R = 0
        rf = xp.where(ss > 0, rf, 0)
    resid = xp.sqrt(r2, out=r2)
    n_bad = 0
    if not all_finite:
        ft[:, bad] = xp.nan
        resid[bad] = xp.nan
        rf[bad] = xp.nan
        n_bad = int(bad.sum())
    return ft, resid, rf, n_bad


def fit_blocks(flat, op, plan, n_bg, xp, block, workers=1, energy_major=False):
    """Fit every spectrum of ``flat`` (N, n) (or (n, N) when
    ``energy_major``), block after block (blocks in parallel threads with
    ``workers > 1``). Each block is read from memory once; everything else
    happens in cache. ``op`` is (k + n_bg, n).
    Returns fractions (N, k), residual (N,), R-factor (N,) and the number of
    masked (non-finite) spectra."""
    n_spec, n = flat.shape[::-1] if energy_major else flat.shape
    k = plan.k
    dtype = op.dtype
    op_t = xp.ascontiguousarray(op.T)
    frac = xp.empty((n_spec, k), dtype=dtype)
    resid = xp.empty(n_spec, dtype=dtype)
    rf = xp.empty(n_spec, dtype=dtype)
    sub = block if xp is not np else max(1, min(block, _READ_VALUES // max(n, 1)))

    def run(starts):
        n_bad = 0
        for start in starts:
            sl = slice(start, min(start + block, n_spec))
            chunk = flat[:, sl] if energy_major else flat[sl]
            ft, resid[sl], rf[sl], bad = _fit_block(chunk, op_t, plan, n_bg, xp, sub, energy_major)
            frac[sl] = ft.T
            n_bad += bad
        return n_bad

    starts = list(range(0, n_spec, block))
    workers = max(1, min(int(workers), len(starts))) if xp is np else 1
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        # numpy ufuncs and BLAS release the GIL: blocks run truly in parallel;
        # each thread takes a contiguous run of blocks (sequential reads)
        runs = [starts[i * len(starts) // workers:(i + 1) * len(starts) // workers]
                for i in range(workers)]
        with ThreadPoolExecutor(workers) as pool:
            n_masked = sum(pool.map(run, runs))
    else:
        n_masked = run(starts)
    return frac, resid, rf, n_masked
