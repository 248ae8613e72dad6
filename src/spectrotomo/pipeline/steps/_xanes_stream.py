"""The valence step's 2D XANES scan with bounded memory: read energy by energy,
register on a bounded stack, warp in place.

A measured 2D XANES scan is tens to hundreds of energies of a full detector frame
(e.g. 150 x 2048^2). The step used to load the whole ``raw_xanes`` group (raw
frames, every flat and dark: ~24 B per pixel and energy), normalise it in one call
and register it with :func:`~spectrotomo.recon.prep.register_energies`, whose
float64 stacks, work arrays and float64 output cost another ~80 B per pixel and
energy (tracemalloc on ``simulate:large``'s 25 x 256^2 scan, 2026-12-04): ~20 GiB
at 25 x 2048^2. Here only the float32 optical density (energy, y, x) is held whole
(4 B per pixel and energy); each energy's raw frame, flats and darks are read and
normalised on their own (the same :func:`~spectrotomo.recon.prep.normalize` call
per energy as ``normalize_series`` makes: identical values), the registration is
estimated on the stack binned to at most :data:`REGISTER_BYTES` of work (unbinned,
the same estimate as before) and the scan is warped in place by chunks of frames
(``warp``'s per-frame resampling: identical values).
"""

from __future__ import annotations

import numpy as np

__all__ = ["REGISTER_BYTES", "REGISTER_WORK", "xanes_od", "register_bin", "register_xanes"]

_F4 = 4
#: Work memory the energy registration of a XANES scan may use, bytes
REGISTER_BYTES = 2 * 2**30
#: The registration estimate's bytes per pixel and energy of its (binned) stack: its
#: float64 copy, the fits' work arrays and the float32 binned input; tracemalloc peak
#: 81.5 B on 25 x 256^2 (132 on 25 x 128^2, fixed costs), 2026-12-04, rounded up
REGISTER_WORK = 85
#: the registration's binned field is not made smaller than this (px), whatever its work
_REGISTER_MIN_PX = 128


def xanes_od(ds, *, flat_mode: str = "median", threads: int = 1) -> tuple[np.ndarray, int]:
    """Optical density of a XANES energy scan, normalized as the tomography is.

    Each energy's frame, flats and darks are read (``ds`` may be lazy: a store
    group) and normalised on their own, ``threads`` energies at once.

    Parameters
    ----------
    ds : xarray.Dataset
        The ``raw_xanes`` group: ``projections`` (energy, angle, y, x) raw
        counts at one angle, ``flats`` (energy, flat, y, x), optionally ``darks``.
    flat_mode : {"mean", "median"}
        How the flats of an energy are combined (``[preprocess] flat_mode``).
    threads : int
        Energies normalised at once (each holds its raw frames and work arrays).

    Returns
    -------
    od : ndarray, shape (energy, y, x), float32
        Optical density (dimensionless) at the scan's (first) angle.
    masked : int
        Pixels masked and filled (non-positive, saturated, non-finite, zingers,
        bad flat/dark), summed over the energies.

    Raises
    ------
    ValidationError
        As :func:`spectrotomo.recon.prep.normalize_series` (no flats, flats
        not above darks, frames of another shape).
    """
    from concurrent.futures import ThreadPoolExecutor

    from ... import validate_tilt_series
    from ..._model import ValidationError
    from ...recon.prep import normalize

    validate_tilt_series(ds, where="normalize_series")
    if "flats" not in ds:
        raise ValidationError("normalize_series: the tilt series has no 'flats' variable; "
                              "expected flats (energy, flat, y, x)")
    positions = ds["flat_position"].values if "flat_position" in ds.coords else None
    n_e, ny, nx = ds.sizes["energy"], ds.sizes["y"], ds.sizes["x"]
    od = np.empty((n_e, ny, nx), np.float32)

    def one(e: int) -> int:
        darks = np.asarray(ds["darks"][e].values) if "darks" in ds else None
        frames, report = normalize(np.asarray(ds["projections"][e].values),
                                   np.asarray(ds["flats"][e].values), darks,
                                   flat_positions=positions, flat_mode=flat_mode)
        od[e] = frames[0]
        return int(report.summary()["n_masked"])

    if threads <= 1:
        return od, sum(map(one, range(n_e)))
    with ThreadPoolExecutor(threads, thread_name_prefix="spectrotomo-xanes") as pool:
        return od, sum(pool.map(one, range(n_e)))


def register_bin(n_energies: int, ny: int, nx: int) -> int:
    """Binning (1, 2, 3, ...) of the frames the XANES registration is estimated on:
    the smallest whose stack's work (:data:`REGISTER_WORK` B per pixel and energy)
    fits :data:`REGISTER_BYTES`, keeping at least 128 px a side (25 x 2048^2: 3;
    150 x 2048^2: 6)."""
    b = 1
    while (n_energies * (ny // b) * (nx // b) * REGISTER_WORK > REGISTER_BYTES
           and min(ny, nx) // (b + 1) >= _REGISTER_MIN_PX):
        b += 1
    return b


def _full_resolution_shifts(shifts: np.ndarray, scales: np.ndarray, b: int, ny: int,
                            nx: int) -> np.ndarray:
    """Shifts (energy, 2) px of the full frames from those estimated on frames binned
    by ``b`` (edges cropped to a multiple of ``b``).

    ``warp`` samples ``c + s (q - c) + d`` about the frame centre ``c``; binned pixel
    ``i`` covers full pixels ``b i .. b i + b - 1`` (centre ``b i + (b - 1) / 2``), so
    a binned transform about the binned centre is, in full pixels, one about
    ``C = (b (n // b) - 1) / 2`` with shift ``b d``: about ``c = (n - 1) / 2`` it is
    ``d = b d_b + (C - c)(1 - s)`` (exact; C = c when ``b`` divides the frame).
    """
    if b == 1:
        return np.asarray(shifts, float)
    c = np.array([(ny - 1) / 2.0, (nx - 1) / 2.0])
    c_binned = np.array([(b * (ny // b) - 1) / 2.0, (b * (nx // b) - 1) / 2.0])
    s = np.asarray(scales, float)[:, None]
    return b * np.asarray(shifts, float) + (c_binned - c)[None] * (1.0 - s)


def register_xanes(od: np.ndarray, *, reference: int, pixel_sizes=None, **options):
    """Register the energies of a XANES scan onto ``reference`` and warp ``od`` in place.

    Parameters
    ----------
    od : ndarray, shape (energy, y, x), float32
        Optical density; resampled in place onto the reference energy's geometry.
    reference : int
        Index of the reference energy.
    pixel_sizes : array_like, shape (energy,), optional
        nm per pixel per energy (fixes the magnification).
    **options
        :func:`~spectrotomo.recon.prep.estimate_energy_registration` options
        (``scale_options``).

    Returns
    -------
    reg : EnergyRegistration
        The estimate, its shifts in full-frame pixels (``reg.shifts``) and its
        ``residual_px`` scaled to them.
    binning : int
        :func:`register_bin` of the scan: the estimate ran on frames binned by it.
    """
    from ...recon.prep import estimate_energy_registration, warp
    from ._prep_stream import _binned, frame_parts

    n_e, ny, nx = od.shape
    b = register_bin(n_e, ny, nx)
    frames = od if b == 1 else _binned(od, b)
    reg = estimate_energy_registration(frames, reference=reference, pixel_sizes=pixel_sizes,
                                       **options)
    del frames
    if b > 1:
        reg.shifts = _full_resolution_shifts(reg.shifts, reg.scales, b, ny, nx)
        reg.residual_px = np.asarray(reg.residual_px) * b

    shifts = np.asarray(reg.shifts)
    for part in frame_parts(n_e, ny, nx):  # warp's float64 copy follows a chunk of frames
        od[part] = warp(od[part], reg.scales[part], shifts[part])
    return reg, b
