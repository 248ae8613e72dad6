"""Projection (jitter) alignment: coarse pre-alignment, then re-projection alignment.

``shifts[i] = (dy, dx)`` is the displacement in pixels of projection ``i``
relative to the ideal geometry (the ``true_shift`` of
``simulate.tilt_series``); shifting projection ``i`` by ``-shifts[i]``
corrects it.

Gauge: a translation of the object is invisible in the data -- it moves
projection ``i`` by ``dy = tz`` and ``dx = tx cos(theta) + ty sin(theta)``.
The returned shifts therefore have zero mean ``dy`` and no ``dx`` component
along ``cos(theta)``, ``sin(theta)``; the constant part of ``dx`` is kept
(it is the rotation-axis offset from ``center``).

1. Coarse: ``dy`` from cross-correlating each projection's row profile (sum
   over columns: the same at every angle for an object inside the field of
   view) with the median profile; ``dx`` from the centre of mass, whose
   ideal path is ``center + X cos(theta) + Y sin(theta)``.
2. Re-projection (joint reconstruction and re-projection): reconstruct the
   aligned stack, re-project it at the measured angles, register every
   projection to its re-projection at once (batched phase correlation with
   DFT-upsampled sub-pixel peaks), update, repeat until the update is below
   ``tol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..._backend import array_module, to_numpy
from .._checks import check_angles, check_center, check_projections
from ._shift import fourier_shift, phase_correlate

__all__ = ["align_projections", "AlignmentReport", "SLAB_BYTES", "CORRELATE_BYTES", "slab_rows",
           "align_work_bytes"]


@dataclass
class AlignmentReport:
    """Convergence record of :func:`align_projections`.

    Attributes
    ----------
    coarse_shifts : ndarray, shape (n_angles, 2)
        Shifts after the coarse stage, px.
    update_rms : list of float
        RMS of the shift update of each re-projection iteration, px.
    residual : list of float
        Relative misfit ||aligned - reprojection|| / ||aligned|| per iteration.
    converged : bool
        Whether the last update fell below ``tol``.
    iterations : int
        Re-projection iterations run.
    """

    coarse_shifts: np.ndarray
    update_rms: list = field(default_factory=list)
    residual: list = field(default_factory=list)
    converged: bool = False
    iterations: int = 0

    def summary(self) -> dict:
        return {"update_rms": self.update_rms, "residual": self.residual,
                "converged": self.converged, "iterations": self.iterations}


def _gauge(shifts: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Remove what an object translation explains: mean dy; cos/sin parts of dx."""
    out = shifts.copy()
    out[:, 0] -= out[:, 0].mean()
    basis = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, out[:, 1], rcond=None)
    out[:, 1] -= basis @ coef
    return out


def _coarse(xp, p, theta, center):
    n_angles, n_rows, n_cols = p.shape
    pos = xp.clip(p, 0, None)
    profile = pos.sum(axis=2)  # (A, rows): angle-invariant for a confined object
    ref = xp.median(profile, axis=0)
    tile = 8  # 2-D phase correlation on profiles tiled along a dummy axis
    dy = phase_correlate(xp.broadcast_to(ref[:, None], (n_rows, tile)),
                         xp.broadcast_to(profile[:, :, None], (n_angles, n_rows, tile)),
                         upsample=20, whiten=0.5)[:, 0]
    mass = pos.sum(axis=(1, 2))
    com = to_numpy((pos.sum(axis=1) * xp.arange(n_cols)).sum(axis=1) / xp.maximum(mass, 1e-30))
    dx = com - center
    return np.stack([dy, dx], axis=1)


def align_projections(projections, angles, *, center: float | None = None,
                      iterations: int = 10, algorithm: str = "fbp",
                      recon_iterations: int | None = None, coarse: bool = True,
                      tol: float = 0.02, upsample: int = 20, lowpass: float | None = 0.25,
                      return_report: bool = False, shift_stack: bool = True):
    """Align projections for stage jitter by iterative re-projection.

    Parameters
    ----------
    projections : ndarray, shape (n_angles, n_rows, n_cols)
        Optical density, numpy or cupy (background ~0, object inside the
        field of view). Not chunkable: every iteration reconstructs from all
        angles and registers whole projections (dy couples the rows), so a
        dask array is read in full. Work memory beyond the stack: one copy
        of it (shifted, then re-projected over itself slab by slab), a slab of
        the FBP volume (:func:`slab_rows`: FBP is reconstructed and re-projected
        by slabs of rows, with the whole volume's values) and a phase-correlation
        batch of :data:`CORRELATE_BYTES` with its frames shifted again from the
        stack. For stacks larger than memory, align a band of rows
        (``projections[:, r0:r1]``: the shifts are per angle)
        and apply ``shift_images(chunk, -shifts[chunk_angles])`` per chunk.
    angles : array_like, shape (n_angles,)
        Degrees (limited range allowed).
    center : float, optional
        Rotation-axis column (``find_center``); default ``(n_cols - 1) / 2``.
    iterations : int
        Re-projection iterations at most (0: coarse only).
    algorithm : str
        ``reconstruct`` algorithm of the inner loop: ``"fbp"`` (fast), or an
        iterative one such as ``"sirt"`` with ``recon_iterations`` (~7x
        slower, re-projects more faithfully: without the coarse stage 0.03 /
        0.17 px RMS (dy / dx) against 0.13 / 0.30 px for FBP, 60 angles).
    recon_iterations : int, optional
        Iterations of an iterative inner algorithm (default 20).
    coarse : bool
        Run the coarse stage first.
    tol : float
        Stop when the RMS update falls below this many pixels.
    upsample : int
        Sub-pixel precision 1/upsample of the phase correlation.
    lowpass : float or None
        Gaussian low-pass (cycles/px) on the cross power: suppresses noise
        and the re-projection's high-frequency errors.
    return_report : bool
        Also return an :class:`AlignmentReport`.
    shift_stack : bool
        Make the aligned stack (False: None is returned in its place, for callers that
        only need the shifts and shift their own data, as the preprocess step does).

    Returns
    -------
    aligned : ndarray, shape (n_angles, n_rows, n_cols), float32, same device, or None
        ``projections`` shifted by ``-shifts`` (None unless ``shift_stack``).
    shifts : ndarray, shape (n_angles, 2), float64 (numpy)
        (dy, dx) displacement of each projection, pixels (gauge above).
    report : AlignmentReport
        Only with ``return_report``.
    """
    from ..._backend import host_threads

    xp = array_module(projections)
    threads = host_threads()  # the stack's FFT shifts: one call at a time here
    where = "align_projections"
    p = check_projections(xp.asarray(projections, dtype=np.float32), where=where,
                          sinogram=False)
    theta_deg = check_angles(angles, p.shape[0], where=where)
    n_cols = p.shape[2]
    center = check_center(center, n_cols, where=where)
    theta = np.deg2rad(theta_deg)
    shifts = _gauge(_coarse(xp, p, theta, center), theta) if coarse else np.zeros((p.shape[0], 2))
    report = AlignmentReport(coarse_shifts=shifts.copy())
    kw = {} if algorithm == "fbp" else {"iterations": recon_iterations or 20}
    rows = slab_rows(*p.shape, threads) if algorithm == "fbp" else p.shape[1]
    # one work stack, reused by every iteration: the shifted stack, then its re-projection
    # written over it row slab by row slab (each slab's rows are read before they are
    # overwritten); the correlation re-shifts its batch of frames from ``p`` (the same
    # values: the whole stack's padding), so no second copy of the stack is held
    work = xp.empty_like(p)
    for _ in range(int(iterations)):
        fourier_shift(p, -shifts, workers=threads, out=work, chunk_bytes=SLAB_BYTES)
        _reproject(work, theta_deg, center, rows, algorithm, kw, work)
        delta, misfit = _correlate(p, shifts, work, threads, upsample=upsample,
                                   lowpass=lowpass)
        new = _gauge(shifts + delta, theta)
        step = new - shifts
        shifts = new
        report.iterations += 1
        report.update_rms.append(float(np.sqrt((step ** 2).sum(1).mean())))
        report.residual.append(misfit)
        if report.update_rms[-1] < tol:
            report.converged = True
            break
    if shift_stack:
        aligned = fourier_shift(p, -shifts, workers=threads, out=work, chunk_bytes=SLAB_BYTES)
    else:
        aligned = None
    return (aligned, shifts, report) if return_report else (aligned, shifts)


def _correlate(p, shifts: np.ndarray, reproj, threads: int, *, upsample: int,
               lowpass: float | None) -> tuple[np.ndarray, float]:
    """Displacement (n_angles, 2) px of each frame of ``p`` shifted by ``-shifts`` relative
    to its re-projection ``reproj`` (phase correlation), and the relative misfit
    ||aligned - reproj|| / ||aligned||; by :func:`phase_correlate`'s own batches of
    :data:`CORRELATE_BYTES` (the same values as one call on the whole stack), each
    batch's shifted frames made from ``p`` here. ``reproj`` is overwritten (the misfit)."""
    from ._shift import correlate_batch, pad_width

    n, ny, nx = p.shape
    batch = correlate_batch(ny, nx, CORRELATE_BYTES)
    pad = pad_width(-shifts)  # the padding of the whole stack's shift: its values
    delta = np.empty((n, 2))
    misfit = norm = 0.0
    for a in range(0, n, batch):
        part = slice(a, min(a + batch, n))
        aligned = fourier_shift(p[part], -shifts[part], pad=pad, workers=threads)
        delta[part] = phase_correlate(reproj[part], aligned, upsample=upsample, whiten=0.5,
                                      lowpass=lowpass, batch_bytes=CORRELATE_BYTES)
        reproj[part] -= aligned  # the misfit in place: ||reproj - aligned|| == ||aligned - reproj||
        misfit += float(reproj[part].ravel() @ reproj[part].ravel())
        norm += float(aligned.ravel() @ aligned.ravel())
        del aligned
    return delta, float(np.sqrt(misfit / norm)) if norm > 0 else float("nan")


#: float32 bytes of a slab of the FBP volume the re-projection alignment holds at once
#: (its rows are reconstructed and re-projected slab by slab), and of a chunk of frames
#: shifted at once: the alignment then holds the stack, its shifted and re-projected
#: copies and phase_correlate's batch, not an (n_rows, n_cols, n_cols) volume
SLAB_BYTES = 8 * 2**20


#: Work arrays of a batch of the phase correlation, bytes: fixed, so that the alignment's
#: work does not follow the stack (the whitening floor is taken per batch: shifts move by
#: < 1e-7 px from those of 256 MiB batches on the demo and ``simulate:large`` stacks)
CORRELATE_BYTES = 64 * 2**20


def slab_rows(n_angles: int, n_rows: int, n_cols: int, threads: int = 1) -> int:
    """Rows per slab of the FBP re-projection: :data:`SLAB_BYTES` of volume, at least two
    pairs of rows per thread (the NUFFT packs pairs of rows and splits a slab over the
    threads), even (slabs keep the whole stack's row pairs), at most ``n_rows``."""
    rows = max(4 * max(1, int(threads)), SLAB_BYTES // (4 * n_cols * n_cols))
    return min(n_rows, rows + rows % 2)


def _reproject(aligned, theta_deg, center: float, rows: int, algorithm: str, kw: dict, out):
    """Re-projection (n_angles, n_rows, n_cols) of the reconstruction of ``aligned`` into
    ``out``, ``rows`` rows at a time (parallel beam: each row's slice is reconstructed
    from, and projects onto, that row alone; iterative solvers get every row at once,
    their step sizes being norms over the whole volume)."""
    from .._reconstruct import project, reconstruct

    n_cols = aligned.shape[2]
    for r in range(0, aligned.shape[1], rows):
        vol = reconstruct(aligned[:, r:r + rows], theta_deg, algorithm=algorithm,
                          center=center, **kw)
        project(vol, theta_deg, center=center, n_cols=n_cols, out=out[:, r:r + rows])
        del vol  # before the next slab's is made
    return out


def align_work_bytes(n_angles: int, n_rows: int, n_cols: int, threads: int = 1) -> float:
    """Peak work memory of :func:`align_projections` on (n_angles, n_rows, n_cols) beyond
    its input, bytes: one copy of the stack (shifted, then re-projected over itself), a
    batch of the phase correlation (:data:`CORRELATE_BYTES`, its frames shifted again
    from the stack) and a slab of the FBP volume (:func:`slab_rows` rows of n_cols^2:
    the volume is reconstructed and re-projected slab by slab). An upper bound of the
    measured peak (tracemalloc, 131 angles, 2 threads, 2026-12-04 session 10): 84 / 97 /
    135 / 224 MiB at 128 / 256 / 384 / 512 px square (bound 1.07-1.5x; with a second
    copy, session 9: 91 / 126 / 208 / 323 MiB)."""
    stack = n_angles * n_rows * n_cols * 4
    slab = slab_rows(n_angles, n_rows, n_cols, threads) * n_cols * n_cols * 4
    return stack + 1.25 * CORRELATE_BYTES + 1.5 * slab + 16 * 2**20
