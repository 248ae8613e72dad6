"""Block iteration for out-of-core segmentation: blocks, halos and scratch arrays.

A volume is walked in cubic blocks of ``chunk`` voxels; an operation that looks
``halo`` voxels around each voxel reads the block extended by ``halo`` (clipped
at the array edge, where the operation's own border rule then applies exactly
as on the whole volume) and keeps the core. Inputs are anything sliceable to a
block: numpy or zarr arrays, dask arrays, xarray DataArrays (read lazily from a
store). Intermediates live in :class:`Scratch`, chunked arrays of one compressed
file per chunk (:class:`._chunkfiles.ChunkFiles`) in a temporary directory, so
memory per step is a few blocks whatever the volume.

Every block loop goes through :func:`map_blocks`: serial by default, on threads
or on dask.distributed workers inside :func:`block_workers`. Block functions
write disjoint whole chunks and return what the caller reduces, in block order,
so the results do not depend on the executor (labels identical, sums in the
same order). Threads help because the kernels release the GIL (scipy.ndimage
filters and morphology, cc3d, numpy, the numba envelopes, the scratch's file reads
and zstd codec).
"""

from __future__ import annotations

import contextvars
import itertools
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .._backend import host_threads
from .._model import ValidationError
from ._chunkfiles import ChunkFiles
from ._threads import budget, granted, ordered, share

__all__ = ["Scratch", "blocks", "extend", "read", "check_chunk", "block_shape", "process_chunk", "edges_of",
           "block_workers", "map_blocks", "concurrently", "release_free_memory", "tiles_of"]

#: (prepare(fn) -> fn or a future of it, submit(fn, item) -> future, tasks in flight), or
#: None: serial. Threads started by the pool see the default (serial), so a block
#: function never fans out again.
_EXECUTOR: contextvars.ContextVar = contextvars.ContextVar("spectrotomo_blocks", default=None)

#: chunks one zarr read decodes at once inside the block loops (zarr's default: 10). A halo
#: read of an inner block spans 27 store chunks; 10 decoded at once held 25-30 MiB of buffers
#: per read for a 5 MiB result (int64, 64^3 chunks), 12-15 MiB at 1. Segment, 256^3 at chunk
#: 64, 2 threads: peak 264 -> 239-244 MiB, CPU 99.8 -> 91-94 s (single runs at load ~20; 128^3,
#: whose reads span <= 8 chunks: 217 -> 196-203 MiB; gpu_bench/RESULTS.seg.md "scale").
ZARR_CONCURRENCY = 2


@contextmanager
def _zarr_reads():
    """zarr's read concurrency at :data:`ZARR_CONCURRENCY` (restored on exit)."""
    try:
        import zarr
    except ImportError:  # inputs that are not zarr arrays
        yield
        return
    with zarr.config.set({"async.concurrency": ZARR_CONCURRENCY}):
        yield


@contextmanager
def block_workers(workers: int | None = None, *, client=None):
    """Run the block loops of the segmentation inside this context in parallel.

    Parameters
    ----------
    workers : int, optional
        Threads (default :func:`host_threads`: ``OMP_NUM_THREADS`` or the CPUs);
        1 runs serially. Memory: one block's work per thread; zarr decodes at most
        :data:`ZARR_CONCURRENCY` chunks per read meanwhile.
    client : distributed.Client, optional
        Run each block as a task on this cluster instead (``workers`` ignored).
        The inputs and the :class:`Scratch` directory must then be on a file
        system every worker sees at the same path.
    """
    if client is not None:
        # more in flight than on threads: each task waits a scheduler round trip
        width = 4 * max(1, sum(client.nthreads().values()))

        def prepare(fn):
            # a closure holding label tables (MBs) goes to the workers once per loop, not
            # with every task; a small one goes with the tasks (a scatter is a round trip)
            import cloudpickle

            big = len(cloudpickle.dumps(fn)) > 2**20
            return client.scatter(fn, hash=False) if big else fn

        def submit(fn, item):
            return client.submit(_on_worker, fn, item, pure=False)

        token = _EXECUTOR.set((prepare, submit, width))
        try:
            yield
        finally:
            _EXECUTOR.reset(token)
        return
    n = int(workers) if workers is not None else host_threads()
    if n <= 1:
        with _zarr_reads():
            yield
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n, thread_name_prefix="spectrotomo-block") as pool, _zarr_reads(), \
            granted(n):
        token = _EXECUTOR.set((_same, pool.submit, 2 * n))
        try:
            yield
        finally:
            _EXECUTOR.reset(token)


def _same(fn):
    return fn


def _on_worker(fn, item):
    import dask

    # a dask input computed inside a task stays on the worker's threads (no secede)
    with dask.config.set(scheduler="threads"), _zarr_reads():
        return fn(item)


def map_blocks(fn: Callable[[Any], Any], items: Iterable, *,
               reduce: Callable[[Any, Any], Any] | None = None, initial=None):
    """``fn(item)`` for every item (e.g. block slices), on the current executor.

    Returns the results in item order, or, with ``reduce``, ``initial`` folded
    with each result in item order (results are not kept: memory is the tasks
    in flight, twice the workers, and the finished results waiting for their turn,
    at most :data:`._threads.AHEAD` times that).
    """
    executor = _EXECUTOR.get()
    if executor is not None:
        items = list(items)
        # fewer blocks than threads: each block gets the idle ones (_threads.thread_map)
        fn = share(fn, len(items))
    results = _serial(fn, items) if executor is None else ordered(*executor, fn, items)
    if reduce is None:
        out = list(results)
    else:
        out = initial
        for r in results:
            out = reduce(out, r)
    if executor is None or executor[0] is _same:  # the loop ran in this process
        release_free_memory()
    return out


_TRIM = []  # [glibc's malloc_trim or None], looked up once


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc ``malloc_trim(0)``; nothing
    elsewhere), after a block loop.

    Why: a loop's block arrays (up to ~32 MiB each, below glibc's dynamic mmap threshold)
    are freed into the heap, which keeps them mapped; two blocks in flight leave their
    pages interleaved, and the next stage's blocks, of other sizes, grow the heap again.
    The RSS then counted every earlier loop's high-water mark: at 256^3 (2 blocks in
    flight) segment's peak was ~300 MiB above the arrays in use. Trimming after each
    loop costs one page fault per page the next loop reuses: ~+5 % CPU for segment at
    128^3 (0.54 -> 0.50 GiB), within the noise at 256^3 (gpu_bench/RESULTS.pipeline.md,
    session 8; trimming only above 16 MiB free did not save it); a fixed low mmap
    threshold instead faulted every array in on every use (+65 % CPU at 1 MiB).
    """
    if not _TRIM:
        _TRIM.append(_malloc_trim())
    if _TRIM[0] is not None:
        _TRIM[0](0)


def _malloc_trim():
    from .._backend import glibc_function

    return glibc_function("malloc_trim")


def concurrently(*fns: Callable[[], Any]) -> list:
    """Call independent stages (functions of no argument) side by side when the block
    loops run in parallel (threads or a dask cluster); one after another when serial.

    At most as many stages run at once as there are threads (two at least: on a cluster
    the threads are the cluster's), each with its share of them, the next starting when
    one ends; their block loops share the current executor. Why: a volume of fewer
    blocks than threads leaves threads idle in a stage's block loops; two stages at once
    fill them. Returns the results in order (the first error is raised once the stages
    have ended).
    """
    if _EXECUTOR.get() is None or len(fns) < 2:
        return [fn() for fn in fns]
    from concurrent.futures import ThreadPoolExecutor

    width = min(len(fns), max(2, budget()))
    # each stage in a copy of this context: its map_blocks see the executor (a thread of a
    # plain pool starts with an empty context)
    with ThreadPoolExecutor(width, thread_name_prefix="spectrotomo-stage") as pool:
        futures = [pool.submit(contextvars.copy_context().run, share(fn, width, i % width))
                   for i, fn in enumerate(fns)]
    return [f.result() for f in futures]


def _serial(fn, items):
    for item in items:
        yield fn(item)


def check_chunk(chunk):
    """``chunk`` as an int (a cube's edge) or a tuple of 3 ints (z, y, x edges), each >= 8."""
    edges = chunk if isinstance(chunk, tuple) else (chunk,)
    if not edges or len(edges) not in (1, 3) or any(
            not isinstance(c, (int, np.integer)) or c < 8 for c in edges):
        raise ValidationError(f"chunk must be an integer >= 8 voxels; got {chunk!r}")
    return tuple(int(c) for c in edges) if isinstance(chunk, tuple) else int(chunk)


def edges_of(chunk, ndim: int = 3) -> tuple[int, ...]:
    """The block edges (voxels) of ``chunk`` (an int: a cube; or 3 edges) on the last
    ``ndim`` <= 3 axes."""
    full = (int(chunk),) * 3 if not isinstance(chunk, tuple) else tuple(int(c) for c in chunk)
    return full[3 - ndim:]


#: fewest z rows of a block split for threads (:func:`block_shape`): thinner slabs spend
#: more on their halos (the masked smoothing reads 10-12 rows on each side) than they save
MIN_SLAB = 32


def block_shape(chunk: int, threads: int, shape=None) -> tuple[int, int, int]:
    """(z, y, x) edges of the blocks of ``threads`` block threads on a volume of ``shape``
    (nz, ny, nx): the ``chunk`` cube cut into ``threads`` slabs along z (at least
    :data:`MIN_SLAB` rows each); the cube itself on a volume of one cube, whose idle
    threads work inside it (:mod:`._threads`).

    Why: memory is the blocks in flight, one per thread. Cubes of ``chunk`` held one on
    a volume of one cube (128^3 at 128) and one per thread on a larger one: segment's
    peak grew 1.36x from 128^3 to 256^3 on 2 threads. Slabs of ``chunk^3 / threads``
    voxels hold one cube's worth in flight on any volume (up to ``chunk // MIN_SLAB``
    threads). Not on a volume of one cube: the cube already is all that is in flight,
    and its slabs' halos cost CPU (+12-19 % for segment at 128^3;
    gpu_bench/RESULTS.pipeline.md, session 8).
    """
    chunk, threads = int(chunk), max(1, int(threads))
    cubes = 2 if shape is None else int(np.prod([-(-int(n) // chunk) for n in shape[-3:]]))
    parts = max(1, min(threads, chunk // MIN_SLAB)) if cubes > 1 else 1
    return (-(-chunk // parts), chunk, chunk)


def process_chunk(chunk, shape, *, workers: int | None = None, client=None):
    """The block edges the block-wise stages use for ``chunk`` on a volume of ``shape``:
    :func:`block_shape` slabs for this process's block threads (``workers``, default
    ``host_threads()``), whole cubes for a cluster's tasks (``client``); a tuple of edges
    is taken as given."""
    if isinstance(chunk, tuple):
        return chunk
    threads = 1 if client is not None else (host_threads() if workers is None else int(workers))
    return block_shape(chunk, threads, shape=shape)


def blocks(shape, chunk) -> list[tuple[slice, ...]]:
    """Core slices of the blocks tiling ``shape`` (raster order, last axis fastest);
    ``chunk``: a cube's edge or the edges of the last (up to 3) axes."""
    edges = edges_of(chunk, len(shape)) if len(shape) <= 3 else None
    if edges is None:
        raise ValidationError(f"blocks: at most 3 axes; got shape {tuple(shape)}")
    ranges = [[slice(a, min(a + c, n)) for a in range(0, n, c)] for n, c in zip(shape, edges)]
    return [tuple(s) for s in itertools.product(*ranges)]


def extend(core, shape, halo) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """``core`` grown by ``halo`` voxels per axis (clipped): (extended, core within it)."""
    halo = np.broadcast_to(np.asarray(halo, dtype=int), (len(shape),))
    ext = tuple(slice(max(0, s.start - h), min(n, s.stop + h))
                for s, h, n in zip(core, halo, shape))
    inner = tuple(slice(s.start - e.start, s.stop - e.start) for s, e in zip(core, ext))
    return ext, inner


def tiles_of(arr) -> tuple[int, ...] | None:
    """The chunk edges of a dask / zarr array or dask-backed DataArray on its last 3 axes
    (its store tiles), or None (not chunked: numpy, lazily indexed)."""
    chunks = getattr(arr, "chunksize", None)  # dask
    if chunks is None:
        chunks = getattr(getattr(arr, "data", None), "chunksize", None)  # dask DataArray
    if chunks is None:
        chunks = getattr(arr, "chunks", None)  # zarr
    if not chunks or not all(isinstance(c, (int, np.integer)) for c in chunks):
        return None
    return tuple(int(c) for c in chunks[-3:])


def read(arr, sl, dtype=None) -> np.ndarray:
    """One block of a numpy / zarr / dask array or xarray DataArray, as numpy."""
    block = arr[sl]
    if hasattr(block, "compute"):  # dask array, or a dask-backed DataArray
        block = block.compute()
    block = np.asarray(getattr(block, "values", block))
    return block if dtype is None else block.astype(dtype, copy=False)


class Scratch:
    """Temporary chunked arrays (:class:`._chunkfiles.ChunkFiles`; one directory, removed
    by :meth:`close` / ``with``).

    Parameters
    ----------
    chunk : int or tuple of 3 int
        Block edge(s) (voxels); the last three axes are chunked ``chunk`` so that a
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
        self._ids = itertools.count(1)  # next() is atomic: stages make arrays concurrently
        self._discarding = None  # the thread of discard_except, joined by close()

    def array(self, shape, dtype, *, fill=0, chunks=None, compress: bool = True):
        """A new array; ``chunks`` overrides the block chunking (writers of regions that
        are not whole blocks must write whole chunks of their own); ``compress=False``
        for data that barely compresses and is read back at once (float64 distances)."""
        name = f"a{next(self._ids)}"
        shape = tuple(int(n) for n in shape)
        if chunks is None:
            chunks = shape[:-3] + edges_of(self.chunk, min(3, len(shape)))
        return ChunkFiles(self.path / name, shape, dtype, chunks, fill=fill, compress=compress)

    def filled(self, shape, dtype, fn: Callable[[tuple], Any], *, halo=0, fill=0,
               compress: bool = True, block=None):
        """A new array (:meth:`array`) holding ``fn(index)`` block by block.

        For every block (``chunk`` voxels over the last three axes, leading axes whole)
        ``fn`` gets the block's index, grown by ``halo`` voxels per spatial axis
        (clipped at the edge, :func:`extend`), and returns that region; its core is
        written. Blocks run on the current executor (:func:`map_blocks`), each writing
        whole chunks. The one "fill a scratch array block by block" loop of the
        block-wise stages (mean volumes, morphology, label tables). ``block``: larger
        blocks (3 edges, each a multiple of the chunk's), e.g. to read an input's tiles
        whole.
        """
        out = self.array(shape, dtype, fill=fill, compress=compress)
        shape = tuple(out.shape)
        n = min(3, len(shape))
        lead = (slice(None),) * (len(shape) - n)

        def put(core):
            ext, inner = extend(core, shape[-n:], halo)
            out[lead + core] = fn(lead + ext)[lead + inner]

        edges = edges_of(self.chunk, n)
        if block is not None:
            block = edges_of(tuple(block), 3)[3 - n:]
            if any(b % c for b, c in zip(block, edges)):
                raise ValueError(f"Scratch.filled: block {block} is not whole chunks {edges}")
        map_blocks(put, blocks(shape[-n:], block or edges))
        return out

    def release(self, array) -> None:
        """Delete one array made here whose data are no longer needed (frees its disk
        before :meth:`close`: uncompressed float64 passes are 8 bytes per voxel)."""
        root = Path(array.path).resolve()
        if root.parent != self.path.resolve():
            raise ValueError(f"Scratch.release: {root} is not an array of this scratch")
        shutil.rmtree(root, ignore_errors=True)

    def discard_except(self, keep) -> None:
        """Delete every array but ``keep`` (arrays made here) in a background thread;
        :meth:`close` waits for it.

        Why: removing a step's intermediates (~30 arrays, ~1000 chunk files at 256^3)
        waits on the file system with no CPU work (0.5-0.7 s at 256^3); started when the
        results are final, it overlaps the copy of the results into the store.
        """
        import threading

        kept = {Path(a.path).resolve() for a in keep}
        doomed = [p for p in self.path.iterdir() if p.resolve() not in kept]
        if doomed:
            self._discarding = threading.Thread(
                target=lambda: [shutil.rmtree(p, ignore_errors=True) for p in doomed],
                name="spectrotomo-scratch-rm", daemon=True)
            self._discarding.start()

    def close(self) -> None:
        if self._discarding is not None:
            self._discarding.join()
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
