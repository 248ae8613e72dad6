"""Chunk-aligned region writes for chunk-parallel (resumable) jobs.

Protocol::

    init_array(store, "recon", "volume", shape=..., dtype="float32",
               chunks=(1, 16, 64, 64), dims=("energy", "z", "y", "x"), coords=...)
    for region in missing_regions(store, "recon", "volume"):   # skips finished chunks
        write_region(store, "recon", "volume", region, compute(region))  # any worker
        # region: tuple of slices in dim order, e.g. (slice(0, 1), slice(16, 32), ...)
    mark_complete(store, "recon")                               # last, by the coordinator

Regions must cover whole chunks so that no two workers ever write the same
chunk; a task larger than a chunk (a slab of z rows over its y/x tiles) lists its
regions with ``missing_regions(..., whole=("y", "x"))``.  Each finished chunk gets a done marker *after* its data is written;
the group is incomplete (reads raise) until :func:`mark_complete`.
"""

from __future__ import annotations

import itertools
import shutil
import uuid

import numpy as np
import xarray as xr

from ._faults import write_errors
from ._integrity import CHECKSUM, checksum_encoding, chunk_counts
from ._lock import check_unlocked
from ._markers import (
    done_dir,
    ensure_parents,
    get_marker,
    group_exists,
    normalize_group,
    open_zarr_group,
    set_marker,
    store_root,
)
from ._store import _check_complete, _encode

__all__ = ["init_array", "write_region", "read_region", "missing_regions", "mark_complete",
           "remove_group", "stored_chunks"]


def _open_array(store_path, group: str, name: str, mode: str = "r"):
    import zarr

    try:
        # every chunk written, empty ones too: a chunk file absent later is a lost chunk
        return zarr.open_array(str(store_root(store_path)), path=f"{group}/{name}",
                               mode=mode, zarr_format=3, config={"write_empty_chunks": True})
    except FileNotFoundError:
        raise KeyError(f"group {group!r} of store {str(store_root(store_path))!r} has no "
                       f"array {name!r}; create it with init_array first") from None


def _same_layout(arr, shape, dtype, chunks, dims) -> bool:
    return (tuple(arr.shape) == tuple(shape) and np.dtype(arr.dtype) == np.dtype(dtype)
            and tuple(arr.chunks) == tuple(chunks)
            and tuple(arr.metadata.dimension_names or ()) == tuple(dims))


def stored_chunks(store_path, group: str, name: str) -> tuple[int, ...] | None:
    """Chunk shape of array ``name`` of ``group`` where a (possibly unfinished) write left
    one, else None: a resumed job keeps the layout its first run chose."""
    group = normalize_group(group)
    root = store_root(store_path)
    if not (group_exists(root, group) and (root / group / name / "zarr.json").is_file()):
        return None
    return tuple(int(c) for c in _open_array(root, group, name).chunks)


def init_array(store_path, group: str, name: str, *, shape, dtype, chunks, dims,
               coords=None, attrs=None, overwrite: bool = False) -> None:
    """Create an empty chunked array to be filled by :func:`write_region`.

    Calling it again on an unfinished group with the same layout and
    ``overwrite=False`` keeps the written chunks (a resumed job); an array
    whose own ``init_array`` was killed (before the group's marker named it)
    is rebuilt, since no chunk of it can have been written.  With
    ``overwrite=True`` the array starts empty (done markers cleared).  Either
    way the group is (re)set to the unfinished state.

    Parameters
    ----------
    store_path : str or path-like
    group, name : str
        Group path and variable name.
    shape, chunks : tuple of int
        Array and chunk shape (elements), one entry per dim.
    dtype : numpy dtype
    dims : tuple of str
        Dimension names, e.g. ``("energy", "z", "y", "x")``.
    coords : mapping, optional
        Coordinates (with ``units`` attrs) as for ``xarray.Dataset``.
    attrs : mapping, optional
        Variable attributes (``units``, ``provenance``...).
    overwrite : bool
        Start afresh: allowed on a complete group and on an existing array of
        another layout (both refused otherwise).
    """
    import dask.array as da

    group = normalize_group(group)
    shape, chunks, dims = tuple(int(s) for s in shape), tuple(int(c) for c in chunks), tuple(dims)
    if not (len(shape) == len(chunks) == len(dims)):
        raise ValueError(f"init_array: shape {shape}, chunks {chunks} and dims {dims} must "
                         "have one entry per dimension")
    if any(c <= 0 for c in chunks):
        raise ValueError(f"init_array: chunks must be positive; got {chunks}")
    root = store_root(store_path)
    check_unlocked(root)
    marker = get_marker(root, group) if group_exists(root, group) else None
    if marker is not None and marker.get("state") == "complete" and not overwrite:
        raise FileExistsError(f"group {group!r} of store {str(root)!r} already holds a "
                              "complete result; pass overwrite=True to rewrite it")
    if group_exists(root, group) and (root / group / name / "zarr.json").is_file():
        same = _same_layout(_open_array(root, group, name), shape, dtype, chunks, dims)
        if not overwrite and not same:
            raise FileExistsError(f"array {name!r} of group {group!r} exists with another "
                                  "shape/dtype/chunks/dims; pass overwrite=True to replace it")
        if not overwrite and name in (marker or {}).get("regions", []):
            set_marker(root, group, state="writing")
            return
        # else an init_array killed before its marker (coords may be missing; no chunk
        # can have been written): rebuilt below
    with write_errors(root, f"array {group}/{name}"):
        ensure_parents(root, group)
        shutil.rmtree(root / group / name, ignore_errors=True)
        empty = da.zeros(shape, dtype=dtype, chunks=chunks)
        # _encode: string coords (e.g. element names) as zarr v3 holds them
        ds = _encode(xr.Dataset({name: (dims, empty, dict(attrs or {}))}, coords=coords))
        # arrays already in the group (coords of an earlier init_array) keep their codecs:
        # xarray refuses an encoding for them
        new = [v for v in ds.variables if not (root / group / str(v) / "zarr.json").is_file()]
        ds.to_zarr(root, group=group, mode="a", compute=False, zarr_format=3,
                   consolidated=False,
                   encoding=checksum_encoding(new, {name: {"chunks": chunks}}))
        # the marker read before to_zarr: xarray rewrites the group's attributes, so the
        # arrays registered by earlier init_array calls must come from that copy
        names = sorted(set((marker or {}).get("regions", [])) | {name})
        set_marker(root, group, state="writing", kind="Dataset", regions=names)


def _region_by_dim(region, dims, where: str) -> dict:
    if isinstance(region, dict):
        unknown = set(region) - set(dims)
        if unknown:
            raise ValueError(f"{where}: region names dims {sorted(unknown)} not in {dims}")
        return region
    region = tuple(region) if isinstance(region, (tuple, list)) else (region,)
    if len(region) > len(dims):
        raise ValueError(f"{where}: region has {len(region)} slices for {len(dims)} dims {dims}")
    return dict(zip(dims, region))


def _chunk_ranges(region, arr, dims, where: str) -> list[range]:
    """Chunk indices covered along each dim; rejects non-aligned regions."""
    region = _region_by_dim(region, dims, where)
    ranges = []
    for dim, size, chunk in zip(dims, arr.shape, arr.chunks):
        sl = region.get(dim, slice(None))
        if isinstance(sl, tuple):
            sl = slice(*sl)
        if not isinstance(sl, slice) or sl.step not in (None, 1):
            raise ValueError(f"{where}: region[{dim!r}] must be a slice with step 1; got {sl!r}")
        start, stop, _ = sl.indices(size)
        if start >= stop:
            raise ValueError(f"{where}: region[{dim!r}] = {sl!r} is empty for size {size}")
        if start % chunk or (stop % chunk and stop != size):
            raise ValueError(
                f"{where}: region[{dim!r}] = slice({start}, {stop}) is not aligned to the "
                f"chunk size {chunk} (start must be a multiple of {chunk}, stop a multiple "
                f"of {chunk} or {size}); chunk-aligned regions keep parallel writers from "
                "sharing a chunk")
        ranges.append(range(start // chunk, -(-stop // chunk)))
    return ranges


def write_region(store_path, group: str, name: str, region, data) -> None:
    """Write one chunk-aligned block of an array made by :func:`init_array`.

    Safe to call concurrently from several processes for disjoint regions.

    Parameters
    ----------
    region : tuple of slice (dim order, as from :func:`missing_regions`) or
        mapping dim -> slice
        Dims left out (trailing ones of a tuple) span their whole length; in
        a mapping, ``(start, stop)`` pairs are accepted too.  Every start must
        be a multiple of the chunk size and every stop a multiple of it or
        the dim's length.
    data : array-like or xarray.DataArray
        Shape equal to the region's shape; cast to the array's dtype
        (numpy ``same_kind`` casting).

    Raises
    ------
    ValueError
        Non-aligned or out-of-range region, or a data shape mismatch.
    FileExistsError
        If the group is already marked complete.
    """
    group = normalize_group(group)
    root = store_root(store_path)
    where = f"write_region({group}/{name})"
    arr = _open_array(root, group, name, mode="r+")
    if (get_marker(root, group) or {}).get("state") == "complete":
        raise FileExistsError(f"{where}: the group is complete; call init_array(..., "
                              "overwrite=True) before rewriting it")
    dims = tuple(arr.metadata.dimension_names)
    ranges = _chunk_ranges(region, arr, dims, where)
    slices = tuple(slice(r.start * c, min(r.stop * c, s))
                   for r, c, s in zip(ranges, arr.chunks, arr.shape))
    values = data.data if isinstance(data, xr.DataArray) else data
    values = np.asarray(values)
    expected = tuple(sl.stop - sl.start for sl in slices)
    if values.shape != expected:
        raise ValueError(f"{where}: data shape {values.shape} does not match the region "
                         f"shape {expected}")
    if not np.can_cast(values.dtype, arr.dtype, casting="same_kind"):
        raise ValueError(f"{where}: data dtype {values.dtype} cannot be cast safely to the "
                         f"array dtype {arr.dtype}")
    with write_errors(root, f"a region of {group}/{name}", need_bytes=values.nbytes):
        arr[slices] = values.astype(arr.dtype, copy=False)
        marks = done_dir(root, group, name)
        marks.mkdir(exist_ok=True)
        for index in itertools.product(*ranges):  # done markers after the data
            (marks / ".".join(map(str, index))).touch()


def read_region(store_path, group: str, name: str, region, *,
                allow_incomplete: bool = False) -> np.ndarray:
    """One block of ``group/name`` as a numpy array, read straight from zarr.

    What a chunk task needs: no xarray dataset is opened or decoded (10-100x
    less overhead per call than ``read_group(...)[name][region]`` on a group
    with many variables), and only the zarr chunks the region touches are read.

    Parameters
    ----------
    region : tuple of slice (dim order) or mapping dim -> slice
        As for :func:`write_region`, but need not be chunk-aligned.
    allow_incomplete : bool
        Read from a group whose write has not finished (a group being filled
        region by region); otherwise such a group raises.

    Raises
    ------
    KeyError
        No such array. ``IncompleteGroupError`` for an unfinished group.
    """
    group = normalize_group(group)
    root = store_root(store_path)
    arr = _open_array(root, group, name)
    _check_complete(root, group, True, allow_incomplete)
    dims = tuple(arr.metadata.dimension_names or ())
    by_dim = _region_by_dim(region, dims, f"read_region({group}/{name})")
    return np.asarray(arr[tuple(by_dim.get(d, slice(None)) for d in dims)])


def missing_regions(store_path, group: str, name: str, *,
                    whole=()) -> list[tuple[slice, ...]]:
    """Chunk regions of ``group/name`` not yet written (one per chunk, C order).

    Each region is a tuple of slices in the array's dim order: it indexes a
    numpy array of the full shape directly and is accepted by
    :func:`write_region`.

    Parameters
    ----------
    whole : sequence of str
        Dims every region spans whole (e.g. ``("y", "x")``: one region per slab of
        z rows, over the y/x tiles of its chunks): a task's region of several chunks,
        listed when any of its chunks is unwritten. Regions of disjoint chunk
        ranges along the other dims never share a chunk.
    """
    group = normalize_group(group)
    root = store_root(store_path)
    arr = _open_array(root, group, name)
    dims = tuple(arr.metadata.dimension_names or ())
    unknown = set(whole) - set(dims)
    if unknown:
        raise ValueError(f"missing_regions({group}/{name}): whole names dims "
                         f"{sorted(unknown)} not in {dims}")
    marks = done_dir(root, group, name)
    done = {p.name for p in marks.iterdir()} if marks.is_dir() else set()
    grid = [range(-(-s // c)) for s, c in zip(arr.shape, arr.chunks)]
    keep = [d not in whole for d in dims]
    todo = {tuple(i if k else 0 for i, k in zip(index, keep))  # one key per task region
            for index in itertools.product(*grid) if ".".join(map(str, index)) not in done}
    return [tuple(slice(i * c, min((i + 1) * c, s)) if k else slice(0, s)
                  for i, c, s, k in zip(index, arr.chunks, arr.shape, keep))
            for index in sorted(todo)]


def mark_complete(store_path, group: str, *, attrs=None) -> None:
    """Mark a region-written group complete (the last write of a job).

    ``attrs`` (JSON-serialisable mapping, e.g. provenance or counts gathered
    over all chunks) are set on the group just before the completion marker.

    Raises
    ------
    RuntimeError
        If any array created with :func:`init_array` still has unwritten
        chunks (the message says how many).
    """
    group = normalize_group(group)
    root = store_root(store_path)
    if not group_exists(root, group):
        raise KeyError(f"store {str(root)!r} has no group {group!r}")
    pending = {n: len(missing_regions(root, group, n))
               for n in (get_marker(root, group) or {}).get("regions", [])}
    pending = {n: k for n, k in pending.items() if k}
    if pending:
        raise RuntimeError(f"cannot mark group {group!r} complete: unwritten chunks "
                           f"{pending} (see missing_regions)")
    with write_errors(root, f"the completion marker of group {group!r}"):
        if attrs:
            open_zarr_group(root, group).attrs.update(dict(attrs))
        set_marker(root, group, state="complete", checksum=CHECKSUM,
                   chunks=chunk_counts(root / group))


def remove_group(store_path, group: str) -> None:
    """Delete ``group`` (arrays, attributes, done markers) if it exists.

    For a region-written job that rewrites its arrays in place and so cannot
    resume half-way: it starts from an empty group, and arrays a killed run
    with other options wrote cannot survive into the new result. The group is
    renamed away before it is deleted, so readers never see a partial tree.
    """
    group = normalize_group(group)
    root = store_root(store_path)
    check_unlocked(root)
    target = root / group
    if not target.is_dir():
        return
    trash = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:12]}")
    with write_errors(root, f"(removing) group {group!r}"):
        target.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)
