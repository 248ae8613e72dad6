"""Joint limited-angle reconstruction of the energies of one sample (prototype)."""

from __future__ import annotations

import numpy as np

from .._backend import array_module
from ._operator import ParallelBeamOperator
from ._regularize import divergence, gradient, project_ball, sinogram_noise
from ._toeplitz import FilteredNormal

__all__ = ["reconstruct_joint"]


def _solve(N: FilteredNormal, g0, lam, chan_w, *, iterations, joint, dims, nonneg,
           step_ratio, x0=None, callback=None):
    """Condat-Vu primal-dual on 0.5 x'Tx - g0'x + lam * TV_w(x), x >= 0.

    g0, x: (C, R, ny, nx); chan_w: (C,) weights of each channel's gradient.
    """
    xp = N.xp
    C = g0.shape[0]
    w = xp.asarray(np.asarray(chan_w, dtype=np.float32)).reshape(C, 1, 1, 1, 1)
    x = xp.maximum(g0, 0) if x0 is None else x0.copy()
    if not nonneg and x0 is None:
        x = g0.copy()
    knorm2 = 4.0 * dims * float(np.max(chan_w)) ** 2
    # 1/tau - sigma ||K||^2 >= L/2 with sigma = 1 / (ratio^2 tau ||K||^2)
    tau = 1.0 / (N.lipschitz / 2 + np.sqrt(knorm2) / step_ratio)
    tau *= 0.99
    sigma = 1.0 / (step_ratio * np.sqrt(knorm2))
    sigma = sigma / (1 - 0.0)
    # check: 1/tau - sigma*knorm2 = L/2 + sqrt(k)/r - sqrt(k)/r = L/2 (ok)
    q = xp.zeros((C, dims, *g0.shape[1:]), dtype=xp.float32)
    g = xp.empty_like(q)
    d = xp.empty_like(x)
    tx = xp.empty_like(x)
    for k in range(iterations):
        N.apply(x, out=tx)
        tx -= g0
        divergence(xp, q * w, d)
        tx -= d
        x_new = x - xp.float32(tau) * tx
        if nonneg:
            xp.maximum(x_new, 0, out=x_new)
        xbar = 2 * x_new - x
        gradient(xp, xbar, g, dims)
        g *= w
        q += xp.float32(sigma) * g
        project_ball(xp, q, xp.float32(lam), joint=joint)
        x = x_new
        if callback is not None:
            callback(k, x)
    return x


def _bin2(xp, od):
    """Average 2 x 2 (rows, cols) of od (C, A, R, n), cropping odd ends."""
    C, A, R, n = od.shape
    r2, n2 = R // 2 * 2 if R > 1 else 1, n // 2 * 2
    o = od[:, :, :r2, :n2]
    if R > 1:
        o = 0.5 * (o[:, :, 0::2] + o[:, :, 1::2])
    return 0.5 * (o[..., 0::2] + o[..., 1::2])


def _up2(xp, y, axis, n_out):
    """Linear interpolation by 2 along ``axis`` (half-voxel aligned), length n_out."""
    y = xp.moveaxis(y, axis, 0)
    prev = xp.concatenate([y[:1], y[:-1]])
    nxt = xp.concatenate([y[1:], y[-1:]])
    out = xp.empty((2 * y.shape[0], *y.shape[1:]), dtype=y.dtype)
    out[0::2] = 0.75 * y + 0.25 * prev
    out[1::2] = 0.75 * y + 0.25 * nxt
    if n_out > out.shape[0]:
        out = xp.concatenate([out, out[-1:].repeat(n_out - out.shape[0], 0)])
    return xp.moveaxis(out[:n_out], 0, axis)


def _upsample(xp, y, shape):
    """(C, R', n', n') coarse -> (C, R, n, n) fine values per fine voxel (y / 2)."""
    C, R, ny, nx = shape
    x = y * xp.float32(0.5)
    if R > 1:
        x = _up2(xp, x, 1, R)
    x = _up2(xp, _up2(xp, x, 2, ny), 3, nx)
    return xp.ascontiguousarray(x, dtype=xp.float32)


def reconstruct_joint(od, angles, *, center=None, weight="auto", iterations=40, nonneg=True,
                      joint=True, dims=2, step_ratio=1.0, eps=1e-4, callback=None,
                      return_info=False, levels=0, coarse_iterations=60):
    xp = array_module(od)
    od = xp.asarray(od, dtype=xp.float32)
    C, A, R, n = od.shape
    x0 = None
    if levels > 0:
        c = (n - 1) / 2 if center is None else float(center)
        y = reconstruct_joint(_bin2(xp, od), angles, center=(c - 0.5) / 2, weight=weight,
                              iterations=coarse_iterations, nonneg=nonneg, joint=joint,
                              dims=dims, step_ratio=step_ratio, eps=eps, levels=levels - 1,
                              coarse_iterations=coarse_iterations)
        x0 = _upsample(xp, y, (C, R, n, n))
    op = ParallelBeamOperator(angles, n, center, xp=xp, eps=eps)
    N = FilteredNormal(op)
    sino = xp.ascontiguousarray(od.transpose(1, 0, 2, 3).reshape(A, C * R, n))
    g0 = N.rhs(sino).reshape(C, R, n, n)
    s = sinogram_noise(xp, od) * N.noise_gain  # per-voxel noise of g0, per channel
    sbar = float(np.sqrt(np.mean(s**2)))
    chan_w = sbar / s
    if weight == "auto":
        weight = 1.0
    lam = float(weight) * sbar * (np.sqrt(C) if joint else 1.0)
    x = _solve(N, g0, lam, chan_w, iterations=iterations, joint=joint, dims=dims,
               nonneg=nonneg, step_ratio=step_ratio, callback=callback, x0=x0)
    if return_info:
        return x, dict(g0=g0, noise=s, lam=lam, lipschitz=N.lipschitz)
    return x
