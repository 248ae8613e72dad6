"""Public entry points: ``reconstruct`` (numpy, cupy or dask chunked along rows),
``reconstruct_dask``, ``project``, ``backproject``."""

from __future__ import annotations

import numpy as np

from .._backend import array_module
from .._model import ValidationError
from ._checks import check_angles, check_center, check_projections
from ._fbp import fbp
from ._operator import ParallelBeamOperator

__all__ = ["reconstruct", "reconstruct_dask", "project", "backproject", "ALGORITHMS"]

ALGORITHMS = ("fbp", "sirt", "cgls", "tv")
_DEFAULT_ITERATIONS = {"sirt": 100, "cgls": 20, "tv": 100}


def _is_dask(a) -> bool:
    return type(a).__module__.split(".")[0] == "dask"


def reconstruct(projections, angles, *, algorithm: str = "fbp", center: float | None = None,
                iterations: int | None = None, pixel_size: float | None = None,
                filter: str = "ram-lak", padding: str = "zero", nonnegative: bool | None = None,
                eps: float | None = None, out=None, **options):
    """Reconstruct slices from parallel-beam projections.

    Parameters
    ----------
    projections : array, shape (n_angles, n_rows, n_cols)
        Optical density (line integrals of the attenuation in voxel units),
        numpy, cupy or dask (chunked along rows). A 2-D array is one sinogram
        (n_angles, n_cols).
    angles : array_like, shape (n_angles,)
        Tilt angles in degrees (any order, non-uniform or limited range).
    algorithm : {"fbp", "sirt", "cgls", "tv"}
        sirt and cgls model the detector pixel's box response (see
        ``ParallelBeamOperator(response="box")``); fbp and tv do not.
    center : float, optional
        Rotation-axis column, sub-pixel allowed (column ``i``'s centre is at
        ``i``); default ``(n_cols - 1) / 2``.
    iterations : int, optional
        For iterative algorithms; defaults sirt 100, cgls 20, tv 100 (measured, see gpu_bench/RESULTS.recon.md).
    pixel_size : float, optional
        Voxel size in nm: values are returned in 1/nm instead of 1/voxel.
    filter : str
        FBP window: ram-lak, shepp-logan, cosine, hamming, hann, parzen.
    padding : {"zero", "edge"}
        FBP detector padding (to twice the width).
    nonnegative : bool, optional
        Clip to >= 0 in iterative solvers (default True for sirt and tv, False
        for cgls, whose Krylov recurrence a projection would break).
    eps : float, optional
        NUFFT tolerance, default 1e-4 (single precision; image errors << 1e-3).
    out : array, optional
        Output (n_rows, n_cols, n_cols) float32 on the same device (for dask
        input: a zarr array or anything supporting ``da.store``).
    **options
        Solver options, e.g. ``weight`` and ``step_ratio`` for tv (see
        ``recon._solvers.tv``); ``nonneg`` is accepted as an alias of ``nonnegative``.

    Returns
    -------
    array, shape (n_rows, n_cols, n_cols) float32 (z, y, x), same array type as input.
    """
    if "nonneg" in options:
        nonnegative = bool(options.pop("nonneg"))
    algorithm = str(algorithm).lower()
    if algorithm not in ALGORITHMS:
        raise ValidationError(f"reconstruct: 'algorithm' must be one of {ALGORITHMS}; "
                              f"got {algorithm!r}")
    if _is_dask(projections):
        return reconstruct_dask(projections, angles, algorithm=algorithm, center=center,
                                iterations=iterations, pixel_size=pixel_size, filter=filter,
                                padding=padding, nonnegative=nonnegative, eps=eps, out=out,
                                **options)
    xp = array_module(projections)
    p = xp.asarray(projections)
    squeeze = p.ndim == 2
    p = check_projections(p, where="reconstruct")
    angles = check_angles(angles, p.shape[0], where="reconstruct")
    n_cols = p.shape[2]
    center = check_center(center, n_cols, where="reconstruct")
    if pixel_size is not None and not (np.isfinite(pixel_size) and pixel_size > 0):
        raise ValidationError(f"reconstruct: 'pixel_size' must be a positive number of nm; "
                              f"got {pixel_size}")
    p = p.astype(xp.float32, copy=False)
    if eps is None:
        eps = 1e-4
    # Least-squares solvers model the detector pixel's box response (less
    # ringing at sharp edges, see ParallelBeamOperator); FBP and tv keep the
    # band-limited model their filter and defaults were measured with.
    response = "box" if algorithm in ("sirt", "cgls") else None
    op = ParallelBeamOperator(angles, n_cols, center, xp=xp, eps=eps, response=response)
    if algorithm == "fbp":
        if options:
            raise ValidationError(f"reconstruct: unknown options for fbp: {sorted(options)}")
        vol = fbp(p, op, filter=filter, padding=padding, out=None if squeeze else out)
    else:
        from . import _solvers

        n_iter = _DEFAULT_ITERATIONS[algorithm] if iterations is None else int(iterations)
        if n_iter < 1:
            raise ValidationError(f"reconstruct: 'iterations' must be >= 1; got {iterations}")
        if nonnegative is None:
            nonnegative = algorithm != "cgls"
        solver = getattr(_solvers, algorithm)
        vol = solver(op, p, iterations=n_iter, nonnegative=nonnegative, **options)
        if out is not None and not squeeze:
            out[...] = vol
            vol = out
    if pixel_size is not None:
        vol /= xp.float32(pixel_size)
    return vol[0] if squeeze else vol


def project(volume, angles, *, center: float | None = None, n_cols: int | None = None,
            eps: float = 1e-5, out=None):
    """Parallel-beam projection (the forward half of the solvers' matched pair).

    Parameters
    ----------
    volume : array, shape (n_rows, ny, nx) or (ny, nx)
        Values per voxel, numpy or cupy.
    angles : array_like, shape (n_angles,)
        Degrees.
    center : float, optional
        Rotation-axis column, default ``(n_cols - 1) / 2``.
    n_cols : int, optional
        Detector width, default ``nx``.

    Returns
    -------
    array, shape (n_angles, n_rows, n_cols) (or (n_angles, n_cols) for 2-D input),
    float32 line integrals in voxel units.
    """
    xp = array_module(volume)
    v = xp.asarray(volume)
    squeeze = v.ndim == 2
    if squeeze:
        v = v[None]
    if v.ndim != 3 or 0 in v.shape:
        raise ValidationError(f"project: 'volume' must be non-empty (n_rows, ny, nx) or "
                              f"(ny, nx); got shape {v.shape}")
    n_cols = v.shape[2] if n_cols is None else int(n_cols)
    op = ParallelBeamOperator(angles, n_cols, center, shape=v.shape[1:], xp=xp, eps=eps)
    p = op.forward(v.astype(xp.float32, copy=False), out=None if squeeze else out)
    return p[:, 0] if squeeze else p


def backproject(projections, angles, *, center: float | None = None, shape=None,
                eps: float = 1e-5, out=None):
    """Unfiltered back-projection: the exact adjoint of :func:`project`.

    Parameters
    ----------
    projections : array, shape (n_angles, n_rows, n_cols) or (n_angles, n_cols)
    angles : array_like, shape (n_angles,), degrees
    shape : tuple (ny, nx), optional
        Slice shape, default ``(n_cols, n_cols)``.

    Returns
    -------
    array, shape (n_rows, ny, nx) (or (ny, nx)), float32.
    """
    xp = array_module(projections)
    p = xp.asarray(projections)
    squeeze = p.ndim == 2
    p = check_projections(p, where="backproject")
    angles = check_angles(angles, p.shape[0], where="backproject")
    op = ParallelBeamOperator(angles, p.shape[2], center, shape=shape, xp=xp, eps=eps)
    v = op.adjoint(p.astype(xp.float32, copy=False), out=None if squeeze else out)
    return v[0] if squeeze else v


def reconstruct_dask(projections, angles, *, algorithm: str = "fbp", center=None,
                     out=None, **kwargs):
    """Lazy reconstruction of a dask array, one task per chunk of rows.

    Parameters
    ----------
    projections : dask.array.Array, shape (n_angles, n_rows, n_cols)
        Optical density; may be chunked along rows (axis 1) freely. Angle and
        column axes are merged into single chunks (each slice needs all of them).
        Memory per task: one row chunk of projections plus its slices.
    angles : array_like, shape (n_angles,), degrees
    algorithm, center, **kwargs
        As for :func:`spectrotomo.recon.reconstruct`.
    out : array-like, optional
        A zarr array (or anything ``dask.array.store`` accepts) of shape
        (n_rows, n_cols, n_cols): the result is written into it chunk by chunk
        (the caller aligns its chunks with the row chunks) and ``out`` returned.

    Returns
    -------
    dask.array.Array, shape (n_rows, n_cols, n_cols) float32, chunked like the
    rows of the input (or ``out`` when given).
    """
    import dask.array as da

    if projections.ndim != 3 or 0 in projections.shape:
        raise ValidationError("reconstruct: dask 'projections' must be non-empty "
                              f"(n_angles, n_rows, n_cols); got shape {projections.shape}")
    n_angles, _, n_cols = projections.shape
    angles = check_angles(angles, n_angles, where="reconstruct")
    center = check_center(center, n_cols, where="reconstruct")
    stack = projections.rechunk({0: -1, 2: -1}).transpose(1, 0, 2)  # (rows, angles, cols)
    meta = np.empty((0, 0, 0), dtype=np.float32)
    result = da.map_blocks(_reconstruct_block, stack, angles, algorithm, center, kwargs,
                           dtype=np.float32, chunks=(stack.chunks[0], (n_cols,), (n_cols,)),
                           meta=meta)
    if out is not None:
        da.store(result, out, lock=False)
        return out
    return result


def _reconstruct_block(block, angles, algorithm, center, kwargs):
    return reconstruct(block.transpose(1, 0, 2), angles, algorithm=algorithm, center=center,
                       **kwargs)
