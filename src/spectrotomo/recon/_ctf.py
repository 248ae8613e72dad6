"""Multi-distance contrast-transfer-function (CTF) phase retrieval (Cloetens et al. 1999).

For a weakly interacting object, the Fourier transform of the intensity
at an effective distance ``z_d`` is (``chi_d = pi lambda z_d |f|^2``)

    FT[I_d / I0] = delta(f) + 2 sin(chi_d) FT[phi] - 2 cos(chi_d) FT[B],

with ``phi`` the phase (radians, negative for matter) and ``B`` the
absorption (``|T| = exp(-B)``). ``ctf_retrieval`` solves, per frequency,
the Tikhonov-regularised least squares over the 1-4 distances

    min  sum_d |s_d P + (c_d / delta_beta) Q - g_d|^2 + alpha |P - Q|^2
         + eps (|P|^2 + |Q|^2)

for the spectra ``P`` of phi and ``Q = -delta_beta A`` (``A`` that of B,
so both are phases; ``g_d = FT[ln(I_d)] / 2``; the
logarithm makes the zero-frequency term exact for absorption, as in
Paganin's method). The ``alpha`` term is the homogeneous-object prior
``phi = -delta_beta * B`` (``P = Q``): it fixes the low frequencies, where
``sin(chi) -> 0`` makes phase and absorption indistinguishable, and alone
determines the solution with one distance (then this is the classical
homogeneous CTF ``P = sum_d a_d g_d / (sum_d a_d^2 + eps')`` with
``a_d = s_d + c_d / delta_beta``). With several distances the data separate
phase from absorption wherever the ``(s_d, -c_d)`` vectors are not parallel,
so objects mixing materials with different delta/beta are retrieved better.
The 2x2 normal equations are solved in closed form for all frequencies and
images at once.
"""

from __future__ import annotations

import math

import numpy as np

from .._backend import array_module
from .._model import ValidationError
from ._paganin import (batches, check_images, check_padding, crop_images, frequencies_squared,
                       pad_images, _fft_pair)
from ._phase_units import HC_EV_M, check_delta_beta, check_distance, check_energy, check_pixel_size

__all__ = ["ctf_retrieval"]


def _stack_distances(intensity, n_dist: int, where: str):
    """Accept an array (n_distances, ..., rows, cols) or a list of per-distance stacks."""
    if isinstance(intensity, (list, tuple)):
        shapes = [getattr(a, "shape", None) for a in intensity]
        if len(intensity) != n_dist:
            raise ValidationError(f"{where}: intensity must hold one stack per distance "
                                  f"({n_dist}); got {len(intensity)} stacks")
        if any(s != shapes[0] for s in shapes):
            raise ValidationError(f"{where}: the stacks per distance must share one shape "
                                  f"(..., rows, cols); got shapes {shapes}")
        xp = array_module(*intensity)
        intensity = xp.stack([xp.asarray(a) for a in intensity])
    images = check_images(intensity, where)
    if images.ndim < 3 or images.shape[0] != n_dist:
        raise ValidationError(f"{where}: intensity must be shaped (n_distances={n_dist}, ..., "
                              f"rows, cols) matching distances_m; got shape {images.shape}")
    return images


def _check_distances(distances_m, where):
    z = np.atleast_1d(np.asarray(distances_m, dtype=float))
    if z.ndim != 1 or not 1 <= z.size <= 4:
        raise ValidationError(f"{where}: distances_m must be 1-4 effective distances in "
                              f"metres; got {distances_m}")
    return [check_distance(v, where, "distances_m") for v in z]


def ctf_retrieval(intensity, *, energy_ev, distances_m, pixel_size_m, delta_beta,
                  prior_weight=0.1, regularization=1e-3, pad="edge", padded_shape=None,
                  return_absorption=False):
    """Multi-distance CTF phase retrieval with a homogeneous-object prior.

    Parameters
    ----------
    intensity : ndarray (numpy or cupy), shape (n_distances, ..., rows, cols)
        Flat-field-corrected I/I0, registered and brought to one pixel size
        (see ``register_distances`` and ``correct_magnification``); or a
        list of ``n_distances`` stacks of equal shape. Images are independent,
        so a dask array chunked along the leading (angle) axes maps with
        ``map_blocks`` (keep the distance axis in one chunk).
    energy_ev : float
        Photon energy in eV (1-100 keV).
    distances_m : sequence of float, length n_distances (1-4)
        Effective propagation distances in metres (> 0).
    pixel_size_m : float
        Effective pixel size in the sample plane, metres.
    delta_beta : float
        delta / beta of the prior material (> 0).
    prior_weight : float
        ``alpha``, weight of the homogeneous prior relative to one distance's
        data term (larger: closer to the homogeneous CTF).
    regularization : float
        ``eps``, Tikhonov ridge on phase and absorption spectra (noise).
    pad, padded_shape
        As in ``paganin`` (default edge padding to >= 2x).
    return_absorption : bool
        Also return ``B`` (``-ln`` of the transmitted amplitude).

    Returns
    -------
    phase : ndarray, shape (..., rows, cols), float32 for float32 input else float64
        Phase shift in radians (negative for matter), same device.
    absorption : ndarray, same shape (only with ``return_absorption``)
    """
    where = "ctf_retrieval"
    z = _check_distances(distances_m, where)
    images = _stack_distances(intensity, len(z), where)
    energy_ev = check_energy(energy_ev, where)
    pixel_size_m = check_pixel_size(pixel_size_m, where)
    delta_beta = check_delta_beta(delta_beta, where)
    alpha, eps = float(prior_weight), float(regularization)
    if not (alpha >= 0 and eps >= 0) or alpha + eps == 0:
        raise ValidationError(f"{where}: prior_weight and regularization must be >= 0 and not "
                              f"both 0; got {alpha}, {eps}")
    shape = images.shape[-2:]
    padded = check_padding(shape, pad, padded_shape, where)
    xp = array_module(images)
    lam = HC_EV_M / energy_ev
    f2 = frequencies_squared(padded, pixel_size_m, xp, images.dtype)
    chi = xp.stack([(math.pi * lam * zd) * f2 for zd in z])  # (n_dist, nyp, nxr)
    s, c = xp.sin(chi), xp.cos(chi)
    # Unknowns: P (phase) and Q = -delta_beta * A (the phase a homogeneous object with
    # this absorption would have), so both have the units of phase and one ridge fits.
    # Normal equations [[a11, a12], [a12, a22]] [P, Q] = [sum s g, sum c' g], c' = c / db.
    cq = c / delta_beta
    a11 = (s * s).sum(0) + alpha + eps
    a22 = (cq * cq).sum(0) + alpha + eps
    a12 = (s * cq).sum(0) - alpha
    det = a11 * a22 - a12 * a12
    # Solution coefficients per distance: P = sum_d wp_d g_d, A = -Q / db = sum_d wa_d g_d.
    wp = (a22 * s - a12 * cq) / det
    wa = -(a11 * cq - a12 * s) / (det * delta_beta)

    rfft2, irfft2 = _fft_pair(xp)
    n_dist = images.shape[0]
    lead = images.shape[1:-2]
    flat = images.reshape((n_dist, -1, *shape))
    tiny = np.finfo(flat.dtype).tiny
    phase = xp.empty(flat.shape[1:], dtype=flat.dtype)
    absorption = xp.empty_like(phase) if return_absorption else None
    for sl in batches(lead, padded, flat.dtype.itemsize, copies=n_dist):  # memory-bounded
        _retrieve_batch(flat, sl, padded, pad, wp, wa, rfft2, irfft2, shape, tiny, phase,
                        absorption, xp)
    phase = phase.reshape(images.shape[1:])
    if return_absorption:
        return phase, absorption.reshape(images.shape[1:])
    return phase


def _retrieve_batch(flat, sl, padded, pad, wp, wa, rfft2, irfft2, shape, tiny, phase,
                    absorption, xp):
    block = flat[:, sl]
    if block.shape[1] == 0:
        return
    # In log space vacuum is 0, so constant padding fills 0.
    g = 0.5 * rfft2(pad_images(xp.log(xp.maximum(block, tiny)), padded, pad, fill=0.0))
    spec_p = (wp[:, None] * g).sum(0)
    phase[sl] = crop_images(irfft2(spec_p, padded), shape)
    if absorption is not None:
        spec_a = (wa[:, None] * g).sum(0)
        absorption[sl] = crop_images(irfft2(spec_a, padded), shape)
