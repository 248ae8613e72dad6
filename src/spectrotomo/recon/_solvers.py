"""Iterative solvers on the matched NUFFT projector pair: SIRT, CGLS, TV (PDHG).

Every slice (detector row) is an independent problem; all slices of a call
are iterated together (one operator application per step for the whole
stack) with per-slice step sizes where the method has them. Nothing leaves
the device inside the loops.
"""

from __future__ import annotations

import time
import warnings
from typing import Callable, Iterator

import numpy as np

from ._fbp import fbp
from ._filters import angular_weights, ramp_window
from ._operator import ParallelBeamOperator

__all__ = ["sirt", "cgls", "tv", "SolverStoppedWarning", "Budget"]

Callback = Callable[[int, object, object], None]  # (iteration, x, residual norm per slice)
#: ``progress(done, total, elapsed_s)`` after every iteration (callers throttle).
Progress = Callable[[int, int, float], None]


class SolverStoppedWarning(UserWarning):
    """An iterative solve stopped before its iterations at its ``max_seconds`` cap."""


class Budget:
    """Iterations of one solve (of every level of a multigrid solve) against
    ``max_seconds`` (wall clock, from construction), with ``progress(done, total,
    elapsed_s)`` after each: :meth:`tick` once per iteration; ``out`` is True once
    the time is spent. The clock is read on the host: on a GPU it counts queued
    kernels as they are launched, so the cap is approximate there."""

    def __init__(self, total: int, max_seconds: float | None, progress: Progress | None):
        self.total, self.max_seconds, self.progress = int(total), max_seconds, progress
        self.done, self.elapsed, self.out = 0, 0.0, False
        self._t0 = time.monotonic()

    def tick(self) -> bool:
        """Count one iteration; True once ``max_seconds`` have passed."""
        self.done += 1
        self.elapsed = time.monotonic() - self._t0
        if self.progress is not None:
            self.progress(self.done, self.total, self.elapsed)
        if self.max_seconds is not None and self.elapsed >= self.max_seconds:
            self.out = True
        return self.out


def _iterations(n: int, *, max_seconds: float | None, progress: Progress | None,
                where: str, warn: bool = True) -> Iterator[int]:
    """Iteration indices ``0..n-1``, ending early once ``max_seconds`` (wall clock)
    have passed (:class:`Budget`); ``progress`` hears after each iteration. An early
    end warns (:class:`SolverStoppedWarning`) naming the iterations done, unless
    ``warn`` is False: then the caller reports it (e.g. from ``progress``). On a GPU
    the residual reductions of ``callback`` synchronise each iteration."""
    budget = Budget(n, max_seconds, progress)
    for k in range(n):
        yield k
        if budget.tick() and k + 1 < n:
            if warn:
                warnings.warn(f"{where}: stopped after {k + 1} of {n} iterations: max_seconds "
                              f"= {max_seconds:g} s reached ({budget.elapsed:.1f} s)",
                              SolverStoppedWarning, stacklevel=4)
            return


def _sino_norm2(xp, p):
    return (p * p).sum(axis=(0, 2))  # (n_rows,)


def _vol_norm2(xp, v):
    return (v * v).sum(axis=(1, 2))  # (n_rows,)


def sirt(op: ParallelBeamOperator, b, *, iterations: int = 100, nonnegative: bool = True,
         relaxation: float = 1.0, x0=None, callback: Callback | None = None,
         max_seconds: float | None = None, progress: Progress | None = None,
         warn_on_stop: bool = True):
    """Simultaneous iterative reconstruction ``x += C A^T R (b - A x)``.

    ``R = 1 / (A 1)`` and ``C = 1 / (A^T 1)`` (ray lengths and back-projected
    ones, as in ASTRA's SIRT). ``b`` is (n_angles, n_rows, n_cols) float32;
    returns (n_rows, ny, nx) float32. ``callback(k, x, r)`` gets the
    R-weighted residual norm per slice, ``||b - A x||_R``, which SIRT decreases
    monotonically for ``0 < relaxation < 2``. ``max_seconds`` caps the wall
    time (the solve stops early with a :class:`SolverStoppedWarning`; none with
    ``warn_on_stop=False``, for callers that report the stop themselves: the
    warnings filters are process-wide, so silencing them per thread is not safe);
    ``progress(done, total, elapsed_s)`` is called after every iteration.
    """
    xp = op.xp
    ones = xp.ones((1, *op.shape), dtype=xp.float32)
    rays = op.forward(ones)  # (n_angles, 1, n_cols)
    R = xp.where(rays > 1e-2 * rays.max(), 1.0 / xp.maximum(rays, 1e-12), 0.0).astype(xp.float32)
    back = op.adjoint(xp.ones((op.angles.size, 1, op.n_cols), dtype=xp.float32))
    C = xp.where(back > 1e-2 * back.max(), relaxation / xp.maximum(back, 1e-12), 0.0)
    C = C.astype(xp.float32)
    x = xp.zeros((b.shape[1], *op.shape), dtype=xp.float32) if x0 is None else x0.copy()
    proj = xp.empty_like(b)
    upd = xp.empty_like(x)
    for k in _iterations(iterations, max_seconds=max_seconds, progress=progress, where="sirt",
                         warn=warn_on_stop):
        r = b - op.forward(x, out=proj)
        if callback is not None:
            callback(k, x, xp.sqrt((r * r * R).sum(axis=(0, 2))))
        r *= R
        x += C * op.adjoint(r, out=upd)
        if nonnegative:
            xp.maximum(x, 0, out=x)
    return x


def cgls(op: ParallelBeamOperator, b, *, iterations: int = 20, nonnegative: bool = False,
         x0=None, callback: Callback | None = None, max_seconds: float | None = None,
         progress: Progress | None = None, warn_on_stop: bool = True):
    """Conjugate gradients on the normal equations, one Krylov space per slice.

    The residual ``||b - A x||`` decreases monotonically. ``nonnegative`` clips
    the final result only (clipping inside would break the recurrence).
    ``max_seconds`` and ``progress`` as for :func:`sirt`.
    """
    xp = op.xp
    x = xp.zeros((b.shape[1], *op.shape), dtype=xp.float32) if x0 is None else x0.copy()
    r = b - op.forward(x) if x0 is not None else b.copy()
    s = op.adjoint(r)
    p = s.copy()
    gamma = _vol_norm2(xp, s)
    q = xp.empty_like(b)
    for k in _iterations(iterations, max_seconds=max_seconds, progress=progress, where="cgls",
                         warn=warn_on_stop):
        if callback is not None:
            callback(k, x, xp.sqrt(_sino_norm2(xp, r)))
        op.forward(p, out=q)
        qq = _sino_norm2(xp, q)
        alpha = xp.where(qq > 0, gamma / xp.where(qq > 0, qq, 1), 0).astype(xp.float32)
        x += alpha[:, None, None] * p
        r -= alpha[None, :, None] * q
        op.adjoint(r, out=s)
        gamma_new = _vol_norm2(xp, s)
        beta = xp.where(gamma > 0, gamma_new / xp.where(gamma > 0, gamma, 1), 0)
        p *= beta.astype(xp.float32)[:, None, None]
        p += s
        gamma = gamma_new
    if nonnegative:
        xp.maximum(x, 0, out=x)
    return x


def _grad(xp, x, out):
    """Forward differences along y and x (Neumann boundary): (2, n, ny, nx)."""
    out[...] = 0
    out[0, :, :-1] = x[:, 1:] - x[:, :-1]
    out[1, :, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    return out


def _div(xp, q, out):
    """Negative adjoint of :func:`_grad`."""
    out[...] = 0
    out[:, :-1] += q[0, :, :-1]
    out[:, 1:] -= q[0, :, :-1]
    out[:, :, :-1] += q[1, :, :, :-1]
    out[:, :, 1:] -= q[1, :, :, :-1]
    return out


def tv(op: ParallelBeamOperator, b, *, iterations: int = 100, nonnegative: bool = True,
       weight: float = 0.01, step_ratio: float = 10.0, x0=None,
       callback: Callback | None = None, max_seconds: float | None = None,
       progress: Progress | None = None, warn_on_stop: bool = True):
    """Total-variation regularised least squares by Chambolle-Pock (PDHG).

    Minimises ``0.5 ||S (A x - b)||^2 + lam * TV(x)`` (+ ``x >= 0``) per slice
    with isotropic 2-D TV. ``S`` is the square root of the FBP filter (ramp x
    angular weight, applied along the detector), so ``(S A)^T (S A)`` is
    close to the identity on the measured frequencies: PDHG then converges in
    tens of iterations instead of thousands, and ``lam`` is in image units.
    ``lam = weight * scale`` with ``scale`` the 99.5th percentile of |FBP|
    (the image contrast), so ``weight`` is dimensionless. Starts from the
    (clipped) FBP. ``callback`` gets the filtered residual ``||S(b - A x)||``.
    ``step_ratio`` = tau / sigma: large primal steps let TV fill a missing
    wedge faster. Defaults (100 iterations, weight 0.01, step_ratio 10) were
    measured at -65..+65 deg on Shepp-Logan and ball phantoms, clean and with
    1 % noise (gpu_bench/RESULTS.recon.md): 40-80 % lower RMSE than FBP.
    ``max_seconds`` and ``progress`` as for :func:`sirt`.
    """
    xp = op.xp
    w = angular_weights(op.angles)[:, None] * ramp_window(op.n_pad, "ram-lak")[None, :]
    sw = xp.asarray(np.sqrt(np.maximum(w, 0)).astype(np.float32))
    L = op.norm(weights=sw)
    x = fbp(b, op) if x0 is None else x0.astype(xp.float32, copy=True)
    if nonnegative:
        xp.maximum(x, 0, out=x)
    scale = float(xp.percentile(xp.abs(x), 99.5)) or 1.0
    lam = xp.float32(weight * scale)
    b_n = op.filter_detector(b, sw)
    # ||[S A; grad]||^2 <= L^2 + 8; balance the two step sizes around it.
    norm_k = np.sqrt(L**2 + 8.0)
    tau, sigma = xp.float32(0.99 * step_ratio / norm_k), xp.float32(0.99 / (step_ratio * norm_k))
    p = xp.zeros_like(b)
    q = xp.zeros((2, *x.shape), dtype=xp.float32)
    xbar = x.copy()
    ax = xp.empty_like(b)
    g = xp.empty_like(q)
    d = xp.empty_like(x)
    for k in _iterations(iterations, max_seconds=max_seconds, progress=progress, where="tv",
                         warn=warn_on_stop):
        op.forward(xbar, out=ax, weights=sw)
        ax -= b_n
        if callback is not None:
            callback(k, xbar, xp.sqrt(_sino_norm2(xp, ax)))
        p += sigma * ax
        p /= 1 + sigma
        q += sigma * _grad(xp, xbar, g)
        q /= xp.maximum(1, xp.sqrt((q * q).sum(axis=0)) / lam)[None]
        step = op.adjoint(p, out=d, weights=sw)
        step -= _div(xp, q, g[0])
        x_old = x
        x = x - tau * step
        if nonnegative:
            xp.maximum(x, 0, out=x)
        xbar = 2 * x - x_old
    return x
