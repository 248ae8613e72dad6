"""Registration of the images of one angle across energies: translation + scale.

Zone-plate optics change magnification with energy and the stage drifts, so
image ``e`` relates to the reference image ``r`` by

    image_e(c + s_e * (q - c) + d_e) = image_r(q),

``c = ((ny - 1) / 2, (nx - 1) / 2)`` the detector centre, ``s_e`` the
magnification and ``d_e = (dy, dx)`` the displacement in pixels -- the same
model as ``simulate.tilt_series`` (its ``true_scale`` / ``true_energy_shift``
relative to the reference energy). The magnification comes from pixel-size
metadata when given, else from the Fourier-Mellin transform; translation from
phase correlation; then all parameters are refined together by Gauss-Newton
against an intensity model (details in ``_register_fit``):

- ``"intensity"``: one gain and offset per energy (best when contrast is shared);
- ``"outline"``: a gain that varies with the depth below the particle outline
  (constant in the outer ``band_px``): contrast changes of a surface shell
  across an absorption edge, which look like a magnification to the intensity
  model, are absorbed and the particle's support boundary fixes the scale;
- ``"auto"`` (default): per energy, the outline model where a depth-dependent
  gain explains the image significantly better (chi-square test), else the
  intensity model.

Measured accuracy (``simulate`` particle, 2e4 photons, 1 % random
magnification, reference = lowest energy; small 64 px seeds 3-5 / demo 128 px
seed 3; gpu_bench/RESULTS.prep.md, 2026-12-01), "auto", small / demo: shared
contrast and the Co / Ni edge pairs <= 0.03 %; O pair 0.02 / 0.11 % (the
intensity model 0.33 / 0.22 %); Mn pair 0.17 / 0.05 %; the 25-energy Mn L scan
0.62 / 0.40 % (intensity 3.3 / 2.5 %): the white lines change the contrast of the
reduced surface shell (1.5-3 px), which a magnification mimics at 20 nm
pixels. A joint low-rank spectral model does not help: a magnification error
proportional to a component's coefficient is absorbed by that component's
map (gpu_bench/diagnostics/register_lowrank_probe.py). Use a reference below the edge:
against a white-line image the error is 1.0 / 7.5 %. Several angles (4-D
input) average the angle-dependent part. Translations stay < 0.05 px. Give
``pixel_sizes`` when the optics' magnification per energy is known, or
``scale_model="linear"`` when it follows a law linear in energy (zone-plate
refocusing): the XANES bias then drops to 0.06-0.15 % (small) and
0.02-0.05 % (demo) (gpu_bench/diagnostics/register_law.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..._backend import array_module, to_numpy
from ..._model import ValidationError
from ._register_fit import (depth_gain_basis, depth_gain_significant, fourier_mellin_scale,
                            gauss_newton, ndimage_module, outline_depth, warp)
from ._shift import phase_correlate

__all__ = ["register_energies", "EnergyRegistration", "warp"]

_MODELS = ("auto", "intensity", "outline")
_OUTLINE_BLUR_PX = 0.7  # Gaussian sigma of the outline pass, px


@dataclass
class EnergyRegistration:
    """Result of :func:`register_energies` (all arrays numpy, per energy).

    Attributes
    ----------
    shifts : ndarray, shape (n_energies, 2)
        Displacement (dy, dx) of each image vs the reference, pixels.
    scales : ndarray, shape (n_energies,)
        Magnification of each image vs the reference (1 = same).
    residual_px : ndarray, shape (n_energies,)
        Remaining displacement after registration, measured by phase
        correlation of the registered image against the reference, pixels.
    residual_rms : ndarray, shape (n_energies,)
        RMS intensity misfit after gain/offset matching, relative to the
        reference's RMS contrast.
    reference : int
        Index of the reference energy.
    scale_source : str
        "metadata", "estimated" or "fixed".
    scale_model : str
        "free" (one scale per energy) or "linear" (estimated scales replaced
        by ``s_ref (1 + k (E - E_ref))``, one slope ``k`` per eV).
    scale_slope_per_ev : float
        ``k`` of the linear law (NaN for "free").
    models : list of str
        Intensity model used per energy ("intensity" or "outline").
    angle_indices : ndarray of int, shape (n_used,)
        Angles the estimate was made at (4-D input; empty for 3-D input).
    scales_per_angle, shifts_per_angle : ndarray, shapes (n_used, n_energies), (n_used, n_energies, 2)
        Estimates at each of those angles; ``scales`` / ``shifts`` are their medians.
    """

    shifts: np.ndarray
    scales: np.ndarray
    residual_px: np.ndarray
    residual_rms: np.ndarray
    reference: int
    scale_source: str
    models: list = field(default_factory=list)
    scale_model: str = "free"
    scale_slope_per_ev: float = float("nan")
    angle_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    scales_per_angle: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    shifts_per_angle: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 2)))

    def summary(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(self).items()}


def _estimate(xp, imgs, ref, initial_scales, fit_scale, *, model, band_px, iterations, margin):
    """(scales, shifts, models, margin) for one angle: imgs (n, ny, nx) float64."""
    n, ny, nx = imgs.shape
    scales = initial_scales
    shifts = phase_correlate(imgs[ref], warp(imgs, scales, np.zeros((n, 2)), order=1),
                             upsample=10, whiten=0.5)
    shifts = shifts * scales[:, None]  # warped image is the reference displaced by d / s
    margin = int(4 + np.ceil(np.abs(shifts).max())) if margin is None else int(margin)
    inner = np.zeros((ny, nx), bool)
    inner[margin:ny - margin, margin:nx - margin] = True
    kw = dict(fit_scale=fit_scale, iterations=iterations, inner=inner)
    scales, shifts, _ = gauss_newton(xp, imgs, ref, scales, shifts, basis=imgs[ref][None], **kw)
    models = ["intensity"] * n
    depth = outline_depth(imgs[ref]) if fit_scale and model != "intensity" and n > 1 else None
    if depth is None:
        return scales, shifts, models, margin
    use = np.ones(n, bool)
    if model == "auto":
        use = depth_gain_significant(xp, imgs, scales, shifts, inner, imgs[ref], depth, band_px)
        use[ref] = False
    if use.any():
        # The reference is a noisy regressor: a light blur of every image (the
        # same blur, so the model still holds) keeps its noise from biasing the
        # outer-band gain, which the scale then compensates.
        soft = ndimage_module(xp).gaussian_filter(imgs, (0, _OUTLINE_BLUR_PX, _OUTLINE_BLUR_PX))
        basis = depth_gain_basis(xp, soft[ref], depth, band_px)
        s_o, d_o, _ = gauss_newton(xp, soft, ref, scales, shifts, basis=basis, **kw)
        scales, shifts = np.where(use, s_o, scales), np.where(use[:, None], d_o, shifts)
        models = ["outline" if u else "intensity" for u in use]
    return scales, shifts, models, margin


def _residuals(xp, registered, ref, margin):
    """Phase-correlation residual (px) and relative RMS misfit per energy."""
    residual = phase_correlate(registered[ref], registered, upsample=40, whiten=0.5)
    inner = (slice(None), slice(margin, -margin), slice(margin, -margin))
    target = registered[ref][inner[1:]]
    reg = registered[inner]
    dev = reg - reg.mean((1, 2), keepdims=True)
    a = (dev * (target - target.mean())).mean((1, 2)) / xp.maximum(reg.var((1, 2)), 1e-30)
    fit = a[:, None, None] * dev + target.mean()
    rms = to_numpy(xp.sqrt(((fit - target) ** 2).mean((1, 2))) / xp.maximum(target.std(), 1e-30))
    return np.hypot(residual[:, 0], residual[:, 1]), rms


def _check_options(n, reference, pixel_sizes, model, band_px, max_angles):
    ref = n // 2 if reference is None else int(reference)
    if not 0 <= ref < n:
        raise ValidationError(f"register_energies: reference must be in [0, {n - 1}]; got {reference}")
    if model not in _MODELS:
        raise ValidationError(f"register_energies: model must be one of {_MODELS}; got {model!r}")
    if not (np.isfinite(band_px) and band_px > 0):
        raise ValidationError(f"register_energies: band_px must be > 0 px; got {band_px}")
    if int(max_angles) < 1:
        raise ValidationError(f"register_energies: max_angles must be >= 1; got {max_angles}")
    if pixel_sizes is None:
        return ref, None
    ps = np.asarray(pixel_sizes, dtype=float).ravel()
    if ps.shape != (n,) or not np.all(np.isfinite(ps) & (ps > 0)):
        raise ValidationError(f"register_energies: pixel_sizes must be {n} positive numbers "
                              f"of nm; got {pixel_sizes!r}")
    return ref, ps[ref] / ps


def _check_law(n, scale_model, energies):
    if scale_model not in ("free", "linear"):
        raise ValidationError("register_energies: scale_model must be 'free' or 'linear'; got "
                              f"{scale_model!r}")
    if scale_model == "free":
        return None
    e = np.asarray(energies if energies is not None else [], dtype=float).ravel()
    if e.shape != (n,) or not np.all(np.isfinite(e)) or np.ptp(e) <= 0:
        raise ValidationError(f"register_energies: scale_model 'linear' needs energies: {n} "
                              f"finite photon energies in eV, not all equal; got {energies!r}")
    return e


def _linear_law(scales, energies, ref, iterations: int = 20):
    """Scales on ``s_ref (1 + k (E - E_ref))`` and ``k`` (1/eV): Tukey-biweight
    regression (IRLS from the median slope), so the energies whose free estimate
    the white lines bias most weigh least (max error on the simulated Mn L scan
    0.06-0.15 % vs 0.08-0.16 % by least squares)."""
    x = energies - energies[ref]
    rel = scales / scales[ref] - 1.0
    off = x != 0
    k = float(np.median(rel[off] / x[off]))
    for _ in range(iterations):
        r = rel - k * x
        u = r / (4.685 * 1.4826 * max(float(np.median(np.abs(r[off]))), 1e-12))
        w = np.where(np.abs(u) < 1.0, (1.0 - u ** 2) ** 2, 0.0)
        k = float((w * x * rel).sum() / max(float((w * x * x).sum()), 1e-300))
    return scales[ref] * (1.0 + k * x), k


def _is_dask(a) -> bool:
    return type(a).__module__.startswith("dask.")


def register_energies(images, *, reference: int | None = None, pixel_sizes=None,
                      estimate_scale: bool = True, model: str = "auto", band_px: float = 2.0,
                      max_angles: int = 5, iterations: int = 30, margin: int | None = None,
                      scale_model: str = "free", energies=None):
    """Register images across energies (translation + scale).

    Parameters
    ----------
    images : array, shape (n_energies, ny, nx) or (n_energies, n_angles, ny, nx)
        Optical density (or transmission), numpy, cupy, dask or an
        ``xarray.DataArray`` (energy first) wrapping one. With angles, one
        (scale, shift) per energy is estimated at up to ``max_angles`` evenly
        spaced angles (median) and applied to every angle; a dask array then
        reads only those angles and the result stays lazy (chunk it along
        angles; energy, y and x are merged into single chunks).
    reference : int, optional
        Index of the reference energy (default: the middle one). For a scan
        across an absorption edge pick one below it: its contrast has no
        white line for the models to mistake for a magnification.
    pixel_sizes : array_like, shape (n_energies,), optional
        Pixel size in the sample plane per energy, nm; fixes the
        magnification ``s_e = pixel_sizes[ref] / pixel_sizes[e]``.
    estimate_scale : bool
        Without ``pixel_sizes``: estimate the magnification (True) or assume
        1 (False).
    model : {"auto", "intensity", "outline"}
        Intensity model of the scale fit (see the module notes): one gain per
        energy, a gain varying with depth below the particle outline, or
        chosen per energy by a chi-square test.
    band_px : float
        Outer band below the outline (px) where the outline model keeps the
        gain constant; about the thickness of the outermost uniform shell.
    max_angles : int
        Angles used for the estimate with 4-D input.
    iterations : int
        Gauss-Newton iterations at most (per pass).
    margin : int, optional
        Border pixels excluded from the fit (default 4 + largest coarse shift).
    scale_model : {"free", "linear"}
        With estimated scales: one per energy ("free"), or a magnification
        linear in energy through the reference, ``s_e = 1 + k (E_e - E_ref)``
        (zone-plate optics refocused at each energy), ``k`` fitted robustly
        (Tukey biweight) to the free estimates and the shifts refitted under it. Across
        an edge the free estimates carry a chemistry bias that follows the
        white lines; the law averages it over the scan (measured on the
        simulated Mn L XANES with a linear magnification: see RESULTS.prep.md).
    energies : array_like, shape (n_energies,), optional
        Photon energies, eV, for ``scale_model="linear"`` (default: the
        ``energy`` coordinate of an ``xarray.DataArray`` input).

    Returns
    -------
    registered : array, same shape as ``images``, float64
        Every image resampled onto the reference geometry (same device; lazy
        for dask; a DataArray with the input's coordinates for xarray).
    result : EnergyRegistration
        Shifts (px), scales, residual misalignment per energy (px, RMS), the
        model used per energy and, with angles, the per-angle estimates.

    Notes
    -----
    Memory: the Gauss-Newton fits run ``_register_fit.GN_BATCH`` (8)
    energies at a time and the phase correlations in ~256 MiB batches, so
    the work arrays stay ~55 bytes per pixel and energy on large frames
    (131 before, measured on 25 x 256^2), on top of the input and the
    float64 output.
    """
    options = dict(reference=reference, pixel_sizes=pixel_sizes, estimate_scale=estimate_scale,
                   model=model, band_px=band_px, max_angles=max_angles, iterations=iterations,
                   margin=margin, scale_model=scale_model, energies=energies)
    if hasattr(images, "dims") and hasattr(images, "coords"):  # xarray.DataArray
        if energies is None and "energy" in images.coords:
            options["energies"] = images["energy"].values
        registered, result = register_energies(images.data, **options)
        return images.copy(data=registered), result
    result = estimate_energy_registration(images, **options)
    return _apply(images, result.scales, result.shifts), result


def estimate_energy_registration(images, *, reference: int | None = None, pixel_sizes=None,
                                 estimate_scale: bool = True, model: str = "auto",
                                 band_px: float = 2.0, max_angles: int = 5,
                                 iterations: int = 30, margin: int | None = None,
                                 scale_model: str = "free", energies=None):
    """The estimate of :func:`register_energies` without resampling the images.

    Same parameters and the same :class:`EnergyRegistration`; apply it with
    :func:`warp` (``warp(images, result.scales, result.shifts)``), e.g. energy by
    energy in place, where the float64 copy of every image that
    :func:`register_energies` returns would not fit (a 2D XANES scan of a full
    detector).
    """
    if hasattr(images, "dims") and hasattr(images, "coords"):  # xarray.DataArray
        if energies is None and "energy" in images.coords:
            energies = images["energy"].values
        images = images.data
    if images.ndim not in (3, 4) or 0 in images.shape:
        raise ValidationError("register_energies: images must be (n_energies, ny, nx) or "
                              f"(n_energies, n_angles, ny, nx); got shape {images.shape}")
    n = images.shape[0]
    ref, meta_scales = _check_options(n, reference, pixel_sizes, model, band_px, max_angles)
    energies = _check_law(n, scale_model, energies)
    picks, stacks = _registration_stacks(images, max_angles)
    xp = array_module(stacks)
    stacks = xp.asarray(stacks, dtype=np.float64)
    if not bool(xp.isfinite(stacks).all()):
        raise ValidationError("register_energies: images contain NaN/inf; normalize first")
    if meta_scales is not None:
        source, fit_scale = "metadata", False
    else:
        source, fit_scale = ("estimated", True) if estimate_scale else ("fixed", False)
    fit = dict(model=model, band_px=band_px, iterations=iterations, margin=margin)
    per_s, per_d, models, margins = [], [], [], []
    for imgs in stacks:  # a few angles at most (max_angles)
        init = (meta_scales if meta_scales is not None else
                fourier_mellin_scale(xp, imgs, ref) if fit_scale else np.ones(n))
        s, d, m, mg = _estimate(xp, imgs, ref, init, fit_scale, **fit)
        per_s.append(s), per_d.append(d), models.append(m), margins.append(mg)
    scales = np.median(per_s, axis=0)
    shifts = np.median(per_d, axis=0)
    slope = float("nan")
    if scale_model == "linear" and fit_scale:
        scales, slope = _linear_law(scales, energies, ref)
        per_d = [_estimate(xp, imgs, ref, scales, False, **fit)[1] for imgs in stacks]
        shifts = np.median(per_d, axis=0)
    scales[ref], shifts[ref] = (meta_scales[ref] if meta_scales is not None else 1.0), 0.0
    mid = len(stacks) // 2
    res_px, res_rms = _residuals(xp, warp(stacks[mid], scales, shifts), ref, max(margins))
    result = EnergyRegistration(
        shifts=shifts, scales=scales, residual_px=res_px, residual_rms=res_rms, reference=ref,
        scale_source=source, models=models[mid],
        scale_model=scale_model if fit_scale else "free", scale_slope_per_ev=slope,
        angle_indices=np.zeros(0, int) if picks is None else picks,
        scales_per_angle=np.array(per_s) if picks is not None else np.zeros((0, n)),
        shifts_per_angle=np.array(per_d) if picks is not None else np.zeros((0, n, 2)))
    return result


def _registration_stacks(images, max_angles):
    """The angle indices used (None for 2-D frames) and the (k, n_energies, ny, nx)
    stacks registered: at most ``max_angles`` angles spread over the series."""
    if images.ndim == 3:
        return None, images[None] if not _is_dask(images) else np.asarray(images)[None]
    picks = np.unique(np.linspace(0, images.shape[1] - 1, min(int(max_angles),
                                                              images.shape[1])).round().astype(int))
    stacks = images[:, picks].transpose(1, 0, 2, 3)
    return picks, np.asarray(stacks) if _is_dask(stacks) else stacks


def _apply(images, scales, shifts):
    """Warp every image (and angle) with its energy's transform; lazy for dask."""
    if not _is_dask(images):
        xp = array_module(images)
        return warp(xp.asarray(images), scales, shifts)
    one = {0: -1, images.ndim - 2: -1, images.ndim - 1: -1}
    return images.rechunk(one).map_blocks(warp, scales, shifts, dtype=np.float64)
