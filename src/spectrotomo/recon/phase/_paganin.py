"""Single-distance phase retrieval of a homogeneous object (Paganin et al. 2002).

``paganin`` returns the phase shift ``phi`` (radians, negative for matter):

    phi = (delta_beta / 2) * ln( IFFT2[ FFT2[I/I0] / (1 + pi lambda z delta_beta |f|^2) ] )

with ``f = (u, v)`` the spatial frequencies in 1/m. This is exactly the filter
of nabu's ``PaganinPhaseRetrieval`` (its ``delta_beta`` is ours; nabu returns
the filtered intensity before the logarithm). TomoPy's ``retrieve_phase``
builds ``1 / (lambda z |f|^2 / (4 pi) + alpha)`` normalized to 1 at ``f = 0``,
i.e. ``1 / (1 + lambda z |f|^2 / (4 pi alpha))``: the same filter for
``alpha = 1 / (4 pi^2 delta_beta)`` (its ``w2`` is ``|f|^2`` in cycles per length,
on a centred grid of step ``1 / ((n - 1) pixel)``, slightly off the FFT's
``1 / (n pixel)``); TomoPy also returns the filtered intensity (take
``(delta_beta / 2) * log`` to compare).

Padding: the FFT filter is a circular convolution, so each image is padded
to ``padded_shape`` (default: the next FFT-friendly size >= twice the image,
like nabu) with its edge values (``pad="edge"``, nabu's default), which keeps
the flat-field level of the borders instead of the dark step that zero
padding would create; ``"reflect"``, ``"symmetric"``, ``"zeros"`` (padding
with I/I0 = 1, i.e. vacuum) or ``None`` (no padding) are also accepted.
"""

from __future__ import annotations

import math

import numpy as np

from ..._backend import array_module
from ..._model import ValidationError
from ..._physics import HC_EV_M
from ._units import (check_delta_beta, check_distance, check_energy,
                           check_pixel_size)

__all__ = ["paganin", "paganin_filter"]

_PAD_MODES = ("edge", "reflect", "symmetric", "zeros")
_CHUNK_BYTES = 256 * 2 ** 20  # padded spectra per batch: bounds transient memory


# --------------------------------------------------------------------------- #
# shared Fourier helpers (also used by the CTF retrieval)
# --------------------------------------------------------------------------- #
def default_padded_shape(shape, pad) -> tuple[int, int]:
    """Next 2,3,5-smooth size >= 2 n per axis (or the image shape without padding)."""
    from scipy.fft import next_fast_len

    ny, nx = shape
    if pad is None:
        return int(ny), int(nx)
    return next_fast_len(2 * int(ny), real=True), next_fast_len(2 * int(nx), real=True)


def check_images(images, where: str, name: str = "intensity"):
    """Check an image stack (..., rows, cols) of finite real values; return it as float."""
    xp = array_module(images)
    images = xp.asarray(images)
    if images.ndim < 2 or 0 in images.shape:
        raise ValidationError(f"{where}: {name} must be a non-empty stack shaped "
                              f"(..., rows, cols); got shape {images.shape}")
    # numpy's dtype predicates also serve cupy arrays (their dtypes are numpy dtypes).
    if not (np.issubdtype(images.dtype, np.floating) or np.issubdtype(images.dtype, np.integer)):
        raise ValidationError(f"{where}: {name} must be real (I/I0); got dtype {images.dtype}")
    if images.dtype != np.float32:
        images = images.astype(xp.float64)
    return images


def check_padding(shape, pad, padded_shape, where: str) -> tuple[int, int]:
    if pad is not None and pad not in _PAD_MODES:
        raise ValidationError(f"{where}: pad must be one of {_PAD_MODES} or None; got {pad!r}")
    padded = default_padded_shape(shape, pad) if padded_shape is None else tuple(
        int(n) for n in padded_shape)
    if len(padded) != 2 or padded[0] < shape[0] or padded[1] < shape[1]:
        raise ValidationError(f"{where}: padded_shape must be 2 sizes >= the image shape "
                              f"{tuple(shape)}; got {padded_shape}")
    return padded


def frequencies_squared(padded_shape, pixel_size_m, xp, dtype):
    """|f|^2 in 1/m^2 on the half-spectrum (rfft2) grid, shape (nyp, nxp // 2 + 1)."""
    nyp, nxp = padded_shape
    fy = xp.fft.fftfreq(nyp, d=pixel_size_m).astype(dtype)
    fx = xp.fft.rfftfreq(nxp, d=pixel_size_m).astype(dtype)
    return fy[:, None] ** 2 + fx[None, :] ** 2


def _fft_pair(xp):
    if xp is np:
        import scipy.fft as sfft

        return (lambda a: sfft.rfft2(a, axes=(-2, -1), workers=-1),
                lambda a, s: sfft.irfft2(a, s=s, axes=(-2, -1), workers=-1))
    return (lambda a: xp.fft.rfft2(a, axes=(-2, -1)),
            lambda a, s: xp.fft.irfft2(a, s=s, axes=(-2, -1)))


def pad_images(images, padded_shape, pad, fill=1.0):
    """Pad the last two axes to ``padded_shape``, the image centred as in nabu.

    ``pad="zeros"`` (or None with a larger ``padded_shape``) fills ``fill``:
    the vacuum value, 1 for I/I0 and 0 for its logarithm.
    """
    xp = array_module(images)
    ny, nx = images.shape[-2:]
    nyp, nxp = padded_shape
    if (nyp, nxp) == (ny, nx):
        return images
    top, left = (nyp - ny) // 2, (nxp - nx) // 2
    widths = [(0, 0)] * (images.ndim - 2) + [(top, nyp - ny - top), (left, nxp - nx - left)]
    if pad in (None, "zeros"):
        return xp.pad(images, widths, mode="constant", constant_values=fill)
    return xp.pad(images, widths, mode=pad)


def crop_images(padded, shape):
    nyp, nxp = padded.shape[-2:]
    ny, nx = shape
    top, left = (nyp - ny) // 2, (nxp - nx) // 2
    return padded[..., top:top + ny, left:left + nx]


def batches(lead_shape, padded_shape, itemsize: int, copies: int = 1):
    """Slices over the flattened leading axes so one batch's spectra fit _CHUNK_BYTES.

    ``copies`` images (e.g. one per distance) share each slice index.
    """
    n = int(np.prod(lead_shape, dtype=np.int64)) if len(lead_shape) else 1
    per_image = copies * padded_shape[0] * (padded_shape[1] // 2 + 1) * 2 * itemsize
    step = max(1, _CHUNK_BYTES // max(per_image, 1))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


# --------------------------------------------------------------------------- #
# Paganin
# --------------------------------------------------------------------------- #
def paganin_filter(padded_shape, *, energy_ev, distance_m, pixel_size_m, delta_beta, xp=np,
                   dtype=np.float64):
    """The Paganin low-pass ``1 / (1 + pi lambda z delta_beta |f|^2)`` on the rfft2 grid.

    Returns
    -------
    ndarray, shape (nyp, nxp // 2 + 1), dtype ``dtype``
    """
    lam = HC_EV_M / energy_ev
    f2 = frequencies_squared(padded_shape, pixel_size_m, xp, dtype)
    return 1.0 / (1.0 + (math.pi * lam * distance_m * delta_beta) * f2)


def paganin(intensity, *, energy_ev, distance_m, pixel_size_m, delta_beta, pad="edge",
            padded_shape=None):
    """Paganin phase retrieval of flat-field-corrected images.

    Parameters
    ----------
    intensity : ndarray (numpy or cupy), shape (..., rows, cols), float
        Normalized intensity I/I0 (1 = no sample). Leading axes (angles,
        energies, ...) are processed as one batch; the function is local to
        each image, so a dask array chunked along leading axes can be mapped
        with ``map_blocks``.
    energy_ev : float
        Photon energy in eV (1-100 keV).
    distance_m : float
        Effective propagation distance in metres (> 0); for a divergent
        beam use ``effective_geometry``.
    pixel_size_m : float
        Effective pixel size in the sample plane in metres (<= 1e-3).
    delta_beta : float
        Ratio delta / beta of the (assumed homogeneous) material; nabu's
        ``delta_beta``; TomoPy's ``alpha = 1 / (4 pi^2 delta_beta)``.
    pad : {"edge", "reflect", "symmetric", "zeros", None}
        Padding mode of each image before the FFT (see module notes).
    padded_shape : (int, int), optional
        FFT size; default the next 2,3,5-smooth size >= 2 x the image.

    Returns
    -------
    ndarray, shape like ``intensity``, float32 for float32 input else float64
        Phase shift in radians (negative for matter), same device as input.
        Filtered intensities <= 0 (possible with noise) are clipped to the
        smallest positive float before the logarithm.
    """
    where = "paganin"
    images = check_images(intensity, where)
    energy_ev = check_energy(energy_ev, where)
    distance_m = check_distance(distance_m, where)
    pixel_size_m = check_pixel_size(pixel_size_m, where)
    delta_beta = check_delta_beta(delta_beta, where)
    padded = check_padding(images.shape[-2:], pad, padded_shape, where)
    xp = array_module(images)
    filt = paganin_filter(padded, energy_ev=energy_ev, distance_m=distance_m,
                          pixel_size_m=pixel_size_m, delta_beta=delta_beta, xp=xp,
                          dtype=images.dtype)
    filtered = apply_fourier_filter(images, filt, padded, pad)
    tiny = np.finfo(filtered.dtype).tiny
    return (0.5 * delta_beta) * xp.log(xp.maximum(filtered, tiny))


def apply_fourier_filter(images, filt, padded_shape, pad):
    """Pad, multiply the rfft2 spectrum by ``filt`` (broadcast), inverse, crop."""
    xp = array_module(images)
    rfft2, irfft2 = _fft_pair(xp)
    shape = images.shape[-2:]
    lead = images.shape[:-2]
    flat = images.reshape((-1, *shape))
    out = xp.empty_like(flat)
    for sl in batches(lead, padded_shape, flat.dtype.itemsize):  # memory-bounded batches
        spec = rfft2(pad_images(flat[sl], padded_shape, pad))
        spec *= filt
        out[sl] = crop_images(irfft2(spec, padded_shape), shape)
    return out.reshape(images.shape)
