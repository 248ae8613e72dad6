"""Flat/dark normalization to optical density, with bad pixels masked and counted.

Raw TXM counts ``I`` become optical density ``OD = -ln((I - D) / (F - D))``
where ``F`` is the flat field (beam without sample, interpolated between
flats taken before and after the scan when their positions are given) and
``D`` the dark current. Pixels where the transmission is not positive, not
finite, or where the detector saturated cannot carry an optical density:
they are masked, counted in the report, and filled from their neighbours
(or left NaN) -- never silently clipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..._backend import array_module
from ..._model import ValidationError
from ._pixel_masks import fill_masked, zinger_mask

__all__ = ["normalize", "NormalizeReport", "reduce_references"]

#: Mask codes stored in ``NormalizeReport.mask`` (uint8).
MASK_OK, MASK_NONPOSITIVE, MASK_SATURATED, MASK_NONFINITE, MASK_ZINGER, MASK_BAD_REFERENCE = range(6)


@dataclass
class NormalizeReport:
    """What :func:`normalize` masked and replaced.

    Attributes
    ----------
    n_nonpositive, n_saturated, n_nonfinite, n_zingers, n_bad_reference : int
        Pixel counts (over the whole stack) per cause; ``n_bad_reference``
        counts projection pixels whose flat was not above the dark.
    n_flats_dropped, n_darks_dropped : int
        Reference frames discarded because they held non-finite values.
    nan_frames : list of int
        Indices of projections that were entirely non-finite (left NaN).
    mask : ndarray, uint8, shape like the projections
        Per-pixel cause code (0 valid; 1 non-positive transmission,
        2 saturated, 3 non-finite, 4 zinger, 5 bad flat/dark).
    """

    n_nonpositive: int = 0
    n_saturated: int = 0
    n_nonfinite: int = 0
    n_zingers: int = 0
    n_bad_reference: int = 0
    n_flats_dropped: int = 0
    n_darks_dropped: int = 0
    nan_frames: list = field(default_factory=list)
    mask: object = None

    @property
    def n_masked(self) -> int:
        return (self.n_nonpositive + self.n_saturated + self.n_nonfinite + self.n_zingers
                + self.n_bad_reference)

    def summary(self) -> dict:
        """Counts only (JSON-able, for provenance)."""
        out = {k: v for k, v in asdict(self).items() if k != "mask"}
        out["n_masked"] = self.n_masked
        return out


def _check_stack(name: str, arr, ndim: int = 3):
    if arr is None:
        raise ValidationError(f"normalize: {name} is missing; expected an array of shape "
                              "(n_frames, ny, nx) with at least one frame")
    if arr.ndim == ndim - 1:
        arr = arr[None]
    if arr.ndim != ndim:
        raise ValidationError(f"normalize: {name} must be {ndim}-D (n_frames, ny, nx), "
                              f"got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValidationError(f"normalize: {name} has no frames; expected at least one")
    return arr


def _drop_nonfinite_frames(xp, name: str, frames):
    good = xp.isfinite(frames).reshape(frames.shape[0], -1).all(axis=1)
    n_bad = int((~good).sum())
    if n_bad == frames.shape[0]:
        raise ValidationError(f"normalize: every frame of {name} holds NaN/inf values; "
                              "expected at least one finite frame")
    return (frames[good] if n_bad else frames), good, n_bad


def _reduce(xp, frames, mode: str):
    if mode == "mean":
        return frames.mean(axis=0)
    if mode == "median":
        return xp.median(frames, axis=0)
    raise ValueError(f"normalize: flat_mode must be 'mean' or 'median', got {mode!r}")


def _interpolation_weights(flat_positions: np.ndarray, n_proj: int, proj_positions) -> tuple:
    """Group flats by position; linear weights (n_proj, n_groups) between groups."""
    groups, inverse = np.unique(flat_positions, return_inverse=True)
    pos = np.arange(n_proj, dtype=float) if proj_positions is None else np.asarray(
        proj_positions, dtype=float)
    if pos.shape != (n_proj,):
        raise ValidationError(f"normalize: projection_positions must have length {n_proj}, "
                              f"got shape {pos.shape}")
    w = np.zeros((n_proj, groups.size))
    if groups.size == 1:
        w[:] = 1.0
        return w, inverse
    pos_c = np.clip(pos, groups[0], groups[-1])
    hi = np.clip(np.searchsorted(groups, pos_c, side="right"), 1, groups.size - 1)
    lo = hi - 1
    t = (pos_c - groups[lo]) / (groups[hi] - groups[lo])
    rows = np.arange(n_proj)
    w[rows, lo] = 1.0 - t
    w[rows, hi] += t
    return w, inverse


def _flat_per_projection(xp, flats, mode, flat_positions, n_proj, proj_positions):
    """Flat field (n_proj or 1, ny, nx): one reduced flat, or interpolated by position."""
    if flat_positions is None:
        return _reduce(xp, flats, mode)[None]
    w, inverse = _interpolation_weights(flat_positions, n_proj, proj_positions)
    grouped = xp.stack([_reduce(xp, flats[xp.asarray(inverse == g)], mode)
                        for g in range(w.shape[1])])  # few groups (before/after)
    ny, nx = flats.shape[1:]
    return (xp.asarray(w, dtype=flats.dtype) @ grouped.reshape(w.shape[1], -1)).reshape(
        n_proj, ny, nx)


def normalize(
    projections,
    flats,
    darks=None,
    *,
    flat_mode: str = "mean",
    flat_positions=None,
    projection_positions=None,
    saturation: float | None = None,
    zinger_threshold: float | None = 8.0,
    zinger_min_jump: float = 0.2,
    max_bad_reference_fraction: float = 0.01,
    fill: str = "median",
    dtype=np.float32,
):
    """Raw counts -> optical density ``-ln((I - D) / (F - D))``, with a report.

    Parameters
    ----------
    projections : ndarray, shape (n_angles, ny, nx)
        Raw counts (numpy or cupy, any real dtype).
    flats : ndarray, shape (n_flats, ny, nx) or (ny, nx)
        Open-beam frames.
    darks : ndarray, shape (n_darks, ny, nx) or (ny, nx), optional
        Dark frames (averaged); zero when omitted.
    flat_mode : {"mean", "median"}
        How frames taken at one position are combined (median rejects
        zingers in the flats).
    flat_positions : array_like, shape (n_flats,), optional
        Position of each flat in the projection sequence (projection index
        units, e.g. ``-1`` for flats before and ``n_angles`` for flats after
        the scan). Flats sharing a position are combined; each projection
        gets the linear interpolation between the neighbouring groups.
    projection_positions : array_like, shape (n_angles,), optional
        Positions of the projections in the same units (default 0..n-1).
    saturation : float, optional
        Raw count at or above which a pixel is saturated. Default: the
        dtype maximum for integer input, none for float input.
    zinger_threshold : float or None
        Outliers beyond this many robust sigmas from the 3x3 median of
        their frame, and as far beyond every value of their 3x3
        neighbourhood in the previous and next frames (array order: the
        acquisition order of a step scan; structure moves < 1 px per angle
        step, a zinger is gone), are masked as zingers; ``None`` disables.
        A single frame gets the spatial test only.
    zinger_min_jump : float
        A zinger must also differ from that median by this fraction of it.
    max_bad_reference_fraction : float
        Largest tolerated fraction of pixels whose flat is not above the
        dark; those pixels are masked, more raises ``ValidationError``.
    fill : {"median", "nan"}
        Masked pixels get the median of valid neighbours, or NaN.
    dtype : numpy dtype
        Output dtype.

    Returns
    -------
    od : ndarray, shape (n_angles, ny, nx), ``dtype``
        Optical density (dimensionless, natural log), same device as input.
    report : NormalizeReport
        Counts per cause and the uint8 mask.

    Raises
    ------
    ValidationError
        Missing or empty flats, frames of another shape, every flat
        non-finite, flats not above darks over more than
        ``max_bad_reference_fraction`` of the pixels.
    """
    xp = array_module(projections, flats, darks)
    projections, flats, darks = _checked_frames(xp, projections, flats, darks)
    report = NormalizeReport()
    if saturation is None and np.issubdtype(projections.dtype, np.integer):
        saturation = float(np.iinfo(projections.dtype).max)
    raw = projections.astype(np.float64 if dtype == np.float64 else np.float32)
    dark, beam = _dark_and_beam(xp, raw, flats, darks, report, flat_mode=flat_mode,
                                flat_positions=flat_positions,
                                projection_positions=projection_positions)
    bad_ref = ~(beam > 0)
    frac = float(bad_ref.mean())
    if frac > max_bad_reference_fraction:
        raise ValidationError(
            f"normalize: flats must exceed darks; flat - dark <= 0 at {100 * frac:.1f} % of "
            f"pixels (max_bad_reference_fraction={max_bad_reference_fraction}); check that "
            "flats and darks are not swapped, empty or zero")
    transmission = (raw - dark) / xp.where(bad_ref, 1.0, beam)
    nonfinite = ~xp.isfinite(transmission)
    frames_nan = nonfinite.reshape(raw.shape[0], -1).all(axis=1)
    report.nan_frames = [int(i) for i in np.flatnonzero(
        frames_nan.get() if hasattr(frames_nan, "get") else frames_nan)]
    mask = _classify(xp, raw, transmission, nonfinite, xp.broadcast_to(bad_ref, raw.shape),
                     saturation, zinger_threshold, zinger_min_jump, report)
    invalid = mask != MASK_OK
    with np.errstate(divide="ignore", invalid="ignore"):
        od = -xp.log(xp.where(invalid, 1.0, transmission))
    od = fill_masked(xp, od, invalid, fill)
    if report.nan_frames:  # nothing to fill from: leave whole bad frames NaN
        od[xp.asarray(frames_nan)] = xp.nan
    report.mask = mask
    return od.astype(dtype, copy=False), report


def reduce_references(flats, darks=None, *, flat_mode: str = "mean", dtype=np.float32):
    """The flat and dark frames :func:`normalize` reduces its references to.

    Parameters
    ----------
    flats : ndarray, shape (n_flats, ny, nx) or (ny, nx)
        Open-beam frames (numpy or cupy).
    darks : ndarray, shape (n_darks, ny, nx) or (ny, nx), optional
        Dark frames.
    flat_mode : {"mean", "median"}
        As for :func:`normalize`.
    dtype : numpy dtype
        Work dtype of :func:`normalize` (float32 unless its output is float64).

    Returns
    -------
    flat : ndarray, shape (1, ny, nx), ``dtype``
        Non-finite frames dropped, then reduced by ``flat_mode``.
    dark : ndarray, shape (1, ny, nx), ``dtype``, or None
        Non-finite frames dropped, then averaged (None without darks).

    Notes
    -----
    Passed back to :func:`normalize` (without ``flat_positions``) they give the same
    optical density as the original references -- a single frame reduces to itself --
    so a long stack normalised by chunks of frames reduces its references once.
    """
    xp = array_module(flats, darks)
    work = np.float64 if dtype == np.float64 else np.float32
    flats = _check_stack("flats", None if flats is None else xp.asarray(flats)).astype(work)
    flat = _reduce(xp, _drop_nonfinite_frames(xp, "flats", flats)[0], flat_mode)[None]
    if darks is None:
        return flat, None
    darks = _check_stack("darks", xp.asarray(darks)).astype(work)
    return flat, _drop_nonfinite_frames(xp, "darks", darks)[0].mean(axis=0)[None]


def _checked_frames(xp, projections, flats, darks):
    """Projections (3-D), flats and darks (3-D stacks) on ``xp``, frames of one shape."""
    projections = xp.asarray(projections)
    if projections.ndim != 3:
        raise ValidationError(f"normalize: projections must be 3-D (n_angles, ny, nx), "
                              f"got shape {projections.shape}")
    flats = _check_stack("flats", None if flats is None else xp.asarray(flats))
    darks = None if darks is None else _check_stack("darks", xp.asarray(darks))
    frame = projections.shape[1:]
    for name, ref in (("flats", flats), ("darks", darks)):
        if ref is not None and ref.shape[1:] != frame:
            raise ValidationError(f"normalize: {name} frames have shape {ref.shape[1:]}, "
                                  f"expected {frame} like the projections")
    return projections, flats, darks


def _dark_and_beam(xp, raw, flats, darks, report, *, flat_mode, flat_positions,
                   projection_positions):
    """Mean dark (1, ny, nx) and flat - dark per projection; non-finite reference
    frames are dropped (counted in ``report``)."""
    frame = raw.shape[1:]
    flats, keep, report.n_flats_dropped = _drop_nonfinite_frames(xp, "flats",
                                                                 flats.astype(raw.dtype))
    if flat_positions is not None:
        flat_positions = np.asarray(flat_positions, dtype=float)
        if flat_positions.shape != (keep.shape[0],):
            raise ValidationError(f"normalize: flat_positions must have one entry per flat "
                                  f"({keep.shape[0]}), got shape {flat_positions.shape}")
        flat_positions = flat_positions[np.asarray(keep.get() if hasattr(keep, "get") else keep)]
    if darks is not None:
        darks, _, report.n_darks_dropped = _drop_nonfinite_frames(xp, "darks",
                                                                  darks.astype(raw.dtype))
        dark = darks.mean(axis=0)[None]
    else:
        dark = xp.zeros((1, *frame), dtype=raw.dtype)
    flat = _flat_per_projection(xp, flats, flat_mode, flat_positions, raw.shape[0],
                                projection_positions)
    return dark, flat - dark


def _classify(xp, raw, transmission, nonfinite, bad_ref, saturation, zinger_threshold,
              zinger_min_jump, report):
    """uint8 mask of the cause of each invalid pixel (MASK_* codes; the last cause
    listed wins), counted into ``report``."""
    saturated = (raw >= saturation) & ~nonfinite if saturation is not None else xp.zeros_like(nonfinite)
    nonpositive = (transmission <= 0) & ~nonfinite
    mask = xp.zeros(raw.shape, dtype=np.uint8)
    for code, sel in ((MASK_NONPOSITIVE, nonpositive), (MASK_SATURATED, saturated),
                      (MASK_NONFINITE, nonfinite), (MASK_BAD_REFERENCE, bad_ref)):
        mask[sel] = code
    valid = mask == MASK_OK
    if zinger_threshold is not None:
        zingers = zinger_mask(xp, transmission, valid, float(zinger_threshold),
                               float(zinger_min_jump))
        mask[zingers] = MASK_ZINGER
    report.n_nonpositive = int((mask == MASK_NONPOSITIVE).sum())
    report.n_saturated = int((mask == MASK_SATURATED).sum())
    report.n_nonfinite = int((mask == MASK_NONFINITE).sum())
    report.n_zingers = int((mask == MASK_ZINGER).sum())
    report.n_bad_reference = int((mask == MASK_BAD_REFERENCE).sum())
    return mask
