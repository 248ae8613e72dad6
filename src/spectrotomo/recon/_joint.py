"""Quantitative limited-angle reconstruction, joint across the energies of a sample.

Problem (per slice; ``z_e = x_e / s_e`` the energies whitened by their
sinogram noise ``s_e``, ``Y = U^T z`` their spectral components)::

    min_x  sum_e 0.5 || W^1/2 (A x_e - b_e) ||^2 / s_e^2
           + lam * sum_voxels || (beta_c grad Y_c)_{c, direction} ||_2 ,   x >= 0

- ``W`` = ramp x angular weight (the FBP filter) on the projector's periodic
  window: ``A^T W A`` is then a 2-D convolution close to the identity on the
  measured frequencies (:class:`~._toeplitz.FilteredNormal`), applied with
  zero-padded FFTs -- no NUFFT inside the iterations; the first gradient step
  from zero is a filtered back-projection, and the iterate starts there
  (clipped at 0).
- ``U`` (orthonormal) = eigenvectors of the whitened sinograms' energy Gram
  matrix, largest first: component 0 carries the structure every energy
  shares, the others the chemistry (edge jumps) and noise. One vectorial TV
  over all components shares the edge set; ``beta_c`` (1 for component 0,
  ``spectral_weight`` for the rest) penalises chemistry changes where the
  structure has no edge, so an edge jump is not the difference of two
  independent noise draws. Measured (gpu_bench/RESULTS.recon.md, small seed
  31, -65..+65 deg, 2e4 photons; interior edge-jump RMS error / mean jump,
  O, Mn, Co, Ni): independent per-energy TV 0.07, 0.11, 1.87, 1.18; joint
  0.06, 0.07, 0.91, 0.57 (demo: 0.11, 0.18, 3.42, 2.17 -> 0.07, 0.10, 1.68,
  1.07); amounts and masks equal. Plain vectorial TV (beta = 1) was no
  better than independent TV (seed 11: Co 1.90 vs 1.90). The data term and the
  non-negativity are invariant under the orthogonal ``U``
  (``P_{x>=0}`` in component space is ``U^T max(U Y, 0)``).
- Solver: Condat-Vu primal-dual (PDHG with the data term as a gradient
  step), tau / sigma = ``step_ratio`` (100: large primal steps fill the wedge
  fastest; 10 and 1 measured slower), coarse-to-fine: the same problem on
  2x-binned data (rows and columns) down to >= 16 columns, ``coarse_iterations``
  each, upsampled as the start of the next level. The wedge is filled by the
  regulariser over distances of the particle's size; on the coarse grids
  that costs 1/8, 1/64 ... of an iteration. Measured (small, 16 rows, RMSE
  per voxel x 1e3 after 5 / 20 fine iterations): single level 2.74 / 1.96,
  two coarse levels of 40 iterations 1.73 / 1.62. Defaults 30 coarse + 4
  fine iterations (were 40 + 5), with the loop's fixes: CPU time x FBP
  9.7 -> 6.4-6.7 (small s31, s77), 16.4 -> 12.1 (demo s41) at RMSE +5 %,
  amounts within 0.2 pp, Co/Ni edge-jump error +15 % (gpu_bench/RESULTS.recon.md).
  Measured and not kept: carrying the dual field up the levels, and
  ``fine_step_ratio`` 30, each halve the interior edge-jump noise at a few %
  RMSE (small s31: Co 0.87 -> 0.43), but flatten the grains' chemistry in
  the pipeline (simulate:small seed 5, dual carried: class voxel agreement
  0.83, class-fraction error 27.6-28.9 pp against 0.86-0.87 / 17.4-18.6 pp).
- Per-slice (2-D) TV: rows are independent, so any chunk of rows can be
  solved alone (the spectral basis, noise and weight are estimated from the
  chunk's own data, or passed in). 3-D TV was measured with no gain on the
  small sample (RMSE 1.13e-3 both, same amounts), so rows need no halo. On the
  host an iteration runs block by block of rows (~1 MB of every channel) so its
  ~20 elementwise passes stay in cache: demo s41 solve 21-22 -> 11-13 CPU s,
  same values (gpu_bench/RESULTS.recon.md, "cost"); the blocks of an iteration run
  in the process's host thread pool (chunks solved side by side share it).
- Shrink-wrap support (``support_fraction``, default 0.3), on the coarse levels:
  the iterate is held at 0, in every energy, where the smoothed structure
  (leading component, binomial sigma 1 voxel) is below 0.3 x its slice's
  maximum; the support is taken from each level's start and re-estimated every
  ``SUPPORT_EVERY`` (10) iterations (as in phase retrieval's shrink-wrap). Why:
  the wedge is not filled by the TV term here -- with no TV along y at all, or
  4x the weight, the voxels outside y-facing surfaces came out the same (small
  seed 0: 0.21 of the solid level one voxel beyond the surface voxel, x faces
  0.03) -- but by the non-negativity, and what that cannot remove (the
  positive smear outside the particle) a support can. The full grid starts
  from the clean coarse solution and stays free: held there too, the smear fell
  further (0.21 -> 0.02; coarse only 0.12; RMSE 1.15e-3 -> 0.82e-3 / 0.99e-3)
  but the pipeline's Co amounts moved by -0.7..-1.1 pp (small 0, demo 41;
  coarse only +0.2); the particle masks' y extent +2 -> 0 either way
  (gpu_bench/RESULTS.recon.md, "y extent"). Per slice, so chunks of rows get the
  same support; a threshold of 0.4 ratchets the surface inwards (extent -1..-2).
- Contrast restoration: one Bregman refinement on the full grid after the solve
  (``debias_iterations``, :mod:`._debias`): TV shrinks the chemistry contrast of
  grains (small seed 0: O-rich grains' TM/O 0.925 x target for a true 0.909).
  ``debias_level=1`` (on the first binned level) costs ~1/3 less on demo but,
  measured in the pipeline, class-fraction error +0.5-0.7 pp on small seeds 0-3
  and Co amount -3.7 vs -2.8 % on demo seed 0: not the default.
- Fit-then-reconstruct (``components``): a XANES series of 25 energies is
  spanned by a few spectra; keeping the leading k whitened components solves a
  k-channel problem (cost ~k / 25) with the same data term on their span.
- ``weight="auto"``: ``lam = AUTO_WEIGHT * noise_gain``, with ``noise_gain``
  the per-voxel standard deviation of the filtered back-projection of unit
  white noise (exact, from the filter) -- in whitened units the image noise
  itself; ``s_e`` is the robust (MAD) noise of second differences along the
  detector (:func:`~._regularize.sinogram_noise`). ``AUTO_WEIGHT`` was chosen
  on 2-D phantoms and checked on others (gpu_bench/limited_angle_bench.py).
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

from .._backend import array_module, blas_single_thread
from .._model import ValidationError
from ._checks import check_angles, check_center
from ._debias import bregman_refine
from ._multigrid import bin2 as _bin2
from ._multigrid import levels as _levels
from ._multigrid import row_blocks as _row_blocks
from ._multigrid import upsample as _upsample
from ._nufft import run_batches
from ._regularize import divergence, gradient, project_ball, sinogram_noise
from ._solvers import Budget, SolverStoppedWarning
from ._spectral import Basis, mix, spectral_basis
from ._toeplitz import FilteredNormal, filtered_normal

__all__ = ["reconstruct_joint", "od_noise", "AUTO_WEIGHT"]

AUTO_WEIGHT = 0.25  # lam / image noise, see the module docstring
SUPPORT_FRACTION = 0.3  # shrink-wrap threshold / slice maximum, see the module docstring
SUPPORT_EVERY = 10  # iterations between shrink-wrap updates


def _one_blas_thread(xp):
    """Host BLAS on one thread during a solve (:func:`~spectrotomo._backend.blas_single_thread`):
    its only products are the 8 x 8 channel mixes, memory-bound, and OpenBLAS's
    threads spin between them, taking the cores from the FFTs. Measured (small s31,
    2-core VM): 3.03 -> 1.69 CPU s per solve, same result."""
    return blas_single_thread() if xp is np else contextlib.nullcontext()


def _solve(N: FilteredNormal, g0, basis: Basis, lam: float, beta, *, iterations: int,
           nonneg: bool, step_ratio: float, y, joint: bool = True, callback=None,
           budget: Budget | None = None, support=None, support_fraction: float = 0.0,
           first=None):
    """Condat-Vu iterations in component space; g0, y: (C, R, ny, nx) components
    (``y``, the start, is overwritten); returns the last iterate. ``first``: ``N y`` of
    the start if the caller has it (the refinement). ``support`` (1, R, ny, nx) float32
    0/1: the iterate is held at 0 outside; re-estimated in place from the iterate every
    ``SUPPORT_EVERY`` iterations (shrink-wrap)."""
    xp = N.xp
    C = g0.shape[0]
    b = xp.asarray(beta.astype(np.float32)).reshape(C, 1, 1, 1, 1)
    bc = b[:, 0]  # (C, 1, 1, 1): per channel of y
    knorm = float(np.sqrt(8.0) * beta.max())  # ||beta grad|| (2-D forward differences)
    # 1/tau - sigma ||K||^2 >= L/2 with tau/sigma = step_ratio
    tau = 0.99 / (N.lipschitz / 2 + knorm / step_ratio)
    sigma = 1.0 / (step_ratio * knorm)
    tau, lam = xp.float32(tau), xp.float32(lam)
    sb = (b * xp.float32(sigma)).astype(xp.float32)
    q = xp.zeros((C, 2, *g0.shape[1:]), dtype=xp.float32)
    g = xp.empty_like(q)
    d = xp.empty_like(y)
    step = xp.empty_like(y)
    # rows are independent: blocks of rows, so that the ~20 elementwise passes of an
    # iteration stay in cache, in the host pool (module docstring)
    def block(r0, r1):  # one iteration on rows r0:r1 of every channel (y, step, k: current)
        r = slice(r0, r1)
        yb, sp, db, qb, gb = y[:, r], step[:, r], d[:, r], q[:, :, r], g[:, :, r]
        if k == 0 and first is not None:
            sp[...] = first[:, r]
        else:
            N.apply(yb, out=sp)
        sp -= g0[:, r]
        # div(beta q) = beta div(q), beta per channel: one pass over y, not two over q
        # (bit-identical for beta 1 and 16: powers of two scale exactly)
        sp -= xp.multiply(divergence(xp, qb, db), bc, out=db)
        sp *= -tau
        sp += yb  # the gradient step; the projections below finish the new iterate
        if nonneg:
            sp[...] = basis.nonneg(xp, sp)
        if support is not None:
            sp *= support[:, r]
        xp.subtract(sp, yb, out=db)
        db += sp  # over-relaxed 2 y_new - y
        qb += xp.multiply(gradient(xp, db, gb), sb, out=gb)
        project_ball(xp, qb, lam, joint=joint)

    ranges = [(r.start, r.stop) for r in _row_blocks(xp, y.shape)]
    for k in range(iterations):
        run_batches(block, ranges, parallel=xp is np)
        y, step = step, y
        if callback is not None:
            callback(k, y)
        if budget is not None and budget.tick() and k + 1 < iterations:
            break
        if support is not None and (k + 1) % SUPPORT_EVERY == 0 and k + 1 < iterations:
            basis.support(xp, y, support_fraction, out=support)
    return y


def _pyramid(od, angles, center: float, *, weight: float, noise: float, basis: Basis, beta,
             levels: int, iterations: int, coarse_iterations: int, nonneg: bool, joint: bool,
             step_ratio: float, fine_step_ratio: float, eps: float, callback=None,
             budget=None, debias_iterations: int = 0, debias_level: int = 0,
             support_fraction: float = 0.0, top: bool = True):
    """Solve on the whitened component sinograms ``od`` (K, A, R, n) (``basis``: the
    energies' basis), coarse levels first; returns components (K, R, n, n). ``noise``:
    white-noise std of ``od`` per pixel (1 on the full grid).
    ``debias_iterations`` > 0: one Bregman refinement of that many iterations on this
    level (recon/_debias.py). ``top``: the full grid (no support there)."""
    xp = array_module(od)
    C, A, R, n = od.shape
    N = filtered_normal(angles, n, center, xp=xp, eps=eps)  # shared by the chunks of a sample
    sino = xp.ascontiguousarray(od.transpose(1, 0, 2, 3).reshape(A, C * R, n))
    g0 = N.rhs(sino).reshape(C, R, n, n)  # FBP of every component
    lam = weight * noise * N.noise_gain  # weight x this level's image noise
    if levels > 0:  # 2 x 2 binned data: half the white noise per pixel
        coarse = _pyramid(
            _bin2(od), angles, (center - 0.5) / 2, weight=weight, noise=noise / 2, basis=basis,
            beta=beta, levels=levels - 1, iterations=coarse_iterations,
            coarse_iterations=coarse_iterations, nonneg=nonneg, joint=joint,
            step_ratio=step_ratio, fine_step_ratio=step_ratio, eps=eps, budget=budget,
            debias_iterations=debias_iterations if debias_level == 1 else 0,
            debias_level=debias_level - 1, support_fraction=support_fraction, top=False)
        y0 = _upsample(xp, coarse, (C, R, n, n))
    elif nonneg:
        y0 = basis.nonneg(xp, g0)
    else:
        y0 = g0.copy()
    # the support on the coarse levels only: the full grid starts from their clean
    # solution and its own steps (and the refinement) stay free (module docstring)
    support = (basis.support(xp, y0, support_fraction)
               if support_fraction > 0 and not top else None)
    solve = dict(nonneg=nonneg, step_ratio=fine_step_ratio, joint=joint, budget=budget,
                 support=support, support_fraction=support_fraction)
    y = _solve(N, g0, basis, lam, beta, iterations=iterations, y=y0, callback=callback,
               **solve)
    # restore the TV contrast loss (recon/_debias.py); skipped once max_seconds is spent
    if debias_iterations and debias_level == 0 and not (budget is not None and budget.out):
        y = bregman_refine(N, g0, y, lambda g, y1, ny1: _solve(
            N, g, basis, lam, beta, iterations=debias_iterations, y=y1, first=ny1, **solve))
    return y


def od_noise(od) -> np.ndarray:
    """White-noise standard deviation of each energy's optical density.

    Parameters
    ----------
    od : array, shape (n_energies, n_angles, n_rows, n_cols)
        Optical density (numpy or cupy), e.g. one chunk of rows of a sample.

    Returns
    -------
    ndarray, shape (n_energies,), float64: the robust (MAD) noise of second
    differences along the detector, as :func:`reconstruct_joint` estimates it;
    pass it as ``noise=`` so that every chunk of a sample gets the same weights.
    """
    xp = array_module(od)
    return sinogram_noise(xp, xp.asarray(od))


def reconstruct_joint(od, angles, *, center: float | None = None, weight="auto",
                      iterations: int = 4, coarse_iterations: int = 30,
                      levels: int | None = None, nonneg: bool = True, joint: bool = True,
                      spectral_weight: float = 16.0, step_ratio: float = 100.0,
                      fine_step_ratio: float = 100.0,
                      noise=None, pixel_size: float | None = None, eps: float = 1e-4,
                      callback=None, max_seconds: float | None = None, progress=None,
                      debias_iterations: int = 5, debias_level: int = 0,
                      components: int | None = None, warn_on_stop: bool = True,
                      support_fraction: float | None = SUPPORT_FRACTION):
    """Regularised, non-negative limited-angle reconstruction of all energies at once.

    Parameters
    ----------
    od : array, shape (n_energies, n_angles, n_rows, n_cols)
        Optical density (line integrals in voxel units) of every energy of
        one sample, same angles and rotation axis; numpy or cupy (float32).
    angles : array_like, shape (n_angles,)
        Tilt angles in degrees (e.g. -65..+65).
    center : float, optional
        Rotation-axis column (column i's centre at i), default ``(n_cols - 1) / 2``.
    weight : "auto" or float
        TV weight in units of the reconstructed image's noise standard
        deviation; "auto" = ``AUTO_WEIGHT`` (see the module docstring).
    iterations : int
        Primal-dual iterations on the full grid.
    coarse_iterations : int
        Iterations on each coarser (2x binned) level.
    levels : int, optional
        Coarse levels; default: halve until the coarsest has >= 16 columns.
    nonneg : bool
        Constrain every energy's attenuation to >= 0.
    joint : bool
        Joint spectral TV (default). False: independent TV per energy (the
        same solver, for comparison).
    spectral_weight : float
        ``beta`` of the spectral components after the first (see module docstring).
    step_ratio : float
        Primal / dual step ratio of the solver on the coarse levels (large
        primal steps fill the missing wedge).
    fine_step_ratio : float
        The same on the full grid, where the wedge is already filled from the
        coarse levels: a smaller ratio (larger dual steps) removes the noise the
        first full-grid step brings back into the chemistry components sooner
        (and flattens the chemistry more, see the module docstring).
    noise : array_like, shape (n_energies,), optional
        White-noise standard deviation of each energy's optical density;
        default estimated from the data (:func:`~._regularize.sinogram_noise`),
        e.g. pass the whole sample's values when reconstructing chunks of rows.
    pixel_size : float, optional
        Voxel size in nm: values in 1/nm instead of 1/voxel.
    eps : float
        NUFFT tolerance of the one filtered back-projection per level.
    callback : callable, optional
        ``callback(k, y)`` after each full-grid iteration (components).
    max_seconds : float, optional
        Wall-clock cap of the solve: once reached, every level left does one
        iteration (the full grid's first brings in the data's fine detail), the
        current iterate is returned and a :class:`SolverStoppedWarning` names the
        iterations done (``max_seconds`` = 0: one iteration per level; no warning
        with ``warn_on_stop=False``, as for :func:`~spectrotomo.recon.sirt`).
    progress : callable, optional
        ``progress(done, total, elapsed_s)`` after every iteration of every level;
        ``total`` = ``iterations`` + ``levels`` x ``coarse_iterations``
        (as for the solvers of :func:`~spectrotomo.recon.reconstruct`), plus
        ``debias_iterations``.
    debias_iterations : int
        Iterations of one Bregman refinement after the solve of level ``debias_level``
        (the data residual added back, warm start), restoring the contrast TV
        takes from small regions such as grains of another composition
        (:func:`~._debias.bregman_refine`); 0: none. Counted by ``progress``;
        skipped once ``max_seconds`` is spent, cut short if it runs out during it.
    debias_level : int
        Where the refinement runs: 0 the full grid, 1 the first 2x binned level (the
        contrast it restores is that of regions many voxels wide; 8x cheaper there),
        ... (at most the coarsest level).
    components : int, optional
        Spectral components kept (fit-then-reconstruct): the data are projected onto
        the leading ``components`` of the noise-whitened energies (``U``, module
        docstring) and only those are reconstructed -- exact for the data in their
        span, the rest (noise) dropped; cost ~ ``components / n_energies``.
        Non-negativity is the projected step ``U^T max(U Y, 0)`` in the iterations
        and exact on the returned energies. Default: all (no truncation).
    warn_on_stop : bool
        Warn (:class:`SolverStoppedWarning`) when ``max_seconds`` ends the solve early.
    support_fraction : float or None
        Shrink-wrap support (module docstring): on the coarse levels, voxels whose smoothed
        structure (leading spectral component; binomial, sigma 1 voxel, per slice) is
        below this fraction of the slice's maximum are held at 0 in every energy,
        re-estimated from the iterate every ``SUPPORT_EVERY`` iterations. Default
        ``SUPPORT_FRACTION``; None or 0: off (non-negativity alone).

    Returns
    -------
    array, shape (n_energies, n_rows, n_cols, n_cols), float32 (energy, z, y, x),
    same array module as ``od``.

    Notes
    -----
    Rows (slices) are independent: chunks of rows may be reconstructed
    separately (pass ``noise`` for identical weights); the spectral basis is
    estimated from each call's data.
    """
    xp = array_module(od)
    od = xp.asarray(od)
    if od.ndim != 4 or 0 in od.shape:
        raise ValidationError("reconstruct_joint: 'od' must be (n_energies, n_angles, n_rows, "
                              f"n_cols); got shape {od.shape}")
    od = od.astype(xp.float32, copy=False)
    if not bool(xp.isfinite(od).all()):
        raise ValidationError("reconstruct_joint: 'od' must be finite; found NaN or inf")
    C, A, R, n = od.shape
    angles = check_angles(angles, A, where="reconstruct_joint")
    center = check_center(center, n, where="reconstruct_joint")
    for name, v, lo, hi in (("iterations", iterations, 1, np.inf),
                            ("coarse_iterations", coarse_iterations, 0, np.inf),
                            ("debias_iterations", debias_iterations, 0, np.inf),
                            ("components", C if components is None else components, 1, C)):
        if int(v) != v or not lo <= v <= hi:
            raise ValidationError(f"reconstruct_joint: {name!r} must be an integer in "
                                  f"[{lo}, {hi}]; got {v}")
    weight = AUTO_WEIGHT if isinstance(weight, str) and weight == "auto" else weight
    if isinstance(weight, str) or not np.isfinite(weight) or weight < 0:
        raise ValidationError(f"reconstruct_joint: 'weight' must be 'auto' or a number >= 0; "
                              f"got {weight!r}")
    if max_seconds is not None and not (np.isfinite(max_seconds) and max_seconds >= 0):
        raise ValidationError(f"reconstruct_joint: 'max_seconds' must be a number of seconds "
                              f">= 0; got {max_seconds}")
    if support_fraction is not None and not (np.isfinite(support_fraction)
                                             and 0 <= support_fraction < 1):
        raise ValidationError(f"reconstruct_joint: 'support_fraction' must be None or a number "
                              f"in [0, 1); got {support_fraction}")
    if pixel_size is not None and not (np.isfinite(pixel_size) and pixel_size > 0):
        raise ValidationError(f"reconstruct_joint: 'pixel_size' must be a positive number of "
                              f"nm; got {pixel_size}")
    s = sinogram_noise(xp, od) if noise is None else np.asarray(noise, float).reshape(C)
    # Noise-free input (simulations): keep a floor so the regulariser still fills the wedge.
    s = np.maximum(s, 1e-4 * max(float(xp.abs(od).max()), 1e-30))
    U = spectral_basis(od, s)[:, :components or C] if joint else np.eye(C)
    beta = np.full(U.shape[1], float(spectral_weight) if joint else 1.0)
    beta[0] = 1.0
    white = od / xp.asarray(s.astype(np.float32)).reshape(C, 1, 1, 1)
    basis = Basis.of(xp, U)  # cast and transposed once for every level
    white = mix(xp, basis.UTd, white)
    levels = _levels(n) if levels is None else int(levels)
    budget = Budget(int(iterations) + levels * int(coarse_iterations) + int(debias_iterations),
                    max_seconds, progress)
    with _one_blas_thread(xp):
        y = _pyramid(white, angles, center, weight=float(weight), noise=1.0,
                     basis=basis, beta=beta,
                     levels=levels, iterations=int(iterations),
                     coarse_iterations=int(coarse_iterations), nonneg=nonneg, joint=joint,
                     step_ratio=float(step_ratio), fine_step_ratio=float(fine_step_ratio),
                     eps=float(eps), callback=callback, budget=budget,
                     debias_iterations=int(debias_iterations),
                     debias_level=min(int(debias_level), levels),
                     support_fraction=float(support_fraction or 0.0))
    if warn_on_stop and budget.done < budget.total:
        warnings.warn(f"reconstruct_joint: stopped after {budget.done} of {budget.total} "
                      f"iterations (all levels): max_seconds = {max_seconds:g} s reached",
                      SolverStoppedWarning, stacklevel=2)
    scale = s / (1.0 if pixel_size is None else float(pixel_size))
    x = mix(xp, xp.asarray((scale[:, None] * U).astype(np.float32)), y)
    if nonneg:
        xp.maximum(x, 0, out=x)
    return x.astype(xp.float32, copy=False)
