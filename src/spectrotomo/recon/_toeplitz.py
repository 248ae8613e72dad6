"""The filtered normal operator ``A^T W A`` of the projector as a 2-D convolution.

For the Fourier-slice projector (:class:`ParallelBeamOperator`) with the
projections kept on the operator's whole periodic detector window, the
weighted normal operator is

    (A^T W A x)(r) = sum_r' K(r - r') x(r'),
    K(d) = Re sum_j c_j exp(-i k_j . d),   c_j = herm_j W_j / n_pad,

a convolution over the slice (Toeplitz): ``k_j`` are the operator's polar
frequencies, ``W_j`` real Fourier weights per angle and frequency and
``herm_j`` the Hermitian multiplicity of the real FFT. The kernel is computed
once (one type-1 NUFFT on a ``(2 ny, 2 nx)`` grid) and then applied with
zero-padded 2-D real FFTs: no NUFFT inside iterations, ~10x cheaper than a
forward + adjoint pair on 64-128^2 slices with 131 angles (Fessler's Toeplitz
embedding). On the host the transforms run in ducc0 (the successor of
scipy's pocketfft, same author) along the padded axes in place, no transposes,
one thread (the pipeline runs chunks side by side): measured on 8 x 2 slices of
128^2, 3.6-4.1 ms CPU per application vs 4.9-5.2 (scipy.fft, one thread,
transposes) and 5.6 (scipy.fft, 2 threads); three demo chunk solves 2.87 -> 2.58
CPU s (gpu_bench/RESULTS.recon.md, "2026-12-04"). Without ducc0, scipy.fft
(the generic path, cupy's too).

With ``W`` = ramp x angular weight (the FBP filter) the operator is close to
the identity on the measured frequencies and zero in the missing wedge, so a
gradient step on the data term is already a filtered back-projection step (the
ramp as a preconditioner).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from ._filters import angular_weights, ramp_window
from ._nufft import host_threads, make_plan
from ._operator import ParallelBeamOperator

__all__ = ["FilteredNormal", "filtered_normal"]

#: slices per block of :meth:`FilteredNormal.apply` on the host (cache-sized work)
BLOCK_SLICES = 4
_CACHE_SIZE = 8  # FilteredNormal per geometry: a few sizes x the pyramid's levels
_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


def _ducc():
    """ducc0's FFTs, or None where it is not installed (scipy.fft then)."""
    try:
        import ducc0
    except ImportError:  # pragma: no cover - a dependency; old environments
        return None
    return ducc0.fft


def filtered_normal(angles, n: int, center: float, *, xp=np, eps: float = 1e-4):
    """:class:`FilteredNormal` of the ``n x n`` slice geometry, shared by every call with
    the same angles (deg), ``center`` (column index) and ``eps`` in this process.

    Its set-up (a type-1 NUFFT for the kernel, 20 power iterations for the Lipschitz
    bound) is the same for every chunk of rows of a sample: measured 0.07 CPU s of a
    demo chunk's 1.3 (four levels). Read-only after construction, so threads share it.
    """
    angles = np.asarray(angles, dtype=np.float64)
    device = None if xp is np else xp.cuda.Device().id
    key = (xp.__name__, device, angles.tobytes(), int(n), float(center), float(eps),
           host_threads())
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    normal = FilteredNormal(ParallelBeamOperator(angles, n, center, xp=xp, eps=eps))
    with _cache_lock:
        _cache[key] = normal
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return normal


def _rfft2(xp, a, s):
    if xp is np:
        import scipy.fft

        return scipy.fft.rfft2(a, s=s, workers=host_threads())
    return xp.fft.rfft2(a, s=s)


def _fft(xp, kind: str, a, n: int, axis: int):
    if xp is np:
        import scipy.fft

        # every input but the caller's (rfft) is a temporary of apply; host_threads,
        # not -1 (every CPU): a dask worker's tasks keep to its threads_per_worker
        return getattr(scipy.fft, kind)(a, n=n, axis=axis, workers=host_threads(),
                                        overwrite_x=kind != "rfft")
    return getattr(xp.fft, kind)(a, n=n, axis=axis)


class FilteredNormal:
    """``A^T W A`` and ``A^T W b`` of a parallel-beam geometry, W = ramp x angle weight.

    Parameters
    ----------
    op : ParallelBeamOperator
        Geometry (angles in degrees, centre, slice shape ``(ny, nx)``); its
        ``response`` must be None (band-limited model).

    Attributes
    ----------
    lipschitz : float
        Largest eigenvalue bound of the operator (max of the circulant
        multiplier): the data term's gradient is ``lipschitz``-Lipschitz.
    noise_gain : float
        Per-voxel standard deviation of ``rhs(n)`` for white noise ``n`` of
        unit standard deviation in the projections (OD per pixel -> value per voxel).
    """

    def __init__(self, op: ParallelBeamOperator):
        if op.response is not None:
            raise ValueError("FilteredNormal: the operator must have response=None")
        self.op = op
        xp = self.xp = op.xp
        n_pad, n_freq = op.n_pad, op.n_freq
        w = angular_weights(op.angles)[:, None] * ramp_window(n_pad, "ram-lak")[None, :]
        if n_pad % 2 == 0:
            w[:, -1] = 0.0  # irfft drops the Nyquist bin's imaginary part: keep the pair exact
        self.weights = w.astype(np.float32)  # (n_angles, n_freq), for op.adjoint(weights=)
        herm = np.full(n_freq, 2.0)
        herm[0] = 1.0
        c = (w * herm[None, :] / n_pad).astype(np.float32)
        ny, nx = op.shape
        self.pad_shape = (2 * ny, 2 * nx)
        # K(d) on d in [-n, n): a type-1 NUFFT with the operator's points (isign -1).
        plan = make_plan(xp, 1, self.pad_shape, 1, 1e-6, -1, *op._pts)
        kern = plan.execute(xp.asarray(c.ravel().astype(np.complex64))).real
        # finufft's mode axis runs -n .. n-1: move d = 0 to index 0 (circulant embedding).
        kern = xp.fft.ifftshift(kern.astype(xp.float32))
        kern[ny, :] = 0  # d = -n is not a difference of two voxels of the slice
        kern[:, nx] = 0
        self.multiplier = _rfft2(xp, kern, self.pad_shape).real.astype(xp.float32)
        self._multiplier_t = None  # the generic path's transposed copy, made on first use
        # the host path's copy per float of the complex spectrum (real, imaginary): a
        # float32 product, not numpy's cast of every multiplier to complex (26 vs 48 us
        # per 4 slices of 128^2, same values)
        self._multiplier_ri = (None if xp is not np else
                               np.repeat(self.multiplier, 2, axis=-1).reshape(2 * ny, -1))
        # The circulant extension's multiplier rings (its max bounds ||A^T W A||
        # loosely, ~2.3x on 64^2); the slice operator is PSD: power iteration.
        self.lipschitz = 1.05 * self._norm()
        self.noise_gain = float(np.sqrt((w**2 * herm[None, :] / n_pad).sum()))

    def _norm(self, iterations: int = 20) -> float:
        x = self.xp.asarray(np.random.default_rng(0).random((1, *self.op.shape),
                                                            dtype=np.float32))
        s = 1.0
        for _ in range(iterations):
            x = self.apply(x)
            s = float(self.xp.linalg.norm(x))
            x /= s
        return s

    def apply(self, x, out=None):
        """``A^T W A x`` for x (..., ny, nx) float32 -> same shape (``out`` may be a view,
        e.g. a block of rows of every channel)."""
        xp = self.xp
        if xp is not np or x.ndim < 3:
            return self._apply(x, out)
        # host: BLOCK_SLICES slices at a time, so the transposes and padding stay in
        # cache (8 x 128 slices of 128^2: 0.42-0.62 vs 0.77-1.29 CPU s all at once, load
        # 25); views (the solver's row blocks of every channel) by their leading index
        out = xp.empty(x.shape, xp.float32) if out is None else out
        if x.ndim > 3:
            for i in range(x.shape[0]):
                self.apply(x[i], out=out[i])
            return out
        apply = self._apply if _ducc() is None else self._apply_ducc
        for s in range(0, x.shape[0], BLOCK_SLICES):
            apply(x[s:s + BLOCK_SLICES], out[s:s + BLOCK_SLICES])
        return out

    def _apply_ducc(self, x, out):
        """Host :meth:`_apply` with ducc0 on x (B, ny, nx): each transform along its
        axis of the padded buffers, in place (ducc0 runs strided axes as fast as
        contiguous ones, several transforms per SIMD vector), so no transposes."""
        fft = _ducc()
        ny, nx = self.op.shape
        B = x.shape[0]
        pad = np.empty((B, ny, 2 * nx), np.float32)
        pad[..., :nx] = x
        pad[..., nx:] = 0
        spec = np.empty((B, 2 * ny, nx + 1), np.complex64)
        fft.r2c(pad, axes=(2,), out=spec[:, :ny])
        spec[:, ny:] = 0
        fft.c2c(spec, axes=(1,), out=spec)
        spec.view(np.float32).reshape(B, 2 * ny, -1)[...] *= self._multiplier_ri
        fft.c2c(spec, axes=(1,), out=spec, forward=False, inorm=2)  # 1 / (2 ny)
        fft.c2r(spec[:, :ny], axes=(2,), lastsize=2 * nx, forward=False, inorm=2, out=pad)
        out[...] = pad[..., :nx]
        return out

    def _apply(self, x, out=None):
        xp = self.xp
        ny, nx = self.op.shape
        # Separable zero-padded transforms, each along a contiguous axis: the
        # padded rows are never transformed along x, only ny rows come back,
        # and strided FFTs (2-3x slower in pocketfft) are replaced by two
        # transposes. Measured 90 vs 155 ms (padded rfft2 / irfft2 pair) on
        # 8 x 64 slices of 64^2, one thread.
        spec = _fft(xp, "rfft", x, 2 * nx, -1)
        spec = xp.ascontiguousarray(xp.swapaxes(spec, -1, -2))
        spec = _fft(xp, "fft", spec, 2 * ny, -1)
        if self._multiplier_t is None:  # a race makes it twice: the same values
            self._multiplier_t = xp.ascontiguousarray(self.multiplier.T)
        spec *= self._multiplier_t
        spec = _fft(xp, "ifft", spec, 2 * ny, -1)[..., :ny]
        spec = xp.ascontiguousarray(xp.swapaxes(spec, -1, -2))
        y = _fft(xp, "irfft", spec, 2 * nx, -1)[..., :nx]
        if out is None:
            return xp.ascontiguousarray(y, dtype=xp.float32)
        out[...] = y
        return out

    def rhs(self, projections):
        """``A^T W b`` for b (n_angles, n_rows, n_cols) zero-extended to the
        periodic window -> (n_rows, ny, nx) float32: a filtered back-projection."""
        xp, op = self.xp, self.op
        n_a, n_rows, n_cols = projections.shape
        window = xp.zeros((n_a, n_rows, op.n_pad), dtype=xp.float32)
        window[..., :n_cols] = projections
        return op.adjoint(window, periodic=True, weights=self.weights)
