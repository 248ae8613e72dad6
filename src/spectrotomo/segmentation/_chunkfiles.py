"""Scratch arrays as one file per chunk, read and written on the calling thread.

:class:`ChunkFiles` is the array type of :class:`._blocks.Scratch`: a regular chunk
grid in a directory, each chunk one file (zstd-compressed, or the raw bytes of data
that barely compress), missing chunks reading as the fill value. It takes numpy basic
indexing (integers, unit-step slices, ``...``) like the zarr arrays it replaces.

Why not zarr: zarr 3 runs every read and write through one asyncio event-loop thread
(tasks, futures, codec dispatch in Python), which holds the GIL while the block threads
wait for it. py-spy at 256^3 (segment, 2 threads): that loop held the GIL in 53 % of the
GIL-holding samples, more than edt and all the block functions together
(gpu_bench/RESULTS.pipeline.md, session 10). Here a block's chunks are decoded on the
thread that asks for them: file reads and zstd (numcodecs) release the GIL, and the
Python around them is a few lines per chunk. The scratch is private and temporary, so
no zarr metadata is kept: the bytes of the values are the same (lossless), hence the
same results.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from pathlib import Path

import numpy as np

__all__ = ["ChunkFiles"]

#: zstd level of compressed chunks: 0 is zstd's default (3), the level of zarr's "auto"
#: compressor that the scratch arrays had before
ZSTD_LEVEL = 0


class ChunkFiles:
    """A chunked array stored as one file per chunk in ``path`` (created empty).

    Parameters
    ----------
    path : path-like
        Directory of the chunk files (made here; one array per directory).
    shape : tuple of int
        Array shape.
    dtype : numpy dtype
        Element type.
    chunks : tuple of int
        Chunk edges, one per axis; edge chunks are clipped to the shape.
    fill : scalar
        Value of chunks never written.
    compress : bool
        zstd-compress the chunks (False: raw bytes, for data that barely compress).

    Writes of whole chunks from several threads at once are safe (each chunk one
    file); partial-chunk writes read, modify and rewrite the chunk under a lock.
    """

    def __init__(self, path, shape, dtype, chunks, *, fill=0, compress: bool = True):
        self.path = Path(path)
        self._dir = str(self.path)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.chunks = tuple(int(c) for c in chunks)
        if len(self.chunks) != len(self.shape) or any(c < 1 for c in self.chunks):
            raise ValueError(f"ChunkFiles: chunks {chunks} do not fit shape {shape}")
        self.fill_value = np.array(fill, dtype=self.dtype)[()]
        self.compress = bool(compress)
        self.path.mkdir(parents=True)
        self._lock = threading.Lock()

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape)))

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self):  # a dask worker gets the path, not the lock
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.Lock())

    def __getitem__(self, key) -> np.ndarray:
        region, squeeze = self._region(key)
        out = np.empty(tuple(s.stop - s.start for s in region), self.dtype)
        for idx, inner, within in self._spans(region):
            chunk = self._load(idx)
            if chunk is None:
                out[within] = self.fill_value
            else:
                out[within] = chunk[inner]
        return out.reshape([n for n, sq in zip(out.shape, squeeze) if not sq])

    def __setitem__(self, key, value) -> None:
        region, squeeze = self._region(key)
        full = tuple(s.stop - s.start for s in region)
        value = np.asarray(value, dtype=self.dtype)
        # the key's integer axes are absent from the value
        value = np.broadcast_to(value, [n for n, sq in zip(full, squeeze) if not sq])
        value = value.reshape(full)
        for idx, inner, within in self._spans(region):
            if all(s.start == 0 and s.stop == n for s, n in zip(inner, self._extent(idx))):
                self._store(idx, value[within])
                continue
            with self._lock:  # part of a chunk: read-modify-write
                chunk = self._load(idx)
                chunk = (np.full(self._extent(idx), self.fill_value, self.dtype)
                         if chunk is None else chunk.copy())
                chunk[inner] = value[within]
                self._store(idx, chunk)

    def _region(self, key):
        """``key`` as one unit-step slice per axis (clipped) and which axes were integers."""
        key = key if isinstance(key, tuple) else (key,)
        if sum(k is Ellipsis for k in key) > 1:
            raise IndexError("ChunkFiles: at most one '...'")
        if Ellipsis in key:
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        if len(key) != self.ndim:
            raise IndexError(f"ChunkFiles: {len(key)} indices for {self.ndim} axes")
        region, squeeze = [], []
        for k, n in zip(key, self.shape):
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                if step != 1:
                    raise IndexError("ChunkFiles: slices of step 1 only")
                region.append(slice(start, max(start, stop)))
                squeeze.append(False)
            else:
                i = int(k) + n if int(k) < 0 else int(k)
                if not 0 <= i < n:
                    raise IndexError(f"ChunkFiles: index {k} out of range for size {n}")
                region.append(slice(i, i + 1))
                squeeze.append(True)
        return tuple(region), squeeze

    def _spans(self, region):
        """(chunk index, slices within the chunk, slices within the region) of every chunk
        the region touches, in C order."""
        ranges = [range(s.start // c, -(-s.stop // c)) for s, c in zip(region, self.chunks)]
        for idx in itertools.product(*ranges):
            inner, within = [], []
            for i, s, c in zip(idx, region, self.chunks):
                lo, hi = max(s.start, i * c), min(s.stop, (i + 1) * c)
                inner.append(slice(lo - i * c, hi - i * c))
                within.append(slice(lo - s.start, hi - s.start))
            yield idx, tuple(inner), tuple(within)

    def _extent(self, idx) -> tuple[int, ...]:
        return tuple(min(c, n - i * c) for i, c, n in zip(idx, self.chunks, self.shape))

    def _file(self, idx) -> str:
        # a str join: pathlib's parsing per chunk is Python under the GIL
        return f"{self._dir}/{'.'.join(map(str, idx))}"

    def _load(self, idx) -> np.ndarray | None:
        """The chunk's values (read-only), or None when it was never written."""
        try:
            with open(self._file(idx), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        if self.compress:
            data = _codec().decode(data)
        return np.frombuffer(data, self.dtype).reshape(self._extent(idx))

    def _store(self, idx, values: np.ndarray) -> None:
        data = np.ascontiguousarray(values)
        payload = _codec().encode(data) if self.compress else memoryview(data).cast("B")
        # a new file under a temporary name, then renamed: a reader sees the old chunk or
        # the new one, never a part
        tmp = f"{self._dir}/.{'.'.join(map(str, idx))}.{threading.get_ident()}"
        with open(tmp, "wb") as f:
            f.write(payload)
        os.replace(tmp, self._file(idx))


@functools.cache
def _codec():
    """numcodecs' zstd (its encode / decode release the GIL), made once."""
    from numcodecs import Zstd

    return Zstd(level=ZSTD_LEVEL)
