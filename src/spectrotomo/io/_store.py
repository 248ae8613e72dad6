"""One zarr v3 store per sample: write and read whole results by group.

Layout: ``sample.zarr/<group>`` with one group per stage (``raw``, ``truth``,
``recon``, ``spectra``, ``segmentation``...); a group holds an
``xarray.Dataset`` (a ``DataArray`` is stored as a one-variable Dataset and
read back as a DataArray), or a whole ``xarray.DataTree`` below it.

Whole-object writes go to a temporary store beside the sample store, get
their completion marker there as the last step, and are then moved into
place with a directory rename: an interrupted write leaves only a temporary
directory, never a group that looks complete.  Only local file-system stores
are supported (renames, markers and the lock use the file system).
"""

from __future__ import annotations

import shutil
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ._faults import write_errors
from ._integrity import CHECKSUM, checksum_encoding, chunk_counts
from ._lock import check_unlocked
from ._markers import (
    MARKER,
    ensure_parents,
    get_marker,
    group_dir,
    is_complete,
    normalize_group,
    now,
    store_root,
)

__all__ = ["write", "write_groups", "read_group", "open_tree", "list_groups",
           "IncompleteGroupError"]

# Fixed-width numpy strings have no zarr v3 data type; they are stored as
# variable-length strings and cast back on read from this attribute.
_STR_DTYPE_ATTR = "spectrotomo_dtype"
_DA_DEFAULT_NAME = "__xarray_dataarray_variable__"


class IncompleteGroupError(RuntimeError):
    """A group was read whose write has not finished (no completion marker)."""


# --------------------------------------------------------------------------- #
# encoding of what zarr v3 cannot hold as is
# --------------------------------------------------------------------------- #
def _encode(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.drop_encoding()
    out = {}
    for name, var in ds.variables.items():
        if var.dtype.kind == "U":
            var = var.copy(data=var.values.astype(object))
            var.attrs[_STR_DTYPE_ATTR] = str(ds.variables[name].dtype)
        elif var.dtype.kind == "T":  # numpy StringDType: stored natively as "string"
            var = var.copy(data=var.values.astype(object))
        out[name] = var
    return ds.assign_coords({k: v for k, v in out.items() if k in ds.coords}) \
        .assign({k: v for k, v in out.items() if k not in ds.coords})


def _decode(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs.pop(MARKER, None)
    for name in list(ds.variables):
        var = ds.variables[name]
        if _STR_DTYPE_ATTR in var.attrs:
            dtype = var.attrs[_STR_DTYPE_ATTR]
            attrs = {k: v for k, v in var.attrs.items() if k != _STR_DTYPE_ATTR}
            decoded = xr.Variable(var.dims, np.asarray(var.values).astype(dtype), attrs,
                                  encoding=var.encoding)
            if name in ds.indexes:
                ds = ds.assign_coords({name: decoded})
            else:
                ds[name] = decoded
    return ds


def _as_tree(obj) -> tuple[xr.DataTree, str, str | None]:
    """Wrap ``obj`` as a DataTree of encoded datasets; return it, the kind and
    the DataArray name (or None)."""
    if isinstance(obj, xr.DataArray):
        name = obj.name if obj.name is not None else _DA_DEFAULT_NAME
        ds = obj.to_dataset(name=name, promote_attrs=False)
        return xr.DataTree(_encode(ds)), "DataArray", str(name)
    if isinstance(obj, xr.Dataset):
        return xr.DataTree(_encode(obj)), "Dataset", None
    if isinstance(obj, xr.DataTree):
        nodes = {node.relative_to(obj): _encode(node.to_dataset(inherit=False))
                 for node in obj.subtree}
        nodes["/"] = nodes.pop(".")
        return xr.DataTree.from_dict(nodes), "DataTree", None
    raise TypeError(f"obj must be an xarray Dataset, DataArray or DataTree; "
                    f"got {type(obj).__name__}")


# --------------------------------------------------------------------------- #
# write
# --------------------------------------------------------------------------- #
def _refuse_existing(store_path, group: str) -> None:
    state = "a complete result" if is_complete(store_path, group) else \
        "an unfinished (incomplete) result"
    raise FileExistsError(f"group {group!r} of store {str(store_root(store_path))!r} already "
                          f"holds {state}; pass overwrite=True to replace it")


def _check_store_dir(root: Path) -> None:
    if root.exists() and not (root / "zarr.json").is_file() and any(root.iterdir()):
        raise FileExistsError(f"store_path {str(root)!r} is a non-empty directory that is not "
                              "a zarr v3 store; choose a new path")


def _mark_tree(path: Path, tree: xr.DataTree, kind: str, name: str | None) -> None:
    import zarr

    for node in tree.subtree:
        rel = node.relative_to(tree)
        g = zarr.open_group(str(path), path="" if rel == "." else rel, mode="r+",
                            zarr_format=3)
        marker = {"state": "complete", "kind": kind if rel == "." else "Dataset",
                  "time": now(), "version": _version(), "checksum": CHECKSUM,
                  "chunks": chunk_counts(path if rel == "." else path / rel)}
        if name is not None and rel == ".":
            marker["name"] = name
        g.attrs[MARKER] = marker


def _tree_encoding(tree: xr.DataTree, encoding: dict | None) -> dict:
    """Checksummed encoding of every node (keyed by node path, as DataTree.to_zarr wants)."""
    encoding = dict(encoding or {})
    out = {node.path: checksum_encoding(node.to_dataset(inherit=False).variables,
                                        encoding.pop(node.path, None))
           for node in tree.subtree}
    return {**out, **encoding}


def _version() -> str:
    from .. import __version__

    return __version__


def write(store_path, group: str, obj, *, overwrite: bool = False,
          encoding: dict | None = None) -> Path:
    """Write a whole Dataset, DataArray or DataTree into ``group`` of a store.

    Values, dtypes, coordinates and every attribute (``units``,
    ``pixel_size``, ``provenance`` JSON string...) round-trip bit-exactly.

    Parameters
    ----------
    store_path : str or path-like
        Local directory of the sample's zarr v3 store (created if missing).
    group : str
        Group path, e.g. ``"raw"`` or ``"recon/fbp"``.
    obj : xarray.Dataset, xarray.DataArray or xarray.DataTree
        Numpy- or dask-backed; dask arrays are written chunk by chunk.
    overwrite : bool
        Replace an existing group (and its sub-groups); without it an
        existing group (complete or not) is refused.  The old group stays
        intact until the new one is fully written, so a group read lazily
        can be transformed and written back over itself.
    encoding : dict, optional
        Per-variable zarr encoding, e.g. ``{"volume": {"chunks": (1, 64, 64, 64)}}``
        (for a DataTree keyed by node path first: ``{"/truth": {...}}``).
        Without it, dask arrays keep their chunks and numpy arrays get zarr's
        default chunking.  Every array gets zstd (or the ``compressors`` given)
        followed by the ``crc32c`` checksum codec, and every chunk is written
        (empty ones too); the marker records each array's chunk count
        (:func:`verify_store` checks both).

    Returns
    -------
    pathlib.Path
        Directory of the written group.

    Raises
    ------
    FileExistsError
        If the group exists and ``overwrite`` is False.
    StoreLockedError
        If another process holds the store's lock.
    StoreWriteError
        Disk full, read-only or unwritable output (the message names the path
        and the space needed); nothing is published, the temporary is removed.
    """
    group = normalize_group(group)
    tree, kind, name = _as_tree(obj)
    root = store_root(store_path)
    check_unlocked(root)
    _check_store_dir(root)
    target = group_dir(root, group)
    if target.exists() and not overwrite:
        _refuse_existing(root, group)
    tmp = root.with_name(f".{root.name}.tmp-{uuid.uuid4().hex[:12]}")
    need = sum(v.nbytes for node in tree.subtree for v in node.to_dataset(inherit=False)
               .variables.values())
    try:
        with write_errors(root, f"group {group!r}", need_bytes=need):
            ensure_parents(root, group)
            _to_zarr(tmp, tree, kind, encoding)
            _mark_tree(tmp, tree, kind, name)  # last step before publishing
            _publish(tmp, target)
    except BaseException:
        _remove_settled(tmp)
        raise
    return target


def _remove_settled(tmp: Path, settle_s: float = 0.3, limit_s: float = 10.0) -> None:
    """Remove a failed write's temporary store, again until no late write recreates it.

    When one chunk write fails, zarr's and dask's other chunk writes already
    running finish in their threads afterwards (and recreate directories):
    remove until the directory has stayed absent for ``settle_s``.
    """
    start = time.monotonic()
    while True:
        shutil.rmtree(tmp, ignore_errors=True)
        time.sleep(settle_s)
        if not tmp.exists() or time.monotonic() - start > limit_s:
            return


def _to_zarr(tmp: Path, tree: xr.DataTree, kind: str, encoding: dict | None) -> None:
    with warnings.catch_warnings():
        # xarray warns that zarr v3 string arrays have no stable spec yet; that is
        # the documented zarr-extensions "string" type, read back exactly here.
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification")
        if kind == "DataTree":
            tree.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False,
                         encoding=_tree_encoding(tree, encoding))
        else:
            ds = tree.to_dataset()
            ds.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False,
                       encoding=checksum_encoding(ds.variables, encoding))


def write_groups(store_path, groups, *, overwrite: bool = False) -> list[Path]:
    """Write several groups, e.g. a whole simulated sample, refusing up front.

    Parameters
    ----------
    groups : mapping str -> Dataset, DataArray or DataTree
        Group path -> object, written in order with :func:`write`.
    overwrite : bool
        Without it, nothing is written if any of the groups exists.

    Returns
    -------
    list of pathlib.Path
    """
    root = store_root(store_path)
    check_unlocked(root)
    _check_store_dir(root)
    names = [normalize_group(g) for g in groups]
    existing = [g for g in names if group_dir(root, g).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"store {str(root)!r} already has groups {existing}; pass "
                              "overwrite=True to replace them (nothing was written)")
    return [write(root, g, obj, overwrite=overwrite) for g, obj in zip(names, groups.values())]


def _publish(tmp: Path, target: Path) -> None:
    """Move the finished temporary group into place (directory renames)."""
    trash = None
    if target.exists():
        trash = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:12]}")
        target.rename(trash)
    tmp.rename(target)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


# --------------------------------------------------------------------------- #
# read
# --------------------------------------------------------------------------- #
def list_groups(store_path) -> dict[str, dict | None]:
    """Every group of the store (``"raw"``, ``"recon/fbp"``...) and its marker
    dict (``None`` for containers and groups not written by spectrotomo)."""
    import zarr

    root = store_root(store_path)
    if not (root / "zarr.json").is_file():
        raise FileNotFoundError(f"no zarr v3 store at {str(root)!r}")
    g = zarr.open_group(str(root), mode="r", zarr_format=3)
    return {path: (dict(sub.attrs.get(MARKER, {})) or None)
            for path, sub in sorted(_walk(g), key=lambda kv: kv[0])}


def _walk(g, prefix=""):
    for name, sub in g.groups():
        path = f"{prefix}{name}"
        yield path, sub
        yield from _walk(sub, path + "/")


def _check_complete(store_path, group: str, has_data: bool, allow_incomplete: bool) -> None:
    if allow_incomplete or not has_data or is_complete(store_path, group):
        return
    marker = get_marker(store_path, group)
    why = "has no completion marker (not written by spectrotomo.io.write, or interrupted)" \
        if marker is None else f"is in state {marker.get('state')!r} (unfinished write)"
    raise IncompleteGroupError(f"group {group!r} of store {str(store_root(store_path))!r} "
                               f"{why}; pass allow_incomplete=True to read it anyway")


def read_group(store_path, group: str, *, allow_incomplete: bool = False, chunks="default"):
    """Read one group lazily (dask arrays in the store's chunks).

    Parameters
    ----------
    store_path : str or path-like
    group : str
    allow_incomplete : bool
        Read a group whose write has not finished (unwritten chunks read as
        the fill value: NaN for floats, 0 for integers).
    chunks : "default", dict or None
        ``"default"``: dask arrays with the stored chunks; ``None``: lazily
        indexed numpy arrays; a dict as for :func:`xarray.open_zarr`.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        A DataArray when a DataArray was written.

    Raises
    ------
    KeyError
        If the group does not exist (the message lists the groups).
    IncompleteGroupError
        If the group is unfinished and ``allow_incomplete`` is False.
    """
    group = normalize_group(group)
    root = store_root(store_path)
    if not (group_dir(root, group) / "zarr.json").is_file():
        known = sorted(list_groups(root)) if (root / "zarr.json").is_file() else []
        raise KeyError(f"store {str(root)!r} has no group {group!r}; groups: {known}")
    ds = xr.open_zarr(root, group=group, zarr_format=3, consolidated=False,
                      chunks={} if chunks == "default" else chunks)
    _check_complete(root, group, bool(ds.data_vars), allow_incomplete)
    marker = get_marker(root, group) or {}
    ds = _decode(ds)
    if marker.get("kind") == "DataArray":
        da = ds[marker["name"]]
        return da.rename(None) if marker["name"] == _DA_DEFAULT_NAME else da
    return ds


def open_tree(store_path, *, allow_incomplete: bool = False, chunks="default") -> xr.DataTree:
    """Open the whole store as a lazy ``xarray.DataTree`` (one node per group).

    Raises :class:`IncompleteGroupError` if any group holding data is
    unfinished, unless ``allow_incomplete`` is True.
    """
    root = store_root(store_path)
    if not (root / "zarr.json").is_file():
        raise FileNotFoundError(f"no zarr v3 store at {str(root)!r}")
    tree = xr.open_datatree(root, engine="zarr", zarr_format=3, consolidated=False,
                            chunks={} if chunks == "default" else chunks)
    nodes = {}
    for node in tree.subtree:
        ds = node.to_dataset(inherit=False)
        if node.path != "/":
            _check_complete(root, node.path, bool(ds.data_vars), allow_incomplete)
        nodes[node.path] = _decode(ds)
    return xr.DataTree.from_dict(nodes)
