"""Half-set registration: the rotation axis of limited-angle scans, truncation-robust.

A detector column error ``delta`` of the assumed axis moves every back-projected
ray of angle ``theta`` by ``-delta`` along its normal ``n(theta) = (cos, sin)``
(geometry of :func:`spectrotomo.simulate.project`). Reconstructed from the
angles of a set ``H`` alone, a point then lands at the least-squares meeting
point of those rays, displaced by ``-delta M_H^{-1} sum_H n(theta)`` with
``M_H = sum_H n n^T``. The two outer parts of the scan (``A``: the first
angles, ``B``: the last ones, a gap around the middle left out) are displaced
differently, so their reconstructions disagree by ``-delta (v_B - v_A)``:
``1.3 delta`` along the mid-range ray direction for -65..+65 deg with a
10 deg gap. Measuring that displacement at trial axes gives the axis where it
vanishes; no reprojection and no whole-object integral is involved, so an
object that leaves the field of view in every row is handled (FBP with edge
padding makes truncation a smooth bias, which the blob filter below ignores).

What is compared: the two half reconstructions hold disjoint wedges of the
2-D spectrum (each projection fills one line of it), so they cannot be
cross-correlated directly -- edges show in one half or the other depending on
their orientation. Local *dark blobs* (pores, voids, the gaps between grains)
show in both at the same place: a blob map, the positive determinant of the
Gaussian Hessian where the Laplacian is positive, summed over the scales
:data:`BLOB_SIGMAS` (scale-normalised, so pores of 2 to ~20 px all count), is
cross-correlated inside
the field-of-view disc, with all rows of a candidate laid side by side so
that one correlation peak pools them. Lines (edges, the limited-angle streaks
of the point spread function) have one zero curvature and leave the map.
Needs such blobs: a smooth object without internal structure (a ball) gives
no signal -- use ``"com"`` there when it is confined.
"""

from __future__ import annotations

import numpy as np

from ..._backend import to_numpy
from ..._model import ValidationError
from ._candidates import candidate_batch, in_candidate_batches
from ._shift import candidate_stack, phase_correlate

__all__ = ["center_halves", "half_sets", "halves_work_bytes", "coarse_binning", "blob_sigmas",
           "COARSE_COLS", "BLOB_SIGMAS"]

_GAP_DEG = 10.0  # angles within this of the mid-range join neither half
#: px: Gaussian scales of the blob filter, summed. One scale of 1.5 px (pores of 2-6 px)
#: put the axis 6.6-7.3 px off on a 512-column particle with pores of 4-15 px (the same
#: particle at a 2x finer pixel; small pores and noise differ between the halves); the
#: sum of the three scales: within 0.13 px there and within 0.31 px on the 128-512
#: column cases the single scale got right (gpu_bench/RESULTS.prep.md, 2026-12-04)
BLOB_SIGMAS = (1.5, 3.0, 6.0)
_MAX_SIGMA_FRACTION = 32  # scales up to 1/32 of the columns (blob_sigmas)
_MARGIN = 3.0  # px kept clear of the field-of-view edge before the taper
_TAPER = 4.0  # px of raised-cosine taper inside the disc
# Normalized correlation of the two halves' blob maps at the found axis:
# 0.25-0.55 on the simulated particles (small and demo, truncated or not);
# 0.001-0.015 on a smooth ball and on rows that miss the particle, and
# 0.09-0.10 on a 94 px ball cut by the field of view, whose edge arcs give
# a displacement with the right slope but a root 1.8-13 px off.
_MIN_NCC = 0.15
# Measured / predicted slope of the displacement around the axis (center_bench,
# small and demo presets and --sweep): 0.71-1.07 wherever the answer was within
# 0.5 px (also where the 8 heaviest rows bracket the axis 4.5 px off and all rows
# correct it; 0.61 with n_rows=8, 2.3 px off); 0.30-0.45 where the curve is not
# one line (-45..+45 deg, two particles: answers 3 and 16 px off, accepted while
# the bound was 0.25).
_MIN_SLOPE_RATIO = 0.6
#: peak work bytes per pixel of each (candidate, row) slice of a batch: its shifted rows,
#: both halves' FBP slices, blob maps (float64 spectra and Hessian terms) and the
#: correlation of the maps (:func:`halves_work_bytes`)
_BYTES_PER_SLICE_PX = 100
#: the coarse scan runs on columns binned to at most this many: its candidates (every
#: 2 px over half the field) times its FBP slices (n^2) grew as n^3, ~1.5 h at 2048
#: columns on a 2-core VM; the refinement stays at full resolution
COARSE_COLS = 512


def half_sets(angles: np.ndarray, gap: float = _GAP_DEG):
    """Split a limited-angle scan into its two outer parts.

    Parameters
    ----------
    angles : ndarray, shape (n_angles,)
        Degrees, one contiguous range shorter than 180 deg (any order, any
        spacing).
    gap : float
        Degrees around the middle of the range left out of both parts (at
        most a sixth of the span).

    Returns
    -------
    a, b : ndarray of int
        Indices of the angles below and above the middle of the range.
    direction : ndarray, shape (2,)
        Unit vector (dy, dx) in slice pixels along which a centre error moves
        the ``b`` reconstruction relative to the ``a`` one.
    slope : float
        Predicted displacement (px) along ``direction`` per pixel by which the
        trial axis exceeds the true one (positive).
    """
    mid = 0.5 * (angles.min() + angles.max())
    g = min(gap, np.ptp(angles) / 6.0)
    a, b = np.flatnonzero(angles < mid - g), np.flatnonzero(angles > mid + g)
    if a.size < 3 or b.size < 3:
        raise ValidationError("find_center: method 'halves' needs at least 3 angles on each "
                              f"side of the range's middle ({mid:.1f} deg); got {a.size} and "
                              f"{b.size}")

    def meeting_shift(idx):  # (X, Y) displacement of the rays' meeting point per px error
        t = np.deg2rad(angles[idx])
        n = np.stack([np.cos(t), np.sin(t)])
        return -np.linalg.solve(n @ n.T, n.sum(axis=1))

    v = meeting_shift(b) - meeting_shift(a)  # (X, Y): X along columns, Y along slice rows
    norm = float(np.hypot(*v))
    return a, b, np.array([v[1], v[0]]) / norm, norm


def _blob_map(xp, rec, sigmas):
    """Positive Hessian determinant at dark blobs (Laplacian > 0), summed over the
    Gaussian scales ``sigmas`` (px), each scale-normalised (``(sigma / sigmas[0])**4``:
    a pore weighs about the same at the scale that fits it, whatever its size).

    rec (m, ny, nx) -> (m, ny, nx) float64; derivatives in Fourier space (numpy or cupy).
    """
    _, ny, nx = rec.shape
    ky = xp.asarray(2 * np.pi * np.fft.fftfreq(ny))[:, None]
    kx = xp.asarray(2 * np.pi * np.fft.rfftfreq(nx))[None, :]
    spectrum = xp.fft.rfft2(rec)
    total = None
    for sigma in sigmas:
        smooth = spectrum * xp.exp(-0.5 * sigma ** 2 * (ky ** 2 + kx ** 2))
        hyy, hxx, hxy = (xp.fft.irfft2(smooth * f, s=(ny, nx))
                         for f in (-ky ** 2, -kx ** 2, -ky * kx))
        det = hxx * hyy - hxy ** 2
        det = xp.where((det > 0) & (hxx + hyy > 0), det, 0.0)
        del hyy, hxx, hxy, smooth
        det *= (sigma / sigmas[0]) ** 4
        total = det if total is None else xp.add(total, det, out=total)
    return total


def _disc_windows(xp, candidates, n: int, ref: float):
    """(k, n, n) tapered field-of-view discs: radius min(c, n - 1 - c) about ``ref``."""
    yy, xx = np.mgrid[:n, :n] - ref
    rad = np.hypot(yy, xx)
    radius = np.minimum(candidates, n - 1 - candidates) - _MARGIN
    t = np.clip((radius[:, None, None] - rad[None]) / _TAPER, 0.0, 1.0)
    return xp.asarray((0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32))


def halves_work_bytes(n_cols: int, n_rows: int = 24) -> float:
    """Peak work memory of :func:`center_halves` beside its input, bytes: the larger of
    its coarse scan's batch (the 8 heaviest rows, binned columns) and its refinement's
    (3 candidates on ``n_rows`` rows), each bounded by :func:`._candidates.
    candidate_batch`. Per (candidate, row) slice pixel a batch measured 73-98 B
    (tracemalloc, 131 angles, 128 and 256 columns, 1-8 candidates of 8-24 rows,
    2026-12-04): 100 B planned. One candidate of 24 rows at 2048 columns is ~9.4 GiB,
    the floor at that size."""
    def batch_bytes(rows: int, k: int, cols: int) -> float:
        per = candidate_batch(rows, cols, _BYTES_PER_SLICE_PX)
        return min(k, per) * rows * cols ** 2 * _BYTES_PER_SLICE_PX

    coarse_cols = n_cols // coarse_binning(n_cols)
    return max(batch_bytes(min(8, n_rows), coarse_cols, coarse_cols),
               batch_bytes(n_rows, 3, n_cols))


def blob_sigmas(n_cols: int, binning: int = 1) -> tuple[float, ...]:
    """The blob filter's scales, px of a map of ``n_cols`` full-resolution columns binned
    by ``binning``: those of :data:`BLOB_SIGMAS` up to ``n_cols / 32`` (larger ones see
    the particle's outline, which the two halves draw differently: the 64-column test
    particle's refinement measured a slope of -4.5 px/px with the 6 px scale), divided
    by the binning, none under the finest (a coarser pixel already merges the smaller
    pores)."""
    floor = BLOB_SIGMAS[0]
    kept = [s for s in BLOB_SIGMAS if s == floor or s <= n_cols / _MAX_SIGMA_FRACTION]
    return tuple(sorted({max(s / binning, floor) for s in kept}))


def _displacement(xp, projections, angles, rows, candidates, filter_name, sets, sigmas):
    """Displacement (px, along ``direction``) of half ``b`` vs half ``a`` per candidate,
    and the zero-lag normalized correlation of the two blob maps (k,), by batches of
    candidates (:func:`._candidates.in_candidate_batches`); blob scales ``sigmas`` (px)."""
    def score(batch):
        return _batch_displacement(xp, projections, angles, rows, batch, filter_name, sets,
                                   sigmas)

    return in_candidate_batches(score, candidates, len(rows), projections.shape[-1],
                                _BYTES_PER_SLICE_PX)


def _batch_displacement(xp, projections, angles, rows, candidates, filter_name, sets, sigmas):
    """:func:`_displacement` of one batch of candidates."""
    from .._reconstruct import reconstruct

    a, b, direction, _ = sets
    stack, ref = candidate_stack(xp, projections, rows, candidates)
    k, r, n = candidates.size, len(rows), stack.shape[-1]
    maps = []
    for idx in (a, b):
        rec = reconstruct(stack[idx], angles[idx], center=ref, filter=filter_name,
                          padding="edge")  # (k*r, n, n)
        blobs = _blob_map(xp, rec, sigmas).reshape(k, r, n, n)
        blobs = blobs * _disc_windows(xp, candidates, n, ref)[:, None]
        # Rows side by side: one peak per candidate pools all rows' blobs.
        maps.append(xp.moveaxis(blobs, 1, 2).reshape(k, n, r * n))
    d = phase_correlate(maps[0], maps[1], upsample=20, whiten=0.0, max_shift=n / 4)
    ma, mb = (m.reshape(k, -1) for m in maps)
    ncc = (ma * mb).sum(axis=1) / xp.sqrt((ma ** 2).sum(axis=1) * (mb ** 2).sum(axis=1) + 1e-30)
    return d @ direction, np.asarray(to_numpy(ncc), dtype=float)


def _bracket(candidates, d, slope):
    """Root of the displacement from a coarse scan: the upward zero crossing whose
    neighbours best follow the predicted line (far from the axis the blobs blur,
    the correlation peak jumps and the curve saturates or wraps)."""
    best, best_votes = None, -1
    for i in np.flatnonzero((d[:-1] <= 0) & (d[1:] > 0)):
        root = candidates[i] - d[i] * (candidates[i + 1] - candidates[i]) / (d[i + 1] - d[i])
        near = np.abs(candidates - root) <= 8.0
        votes = int((np.abs(d - slope * (candidates - root))[near] <= 1.5).sum())
        if votes > best_votes:
            best, best_votes = float(root), votes
    if best is None:
        raise ValidationError("find_center: method 'halves' found no axis in the search range "
                              "(the half-scan displacement never changes sign); widen "
                              "search_range or use more rows")
    return best


def coarse_binning(n_cols: int) -> int:
    """Column binning (1, 2, 4, ...) of the coarse scan: the smallest that leaves at most
    :data:`COARSE_COLS` columns."""
    b = 1
    while n_cols // b > COARSE_COLS:
        b *= 2
    return b


def _coarse_scan(xp, projections, angles, rows, search, filter_name, sets):
    """(candidates (k,), displacements (k,), bracketed root) of the coarse scan, columns
    in full-resolution pixels: on the rows' columns binned by :func:`coarse_binning`
    (candidates every 2 binned px; a binned column ``j`` is centred on ``b j + (b - 1)
    / 2``; the displacement per px of axis error is the same in binned px), or on the
    full columns where the binned ones bracket no root."""
    b = coarse_binning(projections.shape[-1])
    if b > 1:
        try:
            return _coarse_scan_binned(xp, projections, angles, rows, search, filter_name,
                                       sets, b)
        except ValidationError:  # no bracket on the binned columns: the full ones decide
            pass
    return _coarse_scan_binned(xp, projections, angles, rows, search, filter_name, sets, 1)


def _coarse_scan_binned(xp, projections, angles, rows, search, filter_name, sets, b: int):
    """:func:`_coarse_scan` on the columns binned by ``b``."""
    lo, hi = search
    sub = projections[:, np.asarray(rows)]
    if b > 1:
        m = sub.shape[-1] // b * b
        sub = sub[..., :m].reshape(*sub.shape[:-1], m // b, b).mean(axis=-1)
    blo, bhi = (lo - (b - 1) / 2.0) / b, (hi - (b - 1) / 2.0) / b
    coarse = np.linspace(blo, bhi, max(5, int(np.ceil((bhi - blo) / 2.0)) + 1))
    d, _ = _displacement(xp, sub, angles, np.arange(sub.shape[1]), coarse, filter_name, sets,
                         blob_sigmas(projections.shape[-1], b))
    root = _bracket(coarse, d, sets[3])
    return b * coarse + (b - 1) / 2.0, b * d, b * root + (b - 1) / 2.0


def center_halves(xp, projections, angles, rows, search, filter_name="hann"):
    """Axis column by half-set registration, and the (candidate, |displacement|) scores.

    A coarse scan over the search range brackets the zero of the
    displacement (on columns binned to at most :data:`COARSE_COLS`: the
    refinement at full resolution absorbs its error), then two rounds of three
    candidates around the estimate fit the local line: the measured slope, not the predicted one,
    sets the step (measured 0.95-1.37 px/px where 1.28 is predicted: blob
    filtering and truncation change it).
    """
    sets = half_sets(angles)
    lo, hi = search
    # The displacement stays linear over only +-4 px of axis error on some
    # simulated particles (+-14 px on others): 2 px steps keep >= 3 candidates
    # on the line (3 px steps missed it once); the 8 heaviest rows bracket the
    # root to ~1 px, which the refinement below absorbs.
    weight = to_numpy(xp.abs(projections[:, rows]).sum(axis=(0, 2)))
    few = np.sort(np.asarray(rows)[np.argsort(weight)[::-1][:8]])  # heaviest: most blobs
    coarse, d_coarse, root = _coarse_scan(xp, projections, angles, few, search, filter_name,
                                          sets)
    center = float(np.clip(root, lo, hi))
    tried, scores = [coarse], [d_coarse]
    sigmas = blob_sigmas(projections.shape[-1])
    for half_width in (1.0, 0.5):
        c = np.clip(center + half_width * np.array([-1.0, 0.0, 1.0]), lo, hi)
        d, ncc = _displacement(xp, projections, angles, rows, c, filter_name, sets, sigmas)
        slope, intercept = np.polyfit(c, d, 1)
        if not slope > _MIN_SLOPE_RATIO * sets[3]:
            raise ValidationError(
                "find_center: method 'halves' is inconsistent: the half-scan displacement "
                f"changes by {slope:.2f} px per px of axis near column {center:.2f}, where the "
                f"geometry predicts {sets[3]:.2f} (too few pores or blobs in the chosen rows, "
                "or an angular range too short); try method 'com' or other rows")
        center = float(np.clip(-intercept / slope, lo, hi))
        tried.append(c)
        scores.append(d)
    if not ncc[1] >= _MIN_NCC:
        raise ValidationError(f"find_center: method 'halves' found no structure common to the "
                              f"two half-scans (blob-map correlation {ncc[1]:.3f} < {_MIN_NCC}: "
                              "a smooth object, or rows off the object); try method 'com' or "
                              "other rows")
    return center, (np.concatenate(tried), np.abs(np.concatenate(scores)))
