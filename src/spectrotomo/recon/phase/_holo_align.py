"""Bring holotomography images at several distances onto one grid.

With a divergent beam each distance has its own magnification ``M_d``
(``effective_geometry``); images are first rescaled to the sample-plane
pixel of a reference distance (``correct_magnification``), then their
residual (motor) shifts are measured against the reference by phase
correlation of Paganin-retrieved images, which look alike at every
distance while the raw fringes do not (``register_distances``), and
removed with a Fourier shift (``shift_images``).
"""

from __future__ import annotations

import numpy as np

from ..._backend import array_module
from ..._model import ValidationError
from ._paganin import paganin

__all__ = ["correct_magnification", "register_distances", "shift_images"]


def _ndimage(xp):
    if xp is np:
        from scipy import ndimage
    else:
        from cupyx.scipy import ndimage
    return ndimage


def correct_magnification(intensity, magnifications, *, reference=0, order=3):
    """Rescale each distance's images to the pixel size of the reference distance.

    Parameters
    ----------
    intensity : ndarray, shape (n_distances, ..., rows, cols)
        Images per distance on the detector grid (same detector pixel).
    magnifications : sequence of float, length n_distances
        Geometric magnification ``M_d`` of each distance (dimensionless).
    reference : int
        Index of the distance whose sample-plane pixel (``p / M_ref``) is kept.
    order : int
        Spline order of the interpolation.

    Returns
    -------
    ndarray, same shape and device: images zoomed by ``M_ref / M_d`` about
    the image centre, border values extended.
    """
    xp = array_module(intensity)
    mags = np.asarray(magnifications, dtype=float).ravel()
    if intensity.ndim < 3 or mags.size != intensity.shape[0]:
        raise ValidationError(f"correct_magnification: magnifications must give one value per "
                              f"distance (axis 0 of intensity, {intensity.shape[0]}); got "
                              f"{mags.size}")
    if np.any(~np.isfinite(mags)) or np.any(mags <= 0):
        raise ValidationError(f"correct_magnification: magnifications must be > 0; got {mags}")
    nd = _ndimage(xp)
    ny, nx = intensity.shape[-2:]
    c = np.array([(ny - 1) / 2, (nx - 1) / 2])
    out = xp.empty_like(intensity)
    for i, m in enumerate(mags):  # 1-4 distances
        zoom = mags[reference] / m
        lead = intensity.ndim - 3
        matrix = np.ones(intensity.ndim - 1)
        matrix[lead:] = 1.0 / zoom
        offset = np.zeros(intensity.ndim - 1)
        offset[lead:] = c - c / zoom
        out[i] = nd.affine_transform(intensity[i], xp.asarray(matrix), offset=tuple(offset),
                                     order=order, mode="nearest")
    return out


def _subpixel_peak(corr, xp):
    """Argmax of the last two axes with a parabolic refinement; returns (..., 2) shifts."""
    ny, nx = corr.shape[-2:]
    flat = corr.reshape((*corr.shape[:-2], -1))
    idx = xp.argmax(flat, axis=-1)
    iy, ix = idx // nx, idx % nx

    def refine(axis_len, i, take):
        cm, c0, cp = take((i - 1) % axis_len), take(i), take((i + 1) % axis_len)
        den = cm - 2 * c0 + cp
        safe = xp.where(xp.abs(den) > 1e-30, den, 1.0)
        frac = xp.where(xp.abs(den) > 1e-30, 0.5 * (cm - cp) / safe, 0.0)
        pos = i + frac
        return xp.where(pos > axis_len / 2, pos - axis_len, pos)

    def at(yy, xx):
        return xp.take_along_axis(flat, (yy * nx + xx)[..., None], axis=-1)[..., 0]

    dy = refine(ny, iy, lambda j: at(j, ix))
    dx = refine(nx, ix, lambda j: at(iy, j))
    return xp.stack([dy, dx], axis=-1)


def register_distances(intensity, *, energy_ev, distances_m, pixel_size_m, delta_beta,
                       reference=0):
    """Shift of each distance's images relative to the reference distance.

    Parameters
    ----------
    intensity : ndarray, shape (n_distances, ..., rows, cols)
        I/I0 per distance, already on one pixel size.
    energy_ev, pixel_size_m, delta_beta
        As in ``paganin``.
    distances_m : sequence of float, length n_distances
        Effective distances in metres.
    reference : int
        Index of the reference distance.

    Returns
    -------
    ndarray, shape (n_distances, ..., 2), float64
        (dy, dx) in pixels such that ``shift_images(intensity[d], -shifts[d])``
        aligns distance ``d`` on the reference (zero for the reference).
    """
    xp = array_module(intensity)
    z = np.atleast_1d(np.asarray(distances_m, dtype=float))
    if intensity.ndim < 3 or z.size != intensity.shape[0]:
        raise ValidationError(f"register_distances: intensity must be shaped (n_distances="
                              f"{z.size}, ..., rows, cols); got {intensity.shape}")
    phases = xp.stack([paganin(intensity[i], energy_ev=energy_ev, distance_m=zd,
                               pixel_size_m=pixel_size_m, delta_beta=delta_beta)
                       for i, zd in enumerate(z)])
    phases = phases - phases.mean(axis=(-2, -1), keepdims=True)
    # A Hann window hides the field borders, which would otherwise pin the peak at 0.
    ny, nx = phases.shape[-2:]
    window = xp.asarray(np.outer(np.hanning(ny), np.hanning(nx)))
    spec = xp.fft.fft2(phases * window, axes=(-2, -1))
    cross = spec * xp.conj(spec[reference])[None]
    # Plain (unwhitened) correlation: the retrieved phases are smooth, so its peak is
    # well fitted by a parabola; whitening biased the sub-pixel part here.
    corr = xp.fft.ifft2(cross, axes=(-2, -1)).real
    return _subpixel_peak(corr, xp).astype(xp.float64)


def shift_images(images, shifts):
    """Shift images by sub-pixel amounts with the Fourier shift theorem.

    Parameters
    ----------
    images : ndarray, shape (..., rows, cols)
    shifts : array_like, shape (..., 2) broadcastable to the leading axes
        (dy, dx) in pixels; positive moves content to larger indices.

    Returns
    -------
    ndarray, same shape, real, same device (periodic boundary).
    """
    xp = array_module(images)
    ny, nx = images.shape[-2:]
    s = xp.asarray(shifts, dtype=xp.float64)
    fy = xp.fft.fftfreq(ny)[:, None]
    fx = xp.fft.fftfreq(nx)[None, :]
    ramp = xp.exp(-2j * np.pi * (s[..., 0, None, None] * fy + s[..., 1, None, None] * fx))
    out = xp.fft.ifft2(xp.fft.fft2(images, axes=(-2, -1)) * ramp, axes=(-2, -1)).real
    return out.astype(images.dtype if images.dtype == xp.float32 else xp.float64)
