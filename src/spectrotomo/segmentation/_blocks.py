"""Block iteration for out-of-core segmentation: blocks, halos and scratch arrays.

A volume is walked in cubic blocks of ``chunk`` voxels; an operation that looks
``halo`` voxels around each voxel reads the block extended by ``halo`` (clipped
at the array edge, where the operation's own border rule then applies exactly
as on the whole volume) and keeps the core. Inputs are anything sliceable to a
block: numpy or zarr arrays, dask arrays, xarray DataArrays (read lazily from a
store). Intermediates live in :class:`Scratch`, compressed zarr arrays in a
temporary directory, so memory per step is a few blocks whatever the volume.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .._model import ValidationError

__all__ = ["Scratch", "blocks", "extend", "read", "check_chunk"]


def check_chunk(chunk) -> int:
    if not isinstance(chunk, (int, np.integer)) or chunk < 8:
        raise ValidationError(f"chunk must be an integer >= 8 voxels; got {chunk!r}")
    return int(chunk)


def blocks(shape, chunk: int) -> list[tuple[slice, ...]]:
    """Core slices of the blocks tiling ``shape`` (raster order, last axis fastest)."""
    ranges = [[slice(a, min(a + chunk, n)) for a in range(0, n, chunk)] for n in shape]
    return [tuple(s) for s in itertools.product(*ranges)]


def extend(core, shape, halo) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """``core`` grown by ``halo`` voxels per axis (clipped): (extended, core within it)."""
    halo = np.broadcast_to(np.asarray(halo, dtype=int), (len(shape),))
    ext = tuple(slice(max(0, s.start - h), min(n, s.stop + h))
                for s, h, n in zip(core, halo, shape))
    inner = tuple(slice(s.start - e.start, s.stop - e.start) for s, e in zip(core, ext))
    return ext, inner


def read(arr, sl, dtype=None) -> np.ndarray:
    """One block of a numpy / zarr / dask array or xarray DataArray, as numpy."""
    block = arr[sl]
    if hasattr(block, "compute"):  # dask array, or a dask-backed DataArray
        block = block.compute()
    block = np.asarray(getattr(block, "values", block))
    return block if dtype is None else block.astype(dtype, copy=False)


class Scratch:
    """Temporary zarr arrays (one directory, removed by :meth:`close` / ``with``).

    Parameters
    ----------
    chunk : int
        Block edge (voxels); the last three axes are chunked ``chunk`` so that a
        block write touches whole chunks, leading axes (e.g. 2 maps) whole: a
        ``chunk`` there would pad each chunk to ``chunk`` maps (1 GiB of float32
        at 128).
    directory : path-like, optional
        Parent directory (default: the system temporary directory). Put it on a
        disk with room for a few volumes of the segmented size.
    """

    def __init__(self, chunk: int, directory=None):
        self.chunk = check_chunk(chunk)
        self.path = Path(tempfile.mkdtemp(prefix="spectrotomo-seg-", dir=directory))
        self._n = 0

    def array(self, shape, dtype, *, fill=0):
        import zarr

        self._n += 1
        shape = tuple(int(n) for n in shape)
        chunks = shape[:-3] + (self.chunk,) * min(3, len(shape))
        return zarr.create_array(store=str(self.path / f"a{self._n}"), shape=shape,
                                 chunks=chunks, dtype=dtype,
                                 fill_value=fill, zarr_format=3)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
