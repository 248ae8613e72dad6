"""Chunk-parallel reconstruction of dask arrays chunked along detector rows."""

from __future__ import annotations

import numpy as np

from .._model import ValidationError
from ._checks import check_angles, check_center

__all__ = ["reconstruct_dask"]


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
    from ._reconstruct import reconstruct

    return reconstruct(block.transpose(1, 0, 2), angles, algorithm=algorithm, center=center,
                       **kwargs)
