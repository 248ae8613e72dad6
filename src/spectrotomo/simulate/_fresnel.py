"""Fresnel (near-field) propagation and holotomography intensities.

Deliberately independent of ``spectrotomo.recon``: the exact propagator
``exp(-i pi lambda z |f|^2)`` (paraxial transfer function, the
``exp(i k z)`` phase dropped) is applied with complex FFTs; retrieval code
uses linearised models of it.

Wave convention: ``n = 1 - delta + i beta``; a projected object multiplies
the wave by ``exp(-i k D - k Bt)`` with ``k = 2 pi / lambda``, ``D`` and
``Bt`` the projected delta and beta (line integrals in metres).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .._physics import HC_EV_M

__all__ = ["fresnel_propagate", "holotomo_series"]



def _check(energy_ev, pixel_size_m, where):
    e, p = float(energy_ev), float(pixel_size_m)
    if not np.isfinite(e) or not 1e3 <= e <= 1e5:
        raise ValueError(f"{where}: energy_ev must be in [1000, 100000] eV; got {e}")
    if not np.isfinite(p) or p <= 0:
        raise ValueError(f"{where}: pixel_size_m must be a positive size in metres; got {p}")
    if p > 1e-3:
        raise ValueError(f"{where}: pixel_size_m must be in metres and <= 1e-3; got {p} "
                         f"(hint: 20 nm is 2e-8 m; did you pass nm or um?)")
    return e, p


def fresnel_propagate(wave, *, energy_ev, distance_m, pixel_size_m, pad="edge",
                      pad_factor=2):
    """Propagate a complex wave field over ``distance_m`` in free space.

    Parameters
    ----------
    wave : ndarray (numpy or cupy), shape (..., rows, cols), complex
        Wave field in the exit plane, sampled at ``pixel_size_m``; leading
        axes are propagated as one batch.
    energy_ev : float
        Photon energy in eV (1-100 keV).
    distance_m : float
        Propagation distance in metres; negative back-propagates.
    pixel_size_m : float
        Sampling in metres.
    pad : {"edge", "constant", None}
        Field extension before the FFT: edge values (``"edge"``), unit
        amplitude vacuum (``"constant"``) or none (``None``: periodic field,
        exactly unitary, so +z then -z is the identity).
    pad_factor : int
        Padded size = ``pad_factor`` x the field size per axis.

    Returns
    -------
    ndarray, shape like ``wave``, complex128 (complex64 for complex64 input)
    """
    from .._backend import array_module

    energy_ev, pixel_size_m = _check(energy_ev, pixel_size_m, "fresnel_propagate")
    z = float(distance_m)
    if not np.isfinite(z):
        raise ValueError(f"fresnel_propagate: distance_m must be finite metres; got {z}")
    xp = array_module(wave)
    wave = xp.asarray(wave)
    cdtype = xp.complex64 if wave.dtype == xp.complex64 else xp.complex128
    wave = wave.astype(cdtype, copy=False)
    ny, nx = wave.shape[-2:]
    if pad is None:
        padded = wave
    else:
        f = int(pad_factor)
        py, px = (f - 1) * ny, (f - 1) * nx
        widths = [(0, 0)] * (wave.ndim - 2) + [(py // 2, py - py // 2), (px // 2, px - px // 2)]
        padded = (xp.pad(wave, widths, mode="edge") if pad == "edge" else
                  xp.pad(wave, widths, mode="constant", constant_values=1.0))
    nyp, nxp = padded.shape[-2:]
    lam = HC_EV_M / energy_ev
    fy = xp.fft.fftfreq(nyp, d=pixel_size_m)
    fx = xp.fft.fftfreq(nxp, d=pixel_size_m)
    chi = (math.pi * lam * z) * (fy[:, None] ** 2 + fx[None, :] ** 2)
    kernel = xp.exp(-1j * chi).astype(cdtype)
    out = xp.fft.ifft2(xp.fft.fft2(padded, axes=(-2, -1)) * kernel, axes=(-2, -1))
    if pad is not None:
        out = out[..., py // 2:py // 2 + ny, px // 2:px // 2 + nx]
    return out.astype(cdtype, copy=False)


def _zoom_about_centre(images, zoom, order=3):
    """Magnify the last two axes by ``zoom`` about the image centre, same shape."""
    ny, nx = images.shape[-2:]
    c = np.array([(ny - 1) / 2, (nx - 1) / 2])
    lead = images.ndim - 2
    matrix = np.ones(images.ndim)
    matrix[lead:] = 1.0 / zoom
    offset = np.zeros(images.ndim)
    offset[lead:] = c - c / zoom
    return ndimage.affine_transform(images, matrix, offset=offset, order=order, mode="nearest")


def holotomo_series(delta_proj, beta_proj, *, energy_ev, distances_m, pixel_size_m,
                    angles=None, photons=None, seed=0, source_to_sample_m=None,
                    shifts_px=None, pad_factor=2):
    """Holotomography intensities I/I0 at 1-4 propagation distances.

    Parameters
    ----------
    delta_proj, beta_proj : ndarray, shape (n_angles, rows, cols) or (rows, cols)
        Projected delta and beta: line integrals in metres (e.g.
        ``simulate.project(delta_volume, angles) * voxel_size_m``). The
        object should lie inside the field with vacuum at the borders.
    energy_ev : float
        Photon energy in eV.
    distances_m : sequence of float, length 1-4
        Sample-to-detector distances in metres (> 0). For a parallel beam
        these are the propagation distances; with ``source_to_sample_m``
        the Fresnel scaling theorem gives ``z_eff = z1 z2 / (z1 + z2)``.
    pixel_size_m : float
        Object grid sampling in metres (sample plane). With a divergent
        beam the first distance's image has this sampling and the others
        are magnified by ``M_d / M_0`` (same detector pixel).
    angles : sequence of float, optional
        Tilt angles in degrees (default ``0..n_angles-1``), stored as coords.
    photons : float, optional
        Mean photons per pixel of the flat field; Poisson noise if given.
    seed : int
        Seed of the noise.
    source_to_sample_m : float, optional
        Point-source distance ``z1`` in metres (divergent beam).
    shifts_px : array_like, shape (n_distances, 2), optional
        (dy, dx) detector shift of each distance's images in pixels.
    pad_factor : int
        Field padding for the propagation (vacuum outside the field).

    Returns
    -------
    xarray.Dataset
        ``projections`` (energy=1, distance, angle, y, x) float32 I/I0 valid
        per ``spectrotomo.validate_tilt_series`` (pixel_size attr in nm is
        that of the object grid); ground truth ``true_phase`` (angle, y, x)
        radians and ``true_absorption`` (angle, y, x) ``k * beta_proj``;
        coords ``effective_distance`` (m) and ``magnification``;
        ``true_shift`` (distance, 2) px.
    """
    import xarray as xr

    from .._model import tilt_series

    energy_ev, pixel_size_m = _check(energy_ev, pixel_size_m, "holotomo_series")
    delta_proj, beta_proj = _projections(delta_proj, beta_proj)
    z2, mag, shifts = _distances(distances_m, source_to_sample_m, shifts_px)
    z_eff = z2 / mag
    n_angles = delta_proj.shape[0]
    angles = np.arange(n_angles, dtype=float) if angles is None else np.asarray(angles, float)

    k = 2 * math.pi * energy_ev / HC_EV_M
    phase, absorption = -k * delta_proj, k * beta_proj
    stack = _intensities(np.exp(1j * phase - absorption), energy_ev=energy_ev, z_eff=z_eff,
                         mag=mag, shifts=shifts, pixel_size_m=pixel_size_m, pad_factor=pad_factor)
    if photons is not None:
        rng = np.random.default_rng(seed)
        stack = (rng.poisson(np.clip(stack, 0, None) * float(photons)) / float(photons))
        stack = stack.astype(np.float32)
    attrs = {"synthetic": True, "pixel_size_m": pixel_size_m}
    if source_to_sample_m is not None:  # absent attr = parallel beam (zarr has no None)
        attrs["source_to_sample_m"] = float(source_to_sample_m)
    ds = tilt_series(stack[None], angles=angles, energies=[energy_ev],
                     pixel_size=pixel_size_m * 1e9, distances=z2, attrs=attrs)
    ds = ds.assign_coords(effective_distance=("distance", z_eff, {"units": "m"}),
                          magnification=("distance", mag, {"units": "1"}))
    ds["true_phase"] = xr.DataArray(phase.astype(np.float32), dims=("angle", "y", "x"),
                                    attrs={"units": "rad"})
    ds["true_absorption"] = xr.DataArray(absorption.astype(np.float32), dims=("angle", "y", "x"),
                                         attrs={"units": "1", "long_name": "k * beta_proj"})
    ds["true_shift"] = xr.DataArray(shifts, dims=("distance", "axis"), attrs={"units": "px"})
    return ds


def _projections(delta_proj, beta_proj):
    """Projected delta and beta as float arrays (n_angles, rows, cols)."""
    delta_proj, beta_proj = np.asarray(delta_proj, float), np.asarray(beta_proj, float)
    if delta_proj.shape != beta_proj.shape or delta_proj.ndim not in (2, 3):
        raise ValueError(f"holotomo_series: delta_proj and beta_proj must share a shape (n_angles, "
                         f"rows, cols); got {delta_proj.shape} and {beta_proj.shape}")
    if delta_proj.ndim == 2:
        delta_proj, beta_proj = delta_proj[None], beta_proj[None]
    return delta_proj, beta_proj


def _distances(distances_m, source_to_sample_m, shifts_px):
    """Sample-detector distances (m), magnifications and detector shifts (n_distances, 2) px."""
    where = "holotomo_series"
    z2 = np.atleast_1d(np.asarray(distances_m, dtype=float))
    if z2.ndim != 1 or not 1 <= z2.size <= 4 or np.any(~np.isfinite(z2)) or np.any(z2 <= 0):
        raise ValueError(f"{where}: distances_m must be 1-4 distances > 0 in metres; got {z2}")
    if source_to_sample_m is None:
        mag = np.ones_like(z2)
    else:
        z1 = float(source_to_sample_m)
        if not np.isfinite(z1) or z1 <= 0:
            raise ValueError(f"{where}: source_to_sample_m must be > 0 metres; got {z1}")
        mag = (z1 + z2) / z1
    shifts = np.zeros((z2.size, 2)) if shifts_px is None else np.asarray(shifts_px, float)
    if shifts.shape != (z2.size, 2):
        raise ValueError(f"{where}: shifts_px must have shape ({z2.size}, 2); got {shifts.shape}")
    return z2, mag, shifts


def _intensities(exit_wave, *, energy_ev, z_eff, mag, shifts, pixel_size_m, pad_factor):
    """Noise-free I/I0 (n_distances, n_angles, rows, cols) float32 of each distance's image."""
    stack = np.empty((z_eff.size, *exit_wave.shape), dtype=np.float32)
    for i, z in enumerate(z_eff):  # 1-4 distances
        inten = np.abs(fresnel_propagate(exit_wave, energy_ev=energy_ev, distance_m=z,
                                         pixel_size_m=pixel_size_m, pad="constant",
                                         pad_factor=pad_factor)) ** 2
        if mag[i] != mag[0]:
            inten = _zoom_about_centre(inten, mag[i] / mag[0])
        if np.any(shifts[i] != 0):
            inten = ndimage.shift(inten, (0, *shifts[i]), order=3, mode="nearest")
        stack[i] = inten
    return stack
