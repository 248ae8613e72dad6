"""Multi-distance contrast-transfer-function (CTF) phase retrieval (Cloetens et al. 1999).

For a weakly interacting object, the Fourier transform of the intensity
at an effective distance ``z_d`` is (``chi_d = pi lambda z_d |f|^2``)

    FT[I_d / I0] = delta(f) + 2 sin(chi_d) FT[phi] - 2 cos(chi_d) FT[B],

with ``phi`` the phase (radians, negative for matter) and ``B`` the
absorption (``|T| = exp(-B)``). ``ctf_retrieval`` solves, per frequency,
the Tikhonov-regularised least squares over the 1-4 distances

    min  sum_d |s_d P + (c_d / delta_beta) Q - g_d|^2 + alpha |P - Q|^2
         + eps(f) (|P|^2 + |Q|^2)

for the spectra ``P`` of phi and ``Q = -delta_beta A`` (``A`` that of B,
so both are phases; ``g_d = FT[I_d - 1] / 2``, or ``FT[ln(I_d)] / 2``, whose
zero-frequency term is exact for absorption as in Paganin's method). The ``alpha`` term is the homogeneous-object prior
``phi = -delta_beta * B`` (``P = Q``): it fixes the low frequencies, where
``sin(chi) -> 0`` makes phase and absorption indistinguishable, and alone
determines the solution with one distance (then this is the classical
homogeneous CTF ``P = sum_d a_d g_d / (sum_d a_d^2 + eps')`` with
``a_d = s_d + c_d / delta_beta``). With several distances the data separate
phase from absorption wherever the ``(s_d, -c_d)`` vectors are not parallel,
so objects mixing materials with different delta/beta are retrieved better.
``eps(f)`` rises from a weak to a strong ridge at the first CTF maximum of the
shortest distance (nabu's lim1/lim2 scheme; the defaults equal nabu's
``lim1=1e-5, lim2=0.2``). With ``prior_weight`` very large and one distance the
result agrees with nabu's ``CTFPhaseRetrieval`` to ~0.5 % (tested).
The 2x2 normal equations are solved in closed form for all frequencies and
images at once.
"""

from __future__ import annotations

import math

import numpy as np

from ..._backend import array_module
from ..._model import ValidationError
from ..._physics import HC_EV_M
from ._paganin import (batches, check_images, check_padding, crop_images, frequencies_squared,
                       pad_images, _fft_pair)
from ._units import check_delta_beta, check_distance, check_energy, check_pixel_size

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


def _check_weights(prior_weight, regularization, delta_beta: float, where: str):
    """(prior weight relative to one distance's (c / db)^2, low- and high-frequency ridge)."""
    alpha = float(prior_weight) / delta_beta ** 2
    eps_low, eps_high = (regularization, regularization) if np.ndim(regularization) == 0 \
        else tuple(regularization)
    eps_low, eps_high = float(eps_low), float(eps_high)
    if not (alpha >= 0 and eps_low > 0 and eps_high > 0):
        raise ValidationError(f"{where}: prior_weight must be >= 0 and regularization > 0 "
                              f"(a float or a (low, high) pair); got {prior_weight}, "
                              f"{regularization}")
    return alpha, eps_low, eps_high


def _ctf_weights(xp, f2, z, lam: float, delta_beta: float, alpha: float, eps_pair):
    """Per-distance Fourier weights (wp, wa), each (n_dist, nyp, nxr): phase
    ``P = sum_d wp_d g_d`` and absorption ``A = sum_d wa_d g_d`` of the contrasts g_d."""
    chi = xp.stack([(math.pi * lam * zd) * f2 for zd in z])  # (n_dist, nyp, nxr)
    s, c = xp.sin(chi), xp.cos(chi)
    eps = _ridge(f2, lam * min(z), *eps_pair, xp)
    # Unknowns: P (phase) and Q = -delta_beta * A (the phase a homogeneous object with
    # this absorption would have), so both have the units of phase and one ridge fits.
    # Normal equations [[a11, a12], [a12, a22]] [P, Q] = [sum s g, sum c' g], c' = c / db.
    cq = c / delta_beta
    a11 = (s * s).sum(0) + alpha + eps
    a22 = (cq * cq).sum(0) + alpha + eps
    a12 = (s * cq).sum(0) - alpha
    det = a11 * a22 - a12 * a12
    return (a22 * s - a12 * cq) / det, -(a11 * cq - a12 * s) / (det * delta_beta)


def ctf_retrieval(intensity, *, energy_ev, distances_m, pixel_size_m, delta_beta,
                  prior_weight=1.0, regularization=(2.5e-6, 0.05), linearization="linear",
                  pad="reflect", padded_shape=None, return_absorption=False):
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
        Weight of the homogeneous prior, ``alpha = prior_weight / delta_beta^2``:
        relative to one distance's absorption term at low frequency. Large
        values give the classical homogeneous CTF; small ones let several
        distances separate phase from absorption (mixed materials).
    regularization : float or (float, float)
        ``eps``, Tikhonov ridge on phase and absorption spectra: one value, or
        (low, high) below / above the first CTF maximum of the shortest
        distance (nabu's ``lim1`` / ``lim2`` scheme: ``eps = lim / 4`` there).
    linearization : {"linear", "log"}
        ``g_d = FT[I_d - 1] / 2`` (Cloetens, nabu) or ``FT[ln I_d] / 2``
        (exact at zero frequency for strongly absorbing objects).
    pad, padded_shape
        As in ``paganin``; default ``"reflect"`` (nabu's CTF default), which
        continues the fringes at the field borders symmetrically.
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
    alpha, eps_low, eps_high = _check_weights(prior_weight, regularization, delta_beta, where)
    shape = images.shape[-2:]
    padded = check_padding(shape, pad, padded_shape, where)
    if linearization not in ("linear", "log"):
        raise ValidationError(f"{where}: linearization must be 'linear' or 'log'; "
                              f"got {linearization!r}")
    xp = array_module(images)
    f2 = frequencies_squared(padded, pixel_size_m, xp, images.dtype)
    wp, wa = _ctf_weights(xp, f2, z, HC_EV_M / energy_ev, delta_beta, alpha,
                          (eps_low, eps_high))
    rfft2, irfft2 = _fft_pair(xp)
    n_dist = images.shape[0]
    lead = images.shape[1:-2]
    flat = images.reshape((n_dist, -1, *shape))
    tiny = np.finfo(flat.dtype).tiny
    phase = xp.empty(flat.shape[1:], dtype=flat.dtype)
    absorption = xp.empty_like(phase) if return_absorption else None
    for sl in batches(lead, padded, flat.dtype.itemsize, copies=n_dist):  # memory-bounded
        _retrieve_batch(flat, sl, padded, pad, wp, wa, rfft2, irfft2, shape, tiny, phase,
                        absorption, xp, linearization == "log")
    phase = phase.reshape(images.shape[1:])
    if return_absorption:
        return phase, absorption.reshape(images.shape[1:])
    return phase


def _ridge(f2, lam_z, low, high, xp):
    """Ridge from ``low`` to ``high`` around the first CTF maximum of the shortest distance.

    Below ``f_c = 1 / sqrt(2 lambda z_min)`` (``chi = pi / 2``) the transfer is free of
    zeros and a weak ridge keeps resolution; above it the CTF zeros of every
    distance lie, where a strong ridge stops noise and model errors from blowing up
    (nabu's ``lim1`` / ``lim2`` scheme).
    """
    if low == high:
        return low
    f = xp.sqrt(f2)
    f_c = (2.0 * lam_z) ** -0.5
    r = 0.5 * (1.0 - xp.tanh((f - f_c) / (0.1 * f_c)))
    return low * r + high * (1.0 - r)


def _retrieve_batch(flat, sl, padded, pad, wp, wa, rfft2, irfft2, shape, tiny, phase,
                    absorption, xp, use_log):
    block = flat[:, sl]
    if block.shape[1] == 0:
        return
    contrast = xp.log(xp.maximum(block, tiny)) if use_log else block - 1.0
    # Vacuum is 0 in both I - 1 and ln I, so constant padding fills 0.
    g = 0.5 * rfft2(pad_images(contrast, padded, pad, fill=0.0))
    spec_p = (wp[:, None] * g).sum(0)
    phase[sl] = crop_images(irfft2(spec_p, padded), shape)
    if absorption is not None:
        spec_a = (wa[:, None] * g).sum(0)
        absorption[sl] = crop_images(irfft2(spec_a, padded), shape)
