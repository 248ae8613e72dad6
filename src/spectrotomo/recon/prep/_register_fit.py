"""Estimators behind :func:`register_energies` (numpy or cupy).

- Fourier-Mellin: coarse magnification from translation-free log-polar
  magnitude spectra.
- Gauss-Newton: (s, dy, dx) of every energy refined at once against an
  intensity model ``span(basis) + constant`` with free coefficients
  (variable projection), every energy's 3 x 3 normal equations solved at once.
- Outline model: the basis ``I_ref(x) * g_k(depth(x))``, a per-energy gain
  that may vary with the depth below the particle outline but is constant in
  the outer band. Across an absorption edge a surface shell of other chemistry
  changes the image like a magnification; a depth-dependent gain absorbs that,
  while the support boundary (zero optical density outside the particle at
  every energy) keeps fixing the scale.
"""

from __future__ import annotations

import numpy as np

from ..._backend import array_module, to_numpy
from ._shift import _map, _thread_parts, phase_correlate

__all__ = []


def ndimage_module(xp):
    if xp is np:
        from scipy import ndimage
    else:
        from cupyx.scipy import ndimage
    return ndimage


def warp(images, scales, shifts, *, order: int = 3):
    """Resample each image at ``c + s_e (q - c) + d_e`` (undo scale and shift).

    images (n, ...,  ny, nx); scales (n,); shifts (n, 2) px -> same shape, float64.
    Leading axes after the first (e.g. angles) share image ``e``'s transform.

    The spline interpolation (``scipy.ndimage.affine_transform``, ``mode="nearest"``)
    of a scale and shift is separable: a stack sharing one transform is resampled as
    ``W_y @ image @ W_x.T`` with one matrix per axis (:func:`axis_matrix`), equal to
    the per-image ``affine_transform`` to ~1e-15 and 3-5x less CPU on 131 frames of
    128^2 (two matrix products instead of a 16-tap spline per pixel; the 3-D
    ``affine_transform`` it replaces also ran the spline along the shared axes). The
    products are BLAS calls: from a host thread pool, run them under
    :func:`spectrotomo._backend.blas_single_thread` (the pipeline does, run-wide).
    """
    xp = array_module(images)
    nd = ndimage_module(xp)
    ny, nx = images.shape[-2:]
    c = np.array([(ny - 1) / 2.0, (nx - 1) / 2.0])
    out = xp.empty(images.shape, dtype=np.float64)

    def one(e):  # one affine resampling per energy (a small set)
        s = float(scales[e])
        offset = c - s * c + np.asarray(shifts[e], dtype=float)
        if images.ndim > 3:  # a stack of frames: two products, the frames batched
            w_y = xp.asarray(axis_matrix(ny, s, offset[0], order=order))
            w_x = xp.asarray(axis_matrix(nx, s, offset[1], order=order))
            rows = xp.matmul(w_y, images[e].reshape(-1, ny, nx).astype(np.float64))
            out[e] = (rows.reshape(-1, nx) @ w_x.T).reshape(images.shape[1:])
        else:
            # the matrix as an array and the offset as a tuple: cupyx.scipy.ndimage takes
            # no list (seen on the device, 2026-12-04)
            out[e] = nd.affine_transform(images[e].astype(np.float64), xp.asarray([s, s]),
                                         offset=tuple(offset), order=order, mode="nearest")

    # single images in threads on the host (ndimage releases the GIL; the registration's
    # ~15 warps of every energy's frame are on the preprocess step's serial path)
    n = images.shape[0]
    parts = _thread_parts(xp, n, min_part=2) if images.ndim == 3 else [slice(0, n)]
    _map(parts, lambda part: [one(e) for e in range(n)[part]])
    return out


def axis_matrix(n: int, scale: float, offset: float, *, order: int = 3) -> np.ndarray:
    """(n, n) float64 matrix ``W`` of the 1-D spline resampling at ``scale * i + offset``:
    ``W @ f`` is ``scipy.ndimage.affine_transform(f, [scale], offset=offset, order=order,
    mode="nearest")`` (column k: the resampled unit impulse; dense, as the spline
    prefilter is). Host numpy; built from ndimage itself so every edge rule is its own."""
    from scipy import ndimage

    # axis 1 maps onto itself at whole pixels: the identity, to rounding (~1e-16)
    return ndimage.affine_transform(np.eye(n), [scale, 1.0], offset=[offset, 0.0],
                                    order=order, mode="nearest")


def _log_polar_spectra(xp, images, n_r: int, n_t: int):
    """|FFT| (windowed, high-passed) resampled on log-radius x angle (half plane)."""
    nd = ndimage_module(xp)
    n, ny, nx = images.shape
    win = xp.asarray(np.outer(np.hanning(ny), np.hanning(nx)))
    spec = xp.abs(xp.fft.fftshift(xp.fft.fft2((images - images.mean(axis=(1, 2), keepdims=True))
                                              * win), axes=(-2, -1)))
    spec = xp.log1p(spec / spec.mean(axis=(1, 2), keepdims=True))
    r_max = 0.45 * min(ny, nx)
    log_r = np.linspace(np.log(2.0), np.log(r_max), n_r)
    theta = np.linspace(0, np.pi, n_t, endpoint=False)
    rr = np.exp(log_r)[:, None]
    ys = ny // 2 + rr * np.sin(theta)[None]
    xs = nx // 2 + rr * np.cos(theta)[None]
    coords = np.stack([np.broadcast_to(np.arange(n)[:, None, None], (n, n_r, n_t)),
                       np.broadcast_to(ys, (n, n_r, n_t)), np.broadcast_to(xs, (n, n_r, n_t))])
    lp = nd.map_coordinates(spec, xp.asarray(coords.reshape(3, -1)), order=1)
    return lp.reshape(n, n_r, n_t), (log_r[1] - log_r[0])


def fourier_mellin_scale(xp, images, ref: int) -> np.ndarray:
    """Magnification of each image vs the reference from log-polar spectra."""
    # batches of images: the windowed spectra cost ~50 bytes per pixel
    batch = max(1, _WORK_BYTES // (50 * images.shape[1] * images.shape[2]))
    parts = [_log_polar_spectra(xp, images[i:i + batch], 256, 90)
             for i in range(0, images.shape[0], batch)]
    lp, d_log = xp.concatenate([p[0] for p in parts]), parts[0][1]
    d = phase_correlate(lp[ref], lp, upsample=40, whiten=0.5)
    # A magnification s shrinks the spectrum: shift -ln(s) along log-radius.
    return np.exp(-d[:, 0] * d_log)


def outline_depth(image, *, level: float = 0.1):
    """Signed distance below the particle outline, px (> 0 inside).

    image (ny, nx) optical density (any device) -> (ny, nx) float64 numpy, or
    None when no single particle stands out (mask empty or touching most of
    the border). The outline is the edge of the largest connected region above
    ``level`` x the 99th percentile of the lightly smoothed image.
    """
    from scipy import ndimage

    img = ndimage.gaussian_filter(to_numpy(image).astype(np.float64), 1.0)
    top = np.percentile(img, 99)
    if not top > 0:
        return None
    mask = ndimage.binary_opening(img > level * top)
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    mask = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    if border.mean() > 0.5 or mask.sum() < 16:
        return None
    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask)
    return np.where(mask, inside - 0.5, 0.5 - outside)


def depth_gain_basis(xp, reference, depth, band_px: float):
    """``reference * g_k(depth)``: gain constant up to ``band_px`` below the outline,
    then piecewise linear in depth with knots at band_px x (1, 2, 4, 8)."""
    knots = band_px * np.array([1.0, 2.0, 4.0, 8.0])
    ramps = [np.ones_like(depth)] + [np.clip((depth - a) / (b - a), 0.0, 1.0)
                                     for a, b in zip(knots[:-1], knots[1:])]
    return xp.asarray(np.stack(ramps)) * reference[None]


def _orthonormal_model(xp, basis, inner):
    """Orthonormal columns spanning ``basis`` (k, ny, nx) restricted to ``inner``, plus 1."""
    m = int(inner.sum())
    a = xp.concatenate([xp.asarray(basis, dtype=np.float64)[:, inner], xp.ones((1, m))], axis=0)
    return xp.linalg.qr(a.T)[0]  # (m, k + 1)


#: Energies refined together: the Gauss-Newton work arrays cost ~100 bytes per
#: pixel and energy (warp, gradients, the projected Jacobian), so a 100-energy
#: 2-D XANES map of 1024^2 pixels would need ~10 GiB in one batch.
GN_BATCH = 8
#: Work arrays of one step of the registration's estimate (the log-polar spectra's
#: batch, the Gauss-Newton step's chunk of energies), bytes
_WORK_BYTES = 2**25
#: Gauss-Newton work per pixel and energy of one step (warp, gradients, Jacobian, its
#: projection), bytes
_GN_BYTES_PER_PIXEL = 120


def gauss_newton(xp, images, ref, scales, shifts, *, fit_scale, iterations, inner, basis):
    """Refine (s, dy, dx) of every energy, ``GN_BATCH`` energies at a time (each
    energy's fit is independent of the others'); the reference stays fixed.

    images (n, ny, nx); basis (k, ny, nx): each warped image is matched to
    ``span(basis) + constant`` (variable projection: residual and Jacobian
    are projected onto the complement of that span). ``inner`` (ny, nx) bool:
    pixels used. Returns scales (n,), shifts (n, 2) and the residual sum of
    squares per energy (n,) at the final warp.
    """
    scales, shifts = scales.astype(float).copy(), shifts.astype(float).copy()
    rss = np.empty(images.shape[0])
    q = _orthonormal_model(xp, basis, xp.asarray(inner))
    for start in range(0, images.shape[0], GN_BATCH):  # a few batches of energies
        part = slice(start, start + GN_BATCH)
        fixed = np.arange(images.shape[0])[part] == ref
        scales[part], shifts[part], rss[part] = _gauss_newton_batch(
            xp, images[part], fixed, scales[part], shifts[part], fit_scale=fit_scale,
            iterations=iterations, inner=inner, q=q)
    return scales, shifts, rss


def _gauss_newton_batch(xp, images, fixed, scales, shifts, *, fit_scale, iterations, inner, q):
    """:func:`gauss_newton` on one batch; ``fixed`` (n,) bool marks the reference and
    ``q`` is the orthonormal model span."""
    n, ny, nx = images.shape
    c = np.array([(ny - 1) / 2.0, (nx - 1) / 2.0])
    qy, qx = np.meshgrid(np.arange(ny) - c[0], np.arange(nx) - c[1], indexing="ij")
    qy, qx = xp.asarray(qy[inner]), xp.asarray(qx[inner])
    inner_x = xp.asarray(inner)

    def complement(v):  # (n, m, p) -> (I - Q Q^T) v
        return v - q @ (q.T @ v)

    def steps(part):  # each energy's step is its own: chunks of the batch give its values
        w = warp(images[part], scales[part], shifts[part])
        gy, gx = xp.gradient(w, axis=(1, 2))
        s = xp.asarray(scales[part])[:, None]
        gy, gx = gy[:, inner_x] / s, gx[:, inner_x] / s  # image gradient at the sampled point
        cols = [gy * qy + gx * qx, gy, gx] if fit_scale else [gy, gx]
        jac = complement(xp.stack(cols, axis=2))  # (n, m, p)
        resid = complement(w[:, inner_x][:, :, None])
        lhs = jac.transpose(0, 2, 1) @ jac
        rhs = -(jac.transpose(0, 2, 1) @ resid)
        return to_numpy(xp.linalg.solve(lhs + 1e-9 * xp.eye(lhs.shape[-1])[None], rhs)[:, :, 0])

    chunk = max(1, _WORK_BYTES // (_GN_BYTES_PER_PIXEL * ny * nx))
    for _ in range(iterations):
        step = np.concatenate([steps(slice(i, i + chunk)) for i in range(0, n, chunk)])
        step[fixed] = 0.0
        if fit_scale:
            scales += step[:, 0]
            shifts += step[:, 1:3]
        else:
            shifts += step[:, 0:2]
        if np.abs(step).max() < 1e-4:
            break
    return scales, shifts, residual_ss(xp, images, scales, shifts, inner_x, q)


def residual_ss(xp, images, scales, shifts, inner, q):
    """Sum of squares of each warped image outside the model span ``q`` (m, k),
    ``GN_BATCH`` energies at a time."""
    out = []
    for start in range(0, images.shape[0], GN_BATCH):
        part = slice(start, start + GN_BATCH)
        r = warp(images[part], scales[part], shifts[part])[:, inner][:, :, None]
        r = r - q @ (q.T @ r)
        out.append(to_numpy((r[:, :, 0] ** 2).sum(axis=1)))
    return np.concatenate(out)


def depth_gain_significant(xp, images, scales, shifts, inner, reference, depth, band_px):
    """Per energy: does a depth-dependent gain explain the image significantly
    better than one gain (chi-square test at ~5 sigma of the extra parameters)?"""
    inner_x = xp.asarray(inner)
    q1 = _orthonormal_model(xp, reference[None], inner_x)
    qd = _orthonormal_model(xp, depth_gain_basis(xp, reference, depth, band_px), inner_x)
    rss1 = residual_ss(xp, images, scales, shifts, inner_x, q1)
    rssd = residual_ss(xp, images, scales, shifts, inner_x, qd)
    extra = qd.shape[1] - q1.shape[1]
    var = rssd / max(int(inner.sum()) - qd.shape[1], 1)
    return (rss1 - rssd) > (extra + 5.0 * np.sqrt(2.0 * extra)) * np.maximum(var, 1e-300)
