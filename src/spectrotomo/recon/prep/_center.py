"""Rotation-axis (centre-of-rotation) search, sub-pixel, column-index convention.

The centre ``c`` is the detector column of the rotation axis, column ``i``'s
centre at ``i`` -- the ``center`` argument of :func:`reconstruct`. Methods,
chosen automatically from the angles and the field of view:

- ``"opposite"``: scans holding pairs ``theta`` / ``theta + 180`` (360 deg,
  or 180 deg with both end points): ``p(theta + 180, u) = p(theta, 2c - u)``,
  so the mirrored partner is displaced by ``(n - 1) - 2c``; all pairs are
  registered at once (batched phase correlation) and the median taken.
- ``"vo"``: 180 deg scans without opposite projections: Vo, Atwood &
  Drakopoulos, Opt. Express 22, 19078 (2014): the 180-360 half is the
  mirrored sinogram shifted for each candidate; the right candidate leaves
  the least energy outside the double wedge of the 2-D spectrum.
- ``"com"``: limited-angle scans: the centre of mass of a row's projection
  ``theta`` lies at ``c + X cos(theta) + Y sin(theta)``; a least-squares fit
  over all angles gives ``c`` (exact without jitter; jitter's mean ``dx`` is
  indistinguishable from an axis offset, so align first or expect an error
  of about the jitter / sqrt(n_angles) times the fit's conditioning). When
  the object leaves the field of view, only the rows whose slice stays
  inside at every angle (e.g. a particle's caps) are fitted, all sharing
  ``c``: 0.02-0.09 px on the simulated particles (gpu_bench/center_bench.py).
- ``"halves"``: limited-angle scans of an object that leaves the field of
  view in *every* row (no whole-slice integral is valid): the rows are
  reconstructed from the first and from the last part of the scan, and the
  displacement between the two (``~1.3 x`` the axis error at -65..+65 deg)
  is measured on a map of dark blobs (pores) and driven to zero -- see
  ``_center_halves``. Measured (-65..+65 deg, 1 deg steps, 2e4 photons,
  gpu_bench/center_bench.py): <= 0.12 px on the small and demo particles,
  truncated or not; <= 0.47 px over other particle seeds and 1-3 deg
  steps (a structure-dependent bias). At -45..+45 deg it is 0.3 px off on
  one particle and refuses two others (their displacement curve is not one
  line: answers 3 and 16 px off were returned before the slope check). Needs
  internal structure: it refuses a smooth ball (no blobs common to both
  halves) rather than return a spurious root.
- ``"consistency"``: for every candidate at once, FBP a few rows from the
  even-numbered angles, re-project at the odd ones and keep the candidate
  whose prediction matches the measured odd projections best. 0.01-0.14 px
  on untruncated particles, 16-34 px off once they leave the field of view
  (the re-projection misses what lies outside the reconstructed square).
  Each odd angle is predicted mostly from its 1-deg neighbours, which a
  wrong axis displaces alike, so the metric is weak (second order in the
  angular step) and any model error dominates it -- the likely cause of the
  ~5 px bias once seen on a smooth ball (0.15 px on center_bench's ball).
- ``"sharpness"``: as above but the metric is the total variation of the
  FBP slices (a wrong axis smears features into arcs). < 0.5 px on the
  tests' phantom, but 0.05-15 px off on center_bench's smooth balls and
  7-11 px on the grain-textured particles even untruncated (likely: blurring
  lowers the total variation of texture about as much as arcs raise it).
  Only ``"auto"``'s last resort, with a warning, when ``"halves"`` refuses.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..._backend import array_module, to_numpy
from ..._model import ValidationError
from ._candidates import in_candidate_batches
from ._center_halves import center_halves
from ._center_vo import center_vo, refine_minimum
from .._checks import check_angles, check_projections
from ._shift import candidate_stack, correlate_batch, phase_correlate

__all__ = ["find_center", "CenterScores"]

_MIN_COM_ROWS = 4  # confined rows needed before "auto" trusts a centre-of-mass fit
# Default n_rows per method (else _DEFAULT_ROWS). "halves" pools rows into one correlation: more
# rows, less bias (center_bench --sweep), but rows through a particle's caps add
# blobs the halves do not share and can push the blob correlation under the
# refusal threshold (48 of 64 rows: 0.08), so 24.
_ROWS = {"halves": 24}
_DEFAULT_ROWS = 4


def _pairs(angles: np.ndarray, tol: float):
    """Index pairs (i, j) with angles[j] = angles[i] + 180 (mod 360) within tol."""
    a = np.mod(angles, 360.0)
    diff = np.abs(np.mod(a[None, :] - a[:, None], 360.0) - 180.0)
    i, j = np.nonzero(diff <= tol)
    keep = i < j
    return i[keep], j[keep]


def _angular_step(angles: np.ndarray) -> float:
    s = np.diff(np.sort(angles))
    s = s[s > 1e-9]
    return float(np.median(s)) if s.size else 1.0


#: float32 bytes of projections per chunk of the whole-stack reductions below: their abs
#: and clip copies and float64 products follow the chunk (the centre search on the mean
#: of 131 x 2048^2 held three more stacks); each output element still sums the same
#: values in the same order, so the results are those of one call
_CHUNK_BYTES = 64 * 2**20


def _parts(p, axis: int) -> list[slice]:
    """Chunks along ``axis`` of the stack ``p`` of about :data:`_CHUNK_BYTES` each."""
    n = p.shape[axis]
    step = max(1, _CHUNK_BYTES * n // max(1, p.size * 4))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _reduced(xp, fn, p, axis: int):
    """``fn`` on chunks of ``p`` along ``axis``, joined along the same axis of the
    result (``fn`` reduces the other axes)."""
    parts = [fn(p[(slice(None),) * axis + (part,)]) for part in _parts(p, axis)]
    return xp.concatenate(parts, axis=-1 if axis == 2 else 0)


def _signal_rows(xp, projections, n_rows: int) -> np.ndarray:
    """Rows carrying the most attenuation (the particle), at most ``n_rows``."""
    weight = to_numpy(_reduced(xp, lambda c: xp.abs(c).sum(axis=(0, 2)), projections, 1))
    order = np.argsort(weight)[::-1][:max(1, n_rows)]
    return np.sort(order)


def _pair_chunk(ny: int, nx: int) -> int:
    """Pairs per chunk of the "opposite" search: frames copied (both of a pair) about
    :data:`_CHUNK_BYTES`, in whole batches of ``phase_correlate`` (its whitening floor
    is per batch, so the displacements are those of one call). A 360 deg scan pairs
    every angle: one call copied the whole stack (tracemalloc: 17x the mean of
    360 x 32 x 512, 1 pair copy + the correlation work)."""
    batch = correlate_batch(ny, nx)
    return batch * max(1, _CHUNK_BYTES // (2 * batch * ny * nx * 4))


def _center_opposite(xp, projections, angles, tol):
    i, j = _pairs(angles, tol)
    step = _pair_chunk(*projections.shape[1:])
    d = np.concatenate([  # chunks of pairs: the copies follow the chunk, not the stack
        phase_correlate(projections[i[k:k + step]], projections[j[k:k + step]][:, :, ::-1],
                        upsample=40, whiten=0.5) for k in range(0, i.size, step)])
    n = projections.shape[-1]
    centers = (n - 1 - d[:, 1]) / 2.0
    return float(np.median(centers)), centers


def _confined(xp, projections, edge: int = 2, frac: float = 0.02) -> bool:
    """True when the detector edges see (almost) no attenuation: object inside."""
    mean = _reduced(xp, lambda c: xp.abs(c).mean(axis=(0, 1)), projections, 2)
    border = float(xp.concatenate([mean[:edge], mean[-edge:]]).max())
    return border <= frac * float(mean.max())


def _confined_rows(xp, projections, edge: int = 2, frac: float = 0.02,
                   min_mass: float = 0.1) -> np.ndarray:
    """Rows whose slice stays inside the field of view at every angle.

    A row qualifies when its angle-averaged profile is ~0 at both detector
    edges (``frac`` of the brightest profile value) and it carries at least
    ``min_mass`` of the heaviest row's attenuation (not background).
    """
    mean = _reduced(xp, lambda c: xp.abs(c).mean(axis=0), projections, 1)  # (rows, n)
    top = float(mean.max())
    border = xp.maximum(mean[:, :edge].max(axis=1), mean[:, -edge:].max(axis=1))
    mass = mean.sum(axis=1)
    ok = (border <= frac * top) & (mass >= min_mass * mass.max())
    return np.flatnonzero(to_numpy(ok))


def _center_com(xp, projections, angles, rows=None):
    """Centre-of-mass fit over angles, per row with a shared axis column.

    The same design matrix serves every row, so the joint least-squares axis
    is the mean of the per-row intercepts (mass-weighted here).
    """
    n = projections.shape[-1]

    def moments(chunk):  # (a, r, n) -> mass (a, r) float32, first moment (a, r) float64
        pos = xp.clip(chunk if rows is None else chunk[:, rows], 0, None)
        return pos.sum(axis=2), (pos * xp.arange(n)).sum(axis=2)

    parts = [moments(projections[part]) for part in _parts(projections, 0)]
    mass = xp.concatenate([m for m, _ in parts])  # (A, r)
    first = xp.concatenate([f for _, f in parts])
    com = to_numpy(first / xp.maximum(mass, 1e-30))
    theta = np.deg2rad(angles)
    basis = np.stack([np.ones_like(theta), np.cos(theta), np.sin(theta)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, com, rcond=None)  # (3, r)
    weight = to_numpy(mass.sum(axis=0))
    center = float((coef[0] * weight).sum() / weight.sum())
    resid = com - basis @ coef
    return center, (angles, (resid * weight).sum(axis=1) / weight.sum())


#: work bytes per pixel of each (candidate, row) slice of "consistency" / "sharpness"
#: (tracemalloc, 131 angles x 4 rows, 128 and 256 columns: 12-27 B, 42 B on a first call)
_LIMITED_BYTES_PER_PX = 48


def _limited_metric(xp, projections, angles, rows, candidates, filter_name, kind):
    """The "consistency" or "sharpness" score of each candidate axis (k,), by batches
    of candidates (:func:`._candidates.in_candidate_batches`)."""
    def score(batch):
        return _limited_batch(xp, projections, angles, rows, batch, filter_name, kind)

    return in_candidate_batches(score, candidates, len(rows), projections.shape[-1],
                                _LIMITED_BYTES_PER_PX)


def _limited_batch(xp, projections, angles, rows, candidates, filter_name, kind):
    from .._reconstruct import project, reconstruct

    stack, ref = candidate_stack(xp, projections, rows, candidates)
    a, _, n = stack.shape
    k, r = candidates.size, len(rows)
    if kind == "consistency":
        # Cross-validation: FBP from the even angles must predict the odd ones;
        # a wrong axis makes the two halves disagree.
        even, odd = np.arange(0, a, 2), np.arange(1, a, 2)
        rec = reconstruct(stack[even], angles[even], center=ref, filter=filter_name)
        pred = project(rec, angles[odd], center=ref, n_cols=n)
        err = ((pred - stack[odd]) ** 2).reshape(odd.size, k, r, n).sum(axis=(0, 2, 3))
        return to_numpy(err)
    rec = reconstruct(stack, angles, center=ref, filter=filter_name).reshape(k, r, n, n)
    gy = xp.diff(rec, axis=-2)[..., :, :-1]
    gx = xp.diff(rec, axis=-1)[..., :-1, :]
    # Total variation: the integrated attenuation is the same for every
    # candidate, a wrong axis spreads it into arcs with more edges.
    return to_numpy(xp.sqrt(gy ** 2 + gx ** 2).sum(axis=(1, 2, 3)))


def _center_limited(xp, projections, angles, search, rows, step, filter_name, kind):
    coarse = np.arange(search[0], search[1] + 1.0, 2.0)
    m_coarse = _limited_metric(xp, projections, angles, rows, coarse, filter_name, kind)
    c0 = coarse[int(np.argmin(m_coarse))]
    fine = np.arange(c0 - 2.0, c0 + 2.0 + step / 2, step)
    m_fine = _limited_metric(xp, projections, angles, rows, fine, filter_name, kind)
    return refine_minimum(fine, m_fine), (np.concatenate([coarse, fine]),
                                           np.concatenate([m_coarse, m_fine]))


_LABELS = {  # method -> (x units, x label, metric label) of the candidate scores
    "opposite": ("px", "per-pair centre (px)", "|pair centre - median| (px)"),
    "vo": ("px", "rotation-axis column (px)", "energy outside the double wedge (Vo)"),
    "com": ("deg", "angle (deg)", "centre-of-mass fit residual (px)"),
    "consistency": ("px", "rotation-axis column (px)", "re-projection misfit (consistency)"),
    "sharpness": ("px", "rotation-axis column (px)", "total variation (sharpness)"),
    "halves": ("px", "rotation-axis column (px)", "|half-scan displacement| (px)"),
}


@dataclass
class CenterScores:
    """What :func:`find_center` scored, for a QC figure (numpy arrays).

    Attributes
    ----------
    method : str
        The method used ("auto" resolved).
    x : ndarray, shape (n,)
        Candidate columns (px); per-pair centres for "opposite"; angles (deg)
        for "com", whose fit has no candidates.
    metric : ndarray, shape (n,)
        The score at each ``x`` (lower is better; "com": fit residual, px).
    x_units : str
        "px" or "deg" (the units of ``x``).
    x_label, metric_label : str
        Axis labels with units.
    """

    method: str
    x: np.ndarray
    metric: np.ndarray
    x_units: str
    x_label: str
    metric_label: str


def _auto_method(xp, p, angles, da: float, span: float) -> str:
    """The method ``"auto"`` picks from the angles and where the object lies."""
    if _pairs(angles, 0.25 * da)[0].size:
        return "opposite"
    if span >= 180.0 - 1.5 * da:
        return "vo"
    if _confined(xp, p):
        return "com"
    if _confined_rows(xp, p).size >= _MIN_COM_ROWS:
        return "com"  # the object leaves the field of view, but its caps do not
    return "halves"  # truncated in every row: no whole-slice integral is valid


def _search(xp, p, angles, method, *, rows, bounds, step, filter_name, da, span, fallback):
    """(method used, centre column, (x, metric) curve) of one ``find_center`` method."""
    if method == "opposite":
        return method, *_search_opposite(xp, p, angles, da)
    if method == "vo":
        return method, *center_vo(xp, p, angles, bounds, rows, step)
    if method == "com":
        return method, *_search_com(xp, p, angles)
    if method == "halves":
        return _search_halves(xp, p, angles, rows=rows, bounds=bounds, step=step,
                              filter_name=filter_name, da=da, span=span, fallback=fallback)
    if method in ("consistency", "sharpness"):
        return method, *_center_limited(xp, p, angles, bounds, rows, step, filter_name, method)
    raise ValueError("find_center: method must be 'auto', 'opposite', 'vo', 'com', "
                     f"'halves', 'consistency' or 'sharpness'; got {method!r}")


def _search_opposite(xp, p, angles, da):
    """Centre from projections 180 deg apart; curve: each pair's centre and its
    distance from the result."""
    if not _pairs(angles, 0.25 * da)[0].size:
        raise ValidationError("find_center: method 'opposite' needs projections 180 deg "
                              "apart; none found in angles")
    center, per_pair = _center_opposite(xp, p, angles, 0.25 * da)
    return center, (per_pair, np.abs(per_pair - center))


def _search_com(xp, p, angles):
    """Centre of mass on every row, or on the rows whose object stays inside."""
    inside = None if _confined(xp, p) else _confined_rows(xp, p)
    if inside is not None and inside.size == 0:
        raise ValidationError("find_center: method 'com' needs rows whose object stays "
                              "inside the field of view; none found")
    return _center_com(xp, p, angles, inside)


def _search_halves(xp, p, angles, *, rows, bounds, step, filter_name, da, span, fallback):
    """Limited-angle centre from two half sets; under "auto", 'sharpness' (with a
    warning) where the halves find nothing."""
    if span >= 180.0 - 1.5 * da:
        raise ValidationError("find_center: method 'halves' is for limited-angle scans "
                              f"(span < 180 deg); got {span:.1f} deg (use 'vo' or "
                              "'opposite')")
    try:
        return "halves", *center_halves(xp, p, angles, rows, bounds, filter_name)
    except ValidationError as err:
        if not fallback:
            raise
        warnings.warn(f"{err}; 'auto' falls back to 'sharpness', which is unreliable on "
                      "objects that leave the field of view (check the centre)",
                      UserWarning, stacklevel=4)  # the caller of find_center
        return "sharpness", *_center_limited(xp, p, angles, bounds, rows, step, filter_name,
                                             "sharpness")


def find_center(projections, angles, *, method: str = "auto", rows=None,
                n_rows: int | None = None,
                search_range: tuple[float, float] | None = None, step: float = 0.2,
                filter: str = "hann", return_metric: bool = False):
    """Find the rotation-axis column of a parallel-beam scan, sub-pixel.

    Parameters
    ----------
    projections : ndarray, shape (n_angles, n_rows, n_cols)
        Optical density (numpy or cupy), normalized, stripes removed.
    angles : array_like, shape (n_angles,)
        Degrees.
    method : {"auto", "opposite", "vo", "com", "halves", "consistency", "sharpness"}
        ``"auto"``: ``"opposite"`` when projections 180 deg apart exist,
        ``"vo"`` for other scans spanning 180 deg, ``"com"`` for limited
        angles with the object inside the field of view or at least 4 rows
        whose slice stays inside (fitted on those rows), else ``"halves"``
        (the object leaves the field of view in every row).
    rows : sequence of int, optional
        Detector rows used by ``"vo"``, ``"halves"``, ``"consistency"`` and
        ``"sharpness"``; default the ``n_rows`` rows carrying the most
        attenuation.
    n_rows : int, optional
        Default 24 for ``"halves"`` (rows pool into one correlation), else 4.
    search_range : (float, float), optional
        Candidate columns; default the middle half of the detector.
    step : float
        Fine-search step in pixels (refined by a parabola).
    filter : str
        FBP window for ``"halves"``, ``"consistency"`` and ``"sharpness"``.
    return_metric : bool
        Also return the :class:`CenterScores` (candidates and their metric) for
        a QC figure (the pipeline report draws it; stages draw nothing).

    Returns
    -------
    float
        Rotation-axis column in pixels (``center`` of :func:`reconstruct`),
        plus the :class:`CenterScores` when ``return_metric``.
    """
    xp = array_module(projections)
    p = check_projections(xp.asarray(projections), where="find_center")
    angles = check_angles(angles, p.shape[0], where="find_center")
    n = p.shape[-1]
    lo, hi = search_range if search_range is not None else (n / 4.0, 3 * n / 4.0 - 1)
    if not (0 <= lo < hi <= n - 1):
        raise ValidationError(f"find_center: search_range must lie within [0, {n - 1}] with "
                              f"lo < hi; got {search_range}")
    da = _angular_step(angles)
    span = float(np.ptp(angles))
    fallback = method == "auto"
    if method == "auto":
        method = _auto_method(xp, p, angles, da, span)
    if rows is None:
        rows = _signal_rows(xp, p, _ROWS.get(method, _DEFAULT_ROWS) if n_rows is None else n_rows)
    else:
        rows = np.asarray(rows, dtype=int)
    method, center, curve = _search(xp, p, angles, method, rows=rows, bounds=(lo, hi),
                                    step=step, filter_name=filter, da=da, span=span,
                                    fallback=fallback)
    if not return_metric:
        return center
    x, metric = (np.asarray(to_numpy(v), dtype=float) for v in curve)
    return center, CenterScores(method, x, metric, *_LABELS[method])
