"""Linear-combination fitting of many spectra against a few references.

Every spectrum (pixel or voxel) is modelled as ``f @ references`` and fitted
exactly, all at once, by :mod:`._nnls_batch` (closed-form solutions from the
Gram matrix; active set, then support enumeration, for the spectra whose
unconstrained solution is infeasible). Optional unconstrained background
terms (e.g. a line from other elements' smooth absorption) are eliminated
exactly by projecting spectra and references onto their orthogonal
complement (variable projection).

Each spectrum is read from memory once (:mod:`._lcf_blocks`). Measured on a
2-core VM, per spectrum of 100 float32 energies: ~50 ns for the read, 20-25
ns for the product with the references, 20-80 ns for the solve (3-5
references).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._backend import array_module
from .._model import ValidationError
from ._lcf_blocks import DEFAULT_BLOCK, DEFAULT_GPU_BLOCK, fit_blocks
from ._nnls_batch import MAX_REFERENCES, make_plan

__all__ = ["LCFResult", "lcf", "lcf_xarray", "check_references"]

@dataclass
class LCFResult:
    """Result of :func:`lcf`.

    Attributes
    ----------
    fractions : array, shape (..., k)
        Weights of the references (numpy, cupy or dask like the input). NaN
        where the spectrum contained a non-finite value.
    residual : array, shape (...)
        2-norm of the misfit ``spectrum - fractions @ references`` (after
        removing the background terms, if any), in the spectra's unit. From
        the Gram identity ``||s||^2 + f'Gf - 2 b'f``: its absolute accuracy is
        about ``sqrt(eps) * ||s||`` (1e-8 relative in float64).
    r_factor : array, shape (...)
        ``residual**2 / ||spectrum||**2`` (Athena's R-factor); 0 is perfect.
    quality_mask : array of bool, shape (...)
        True where the spectrum was finite and ``r_factor <= r_factor_max``.
    n_masked : int
        Number of spectra skipped because they contained NaN/inf (``-1`` when
        the input is a lazy dask array: count ``~isfinite(residual)`` instead).
    constraints : dict
        ``{"nonneg": bool, "sum_to_one": bool, "background": int}``.
    """

    fractions: Any
    residual: Any
    r_factor: Any
    quality_mask: Any
    n_masked: int
    constraints: dict = field(default_factory=dict)


def check_references(references, *, names=None, rtol: float = 1e-6) -> np.ndarray:
    """Validate a reference matrix and return it as float64 numpy.

    Parameters
    ----------
    references : array, shape (k, n_energies)
    names : sequence of str, optional
        Names used in messages (default ``ref0, ref1, ...``).
    rtol : float
        References whose unit-normalized matrix has a smallest singular value
        below ``rtol`` are linearly dependent (ValidationError naming them);
        below 1e-3 a RuntimeWarning says the fit will be noise-sensitive.

    Raises
    ------
    ValidationError
        Non-finite values, duplicate or collinear references, k > n_energies.
    """
    from .._backend import to_numpy

    ref = np.asarray(to_numpy(references), dtype=np.float64)
    if ref.ndim != 2:
        raise ValidationError(f"lcf: references must be 2-D (k, n_energies); got shape {ref.shape}")
    k, n = ref.shape
    names = list(names) if names is not None else [f"ref{i}" for i in range(k)]
    if not np.all(np.isfinite(ref)):
        bad = [names[i] for i in np.flatnonzero(~np.isfinite(ref).all(axis=1))]
        raise ValidationError(f"lcf: references must be finite; non-finite values in {bad}")
    if k == 0 or k > MAX_REFERENCES:
        raise ValidationError(f"lcf: need 1..{MAX_REFERENCES} references; got {k}")
    if k > n:
        raise ValidationError(
            f"lcf: more references (k={k}) than energies (n_energies={n}): the fit is "
            "underdetermined; measure more energies or use fewer references")
    norms = np.linalg.norm(ref, axis=1)
    if np.any(norms == 0):
        raise ValidationError(f"lcf: references {[names[i] for i in np.flatnonzero(norms == 0)]} are all zero")
    unit = ref / norms[:, None]
    cos = unit @ unit.T
    for i, j in zip(*np.triu_indices(k, 1)):
        if abs(cos[i, j]) > 1 - rtol:
            raise ValidationError(
                f"lcf: references {names[i]!r} and {names[j]!r} are duplicate/collinear "
                f"(cosine {cos[i, j]:.12f}); remove one of them")
    w, v = np.linalg.eigh(cos)
    smallest = float(np.sqrt(max(w[0], 0.0)))  # smallest singular value, unit rows
    if smallest < rtol:
        involved = [names[i] for i in np.flatnonzero(np.abs(v[:, 0]) > 0.1)]
        raise ValidationError(
            f"lcf: references {involved} are linearly dependent (smallest singular "
            f"value of the unit-normalized references {smallest:.3g} < {rtol}); remove one of them")
    if smallest < 1e-3:
        involved = [names[i] for i in np.flatnonzero(np.abs(v[:, 0]) > 0.1)]
        warnings.warn(f"lcf: references {involved} are nearly collinear (smallest "
                      f"singular value {smallest:.3g}); fractions will be noise-sensitive",
                      RuntimeWarning, stacklevel=3)
    return ref


def _background_basis(background, n: int) -> np.ndarray | None:
    if background is None:
        return None
    if isinstance(background, (int, np.integer)):
        if background < 0:
            raise ValidationError(f"lcf: background polynomial order must be >= 0; got {background}")
        t = np.linspace(-1.0, 1.0, n)
        return np.vander(t, int(background) + 1, increasing=True).T
    basis = np.atleast_2d(np.asarray(background, dtype=np.float64))
    if basis.shape[1] != n:
        raise ValidationError(f"lcf: background must have shape (m, {n}); got {basis.shape}")
    return basis


def _project_out(ref: np.ndarray, basis: np.ndarray | None):
    """References seen through the complement of ``basis`` and the pieces to
    correct ``||s||^2`` (``||P s||^2 = ||s||^2 - c^T W c`` with ``c = S B^T``)."""
    if basis is None:
        return ref, None, None
    q, _ = np.linalg.qr(basis.T)  # orthonormal columns spanning the background
    ref_p = ref - (ref @ q) @ q.T
    return ref_p, q, None


def lcf(spectra, references, *, nonneg: bool = True, sum_to_one: bool = False,
        background=None, r_factor_max: float = 0.05, dtype=None,
        block: int | None = None, workers: int = 1,
        names=None) -> LCFResult:
    """Linear-combination fit of every spectrum, exactly and all at once.

    Solves, for every spectrum ``s``,
    ``min_f ||f @ references - s||^2`` subject to ``f >= 0`` (``nonneg``) and
    ``sum(f) == 1`` (``sum_to_one``), both, or neither. The solution is exact
    (equal to ``scipy.optimize.nnls`` for ``nonneg`` alone), computed for all
    spectra with batched matrix products (see :mod:`._nnls_batch`).

    Parameters
    ----------
    spectra : array, shape (..., n_energies)
        numpy, cupy or dask array (dask: the energy axis must be one chunk;
        blocks are fitted with ``map_blocks``). Rows with NaN/inf are masked.
    references : array, shape (k, n_energies)
        Reference spectra on the same energy grid (see ``resample``), k <= 12.
    nonneg : bool
        Constrain every fraction to be >= 0.
    sum_to_one : bool
        Constrain the fractions of each spectrum to sum to exactly 1 (use with
        edge-step normalized spectra and references).
    background : int or array (m, n_energies), optional
        Unconstrained nuisance terms fitted alongside: an int is a polynomial
        order in energy index (0 = offset, 1 = line); they are eliminated
        exactly by projection, and ``residual`` is the misfit after them.
    r_factor_max : float
        Spectra with a larger R-factor are False in ``quality_mask``.
    dtype : numpy dtype, optional
        Compute dtype; default float64 (float32 is faster but loses about
        ``cond(references)**2 * 1e-7`` relative accuracy).
    block : int, optional
        Spectra per block (cache/launch trade-off); default
        ``DEFAULT_BLOCK`` (32768) on the CPU, ``DEFAULT_GPU_BLOCK`` (2^21)
        for cupy. Each block is read from memory once.
    workers : int
        Threads fitting blocks in parallel (numpy only; ufuncs and BLAS
        release the GIL; each thread takes a contiguous run of blocks).
        Default 1; under dask keep 1 (dask parallelises). On a machine
        shared with other jobs a second thread gains little (measured: the
        process got the same CPU share with 1 or 2 threads).
    names : sequence of str, optional
        Reference names for error messages.

    Returns
    -------
    LCFResult

    Examples
    --------
    >>> res = lcf(volume_spectra, refs, nonneg=True, sum_to_one=True)
    >>> res.fractions.shape   # volume_spectra.shape[:-1] + (k,)
    """
    if type(spectra).__module__.split(".")[0] == "xarray":
        raise ValidationError("lcf: spectra is an xarray object; use "
                              "spectrotomo.spectra.lcf_xarray (fits along dim 'energy')")
    ref = check_references(references, names=names)
    k, n = ref.shape
    if spectra.shape[-1] != n:
        raise ValidationError(
            f"lcf: spectra's last axis (energy) has {spectra.shape[-1]} values but "
            f"references have {n}; resample the references onto the measured grid first")
    if r_factor_max < 0:
        raise ValidationError(f"lcf: r_factor_max must be >= 0; got {r_factor_max}")
    dtype = np.dtype(np.float64 if dtype is None else dtype)
    basis = _background_basis(background, n)
    ref_p, q, _ = _project_out(ref, basis)
    if basis is not None:
        check_references(ref_p, names=names)  # a reference inside the background span
    plan = make_plan(ref_p @ ref_p.T, nonneg=nonneg, sum_to_one=sum_to_one)
    n_bg = 0 if q is None else q.shape[1]
    op_np = ref_p.T if q is None else np.concatenate([ref_p.T, q], axis=1)  # (n, k + n_bg)
    constraints = {"nonneg": bool(nonneg), "sum_to_one": bool(sum_to_one),
                   "background": 0 if basis is None else int(basis.shape[0])}
    if type(spectra).__module__.split(".")[0] == "dask":
        return _lcf_dask(spectra, op_np, plan, n_bg, dtype, block, r_factor_max, constraints)
    xp = array_module(spectra)
    if block is None:
        block = DEFAULT_BLOCK if xp is np else DEFAULT_GPU_BLOCK
    op = xp.asarray(op_np.T, dtype=dtype)
    lead = spectra.shape[:-1]
    # an energy-first array seen through a transposed view (e.g. a volume
    # (energy, z, y, x) from lcf_xarray) is read in place: no transposed copy
    energy_major = (spectra.ndim > 1 and not spectra.flags.c_contiguous
                    and xp.moveaxis(spectra, -1, 0).flags.c_contiguous)
    flat = xp.moveaxis(spectra, -1, 0).reshape(n, -1) if energy_major else spectra.reshape(-1, n)
    frac, resid, r_factor, n_masked = fit_blocks(flat, op, plan, n_bg, xp, _check_block(block),
                                                      workers, energy_major)
    quality = r_factor <= r_factor_max  # False where masked (NaN)
    return LCFResult(frac.reshape(*lead, k), resid.reshape(lead), r_factor.reshape(lead),
                     quality.reshape(lead), n_masked, constraints)


def _check_block(block) -> int:
    if int(block) < 1:
        raise ValidationError(f"lcf: block must be >= 1 spectra; got {block}")
    return int(block)


def _lcf_dask(spectra, op_np, plan, n_bg, dtype, block, r_factor_max, constraints):
    import dask.array as da

    n = spectra.shape[-1]
    k = plan.k
    if len(spectra.chunks[-1]) != 1:
        spectra = spectra.rechunk({spectra.ndim - 1: -1})

    def fit(chunk):
        xp = array_module(chunk)
        op = xp.asarray(op_np.T, dtype=dtype)
        lead = chunk.shape[:-1]
        size = block if block is not None else (DEFAULT_BLOCK if xp is np else DEFAULT_GPU_BLOCK)
        frac, resid, rf, _ = fit_blocks(chunk.reshape(-1, n), op, plan, n_bg, xp,
                                             _check_block(size))
        out = xp.concatenate([frac, resid[:, None], rf[:, None]], axis=1)
        return out.reshape(*lead, k + 2)

    chunks = spectra.chunks[:-1] + ((k + 2,),)
    out = da.map_blocks(fit, spectra, dtype=dtype, chunks=chunks)
    frac, resid, rf = out[..., :k], out[..., k], out[..., k + 1]
    quality = da.isfinite(resid) & (rf <= r_factor_max)
    return LCFResult(frac, resid, rf, quality, -1, constraints)


def lcf_xarray(spectra, references, **kwargs):
    """xarray wrapper of :func:`lcf` on dim ``energy``.

    Parameters
    ----------
    spectra : xarray.DataArray
        Any dims including ``energy`` (e.g. a volume (energy, z, y, x) or a
        XANES stack (energy, y, x)).
    references : xarray.DataArray, dims (state, energy)
        Must be on the same energy coordinate (eV) as ``spectra``.
    **kwargs
        Passed to :func:`lcf`.

    Returns
    -------
    xarray.Dataset
        ``fractions`` (state, ...spatial), ``residual``, ``r_factor``,
        ``quality_mask``; attrs ``n_masked`` and the constraints.
    """
    import xarray as xr

    if "energy" not in spectra.dims or "energy" not in references.dims:
        raise ValidationError("lcf_xarray: spectra and references both need an 'energy' dim")
    e_s = np.asarray(spectra["energy"].values, dtype=float)
    e_r = np.asarray(references["energy"].values, dtype=float)
    if e_s.shape != e_r.shape or not np.allclose(e_s, e_r, rtol=0, atol=1e-6):
        raise ValidationError(
            "lcf_xarray: references' energy coordinate differs from the spectra's; "
            "resample them with spectrotomo.spectra.resample(references, spectra.energy)")
    spatial = [d for d in spectra.dims if d != "energy"]
    s = spectra.transpose(*spatial, "energy")
    r = references.transpose(..., "energy")
    state_dim = r.dims[0]
    names = [str(v) for v in r[state_dim].values] if state_dim in r.coords else None
    res = lcf(s.data, r.values, names=names, **kwargs)
    # plain Variables (no DataArray alignment): building the Dataset costs
    # milliseconds, not a reindexing pass over the maps
    coords = {d: spectra[d].variable for d in spatial if d in spectra.coords}
    coords.update({c: r[c].variable for c in r.coords if r[c].dims == (state_dim,)})
    extra = {key: spectra.attrs[key] for key in ("pixel_size", "pixel_size_units")
             if key in spectra.attrs}
    nd = len(spatial)
    ds = xr.Dataset({
        "fractions": ((state_dim, *spatial), res.fractions.transpose(nd, *range(nd)),
                      {"units": "1", **extra}),
        "residual": (spatial, res.residual, {"units": spectra.attrs.get("units", ""), **extra}),
        "r_factor": (spatial, res.r_factor, {"units": "1", **extra}),
        "quality_mask": (spatial, res.quality_mask, dict(extra)),
    }, coords=coords)
    ds.attrs.update({"n_masked": res.n_masked, **{k: int(v) for k, v in res.constraints.items()}})
    ds.attrs.update(extra)
    return ds
