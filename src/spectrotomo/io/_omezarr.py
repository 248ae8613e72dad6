"""OME-Zarr view of volumes, maps, spectral volumes and label images for napari
and neuroglancer.

OME-Zarr 0.5 (zarr v3, metadata under ``attrs["ome"]``) by default, 0.4
(zarr v2, ``/``-separated chunk keys) for older viewers.  Images and maps are
written as float32 multiscale pyramids (2x block means); a leading non-spatial
dim (``energy``, ``element``, ``state``) becomes a ``c`` (channel) axis with one
OMERO channel per entry, labelled with its coordinate (``"642.5 eV"``).  Label
images (any integer or boolean dtype, non-negative) are stored as uint8,
uint16 or uint32, subsampled (nearest) and placed under
``<image>/labels/<name>`` with ``image-label`` colours and, where given, names.
Spatial axes are ``z, y, x`` (or ``y, x``) of type ``space`` in ``nanometer``;
every level carries its scale (and the half-voxel translation that block
averaging implies).  The OMERO display window is the 1st..99th percentile of
the finite values inside ``mask`` (e.g. the particle), so viewers open it with
a useful contrast.

Volumes are read and written in slabs along the first spatial axis, so a
dask-backed DataArray (a store variable) is never held whole in memory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ._ome_meta import MAX_LISTED_LABELS, Window, default_levels, image_label, multiscale

__all__ = ["write_ome_zarr"]

_AXES = ("z", "y", "x")


def _mean_down(a: np.ndarray) -> np.ndarray:
    """2x block mean along every axis but the first (channels); odd sizes are padded
    by edge replication."""
    pad = [(0, 0)] + [(0, s % 2) for s in a.shape[1:]]
    a = np.pad(a, pad, mode="edge") if any(p for _, p in pad) else a
    shape = [a.shape[0]] + [n for s in a.shape[1:] for n in (s // 2, 2)]
    return a.reshape(shape).mean(axis=tuple(range(2, 2 * a.ndim - 1, 2)), dtype=np.float64) \
        .astype(a.dtype)


def _down(block: np.ndarray, labels: bool) -> np.ndarray:
    if labels:  # nearest: never invent a label value
        return block[(slice(None),) + (slice(None, None, 2),) * (block.ndim - 1)]
    return _mean_down(block)

def _label_dtype(dtype: np.dtype, name: str) -> np.dtype:
    """The unsigned type a label image of ``dtype`` is stored as."""
    if dtype.kind == "b":
        return np.dtype(np.uint8)
    if dtype.kind not in "iu":
        raise ValueError(f"label image {name!r} must be integer or boolean; got {dtype}")
    return np.dtype({1: np.uint8, 2: np.uint16}.get(dtype.itemsize, np.uint32))


def _check_label_block(block: np.ndarray, out: np.dtype, name: str) -> None:
    if block.size == 0 or block.dtype.kind == "b":
        return
    lo, hi = int(block.min()), int(block.max())
    if lo < 0:
        raise ValueError(f"label image {name!r} has negative values (min {lo}); OME-Zarr "
                         "labels are stored unsigned: shift or relabel them first")
    if hi > np.iinfo(out).max:
        raise ValueError(f"label image {name!r} has values up to {hi}, more than {out} holds")


def _check_parent_image(path: Path, version: str, shape):
    import zarr

    fmt = 3 if version == "0.5" else 2
    try:
        image = zarr.open_group(str(path), mode="r", zarr_format=fmt)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise ValueError(f"labels need an OME-Zarr {version} image at {str(path)!r}: write "
                         "the image first with kind='image'") from None
    attrs = image.attrs.get("ome", {}) if fmt == 3 else image.attrs
    if "multiscales" not in attrs:
        raise ValueError(f"{str(path)!r} is not an OME-Zarr {version} image (no multiscales)")
    base = image[attrs["multiscales"][0]["datasets"][0]["path"]]
    if tuple(base.shape) != tuple(shape):
        raise ValueError(f"label image shape {tuple(shape)} differs from the image's "
                         f"{tuple(base.shape)} at {str(path)!r}")


def _voxel_from_dataarray(data, spatial):
    """Voxel size (nm) of a DataArray: ``attrs["pixel_size"]``, else the spacing of
    its nm coordinates along the ``spatial`` dims."""
    attrs = getattr(data, "attrs", {})
    if attrs.get("pixel_size") is not None:
        return attrs["pixel_size"]
    coords = getattr(data, "coords", {})
    steps = []
    for dim in spatial:
        c = coords.get(dim)
        if c is None or c.attrs.get("units") != "nm" or c.size < 2:
            break
        diffs = np.diff(np.asarray(c.values, dtype=float))
        if not np.allclose(diffs, diffs[0], rtol=1e-6):
            break
        steps.append(float(diffs[0]))
    else:
        if steps:
            return tuple(steps)
    raise ValueError("voxel_size_nm is required (nm) unless data is a DataArray with "
                     "attrs['pixel_size'] or evenly spaced z/y/x coords in 'nm'")


def _channel_names(data, dim: str, n: int, channel_labels) -> list[str]:
    if channel_labels is not None:
        if len(channel_labels) != n:
            raise ValueError(f"channel_labels has {len(channel_labels)} entries for {n} "
                             "channels")
        return [str(v) for v in channel_labels]
    coord = getattr(data, "coords", {}).get(dim) if dim else None
    if coord is None:
        return [f"{dim or 'c'} {k}" for k in range(n)]
    units = coord.attrs.get("units", "")
    if coord.dtype.kind == "f":
        return [f"{float(v):.6g} {units}".strip() for v in coord.values]
    return [str(v) for v in coord.values]


def _as_source(data, kind: str):
    """(array of shape (C, *spatial), channel dim name or None, spatial dims)."""
    dims = tuple(getattr(data, "dims", ()))
    arr = getattr(data, "data", data) if dims else np.asarray(data)
    ndim = arr.ndim
    if dims:
        spatial = tuple(d for d in dims if d in _AXES)
        lead = dims[:ndim - len(spatial)]
        if spatial not in (_AXES, _AXES[1:]) or dims[len(lead):] != spatial or len(lead) > 1:
            raise ValueError(f"data dims must be ('z', 'y', 'x') or ('y', 'x'), optionally "
                             f"after one channel dim such as 'energy'; got {dims}")
    elif ndim in (2, 3):
        lead, spatial = (), _AXES[3 - ndim:]
    elif ndim == 4:
        lead, spatial = ("c",), _AXES
    else:
        raise ValueError(f"data must be 2-D (y, x), 3-D (z, y, x) or 4-D (c, z, y, x); got "
                         f"shape {arr.shape}")
    if lead and kind == "labels":
        raise ValueError(f"label images have no channel axis; got dims {lead + spatial}")
    return (arr if lead else arr[None]), (lead[0] if lead else None), spatial


def _check_inputs(arr, kind, version, voxel_size_nm, n_spatial, name):
    if kind not in ("image", "labels"):
        raise ValueError(f"kind must be 'image' or 'labels'; got {kind!r}")
    if version not in ("0.5", "0.4"):
        raise ValueError(f"version must be '0.5' (zarr v3) or '0.4' (zarr v2); got {version!r}")
    if kind == "image" and np.dtype(arr.dtype).kind not in "fiub":
        raise ValueError(f"image data must be real numbers; got {arr.dtype}")
    dtype = _label_dtype(np.dtype(arr.dtype), name) if kind == "labels" else np.dtype(np.float32)
    voxel = np.broadcast_to(np.asarray(voxel_size_nm, dtype=float), (n_spatial,))
    if not np.all(np.isfinite(voxel)) or np.any(voxel <= 0):
        raise ValueError(f"voxel_size_nm must be > 0 nm (one value or one per axis); "
                         f"got {voxel_size_nm}")
    return voxel, dtype


def _slab(chunk0: int) -> int:
    """Planes per slab along the first spatial axis: even (so 2x levels line up) and a
    whole number of chunks."""
    return max(2, 2 * chunk0) if chunk0 % 2 else max(2, chunk0)


def _write_levels(group, src, *, dtype, n_levels, chunks, labels, array_kw, mask, window,
                  name):
    """Write level 0 from ``src`` (C, *spatial) slab by slab, then every coarser level
    from the one before; returns the label values found (labels) or None."""
    channel = array_kw.pop("_channel")
    values = set()
    shape = tuple(src.shape)
    step = _slab(chunks[0])
    arrays = []
    for k in range(n_levels):
        lshape = (shape[0],) + tuple(-(-s // 2 ** k) for s in shape[1:])
        out_shape = lshape if channel else lshape[1:]
        out_chunks = ((1,) if channel else ()) + tuple(min(c, s) for c, s in
                                                       zip(chunks, lshape[1:]))
        arrays.append((lshape, group.create_array(str(k), shape=out_shape, dtype=dtype,
                                                  chunks=out_chunks, fill_value=0,
                                                  **array_kw)))
    for z0 in range(0, shape[1], step):
        block = np.asarray(src[:, z0:z0 + step])
        if labels:
            _check_label_block(block, dtype, name)
            if len(values) <= MAX_LISTED_LABELS:
                values.update(np.unique(block).tolist())
        else:
            block = block.astype(np.float32, copy=False)
            window.add(block, None if mask is None else mask[z0:z0 + step])
        _store(arrays[0][1], z0, block.astype(dtype, copy=False), channel)
    for k in range(1, n_levels):
        prev_shape, prev = arrays[k - 1]
        for z0 in range(0, prev_shape[1], step):
            block = prev[(slice(None),) * channel + (slice(z0, z0 + step),)]
            block = block if channel else block[None]
            _store(arrays[k][1], z0 // 2, _down(block, labels), channel)
    return values if labels else None


def _store(array, z0: int, block: np.ndarray, channel: bool) -> None:
    index = (slice(None),) * channel + (slice(z0, z0 + block.shape[1]),)
    array[index] = block if channel else block[0]


def write_ome_zarr(path, data, *, voxel_size_nm=None, name: str = "image",
                   kind: str = "image", label_names=None, label_colors=None,
                   version: str = "0.5", n_levels: int | None = None,
                   chunks=None, mask=None, window_percentiles=(1.0, 99.0),
                   channel_labels=None, metadata: dict | None = None,
                   overwrite: bool = False) -> Path:
    """Export a volume, map, spectral volume or label image as an OME-Zarr pyramid.

    Parameters
    ----------
    path : str or path-like
        The OME-Zarr image directory (``kind="image"``), or the existing
        image to attach labels to (``kind="labels"``: written to
        ``path/labels/<name>``).
    data : array or xarray.DataArray
        Images/maps: real numbers of shape (nz, ny, nx) or (ny, nx), or with a
        leading channel dim (a DataArray ``(energy, z, y, x)``, ``(element,
        y, x)``, ... or a 4-D array ``(c, z, y, x)``), stored as float32; NaN
        is kept.  Labels: any integer or boolean dtype, values >= 0, same
        spatial shape as the image; stored as uint8 (bool, 8-bit), uint16
        (16-bit) or uint32 (32/64-bit, values < 2**32).  A dask-backed
        DataArray is read in slabs along its first spatial axis.
    voxel_size_nm : float or sequence of float, optional
        Voxel size in nm (one value, or one per spatial axis); defaults to a
        DataArray's ``attrs["pixel_size"]``, else the spacing of its
        ``z``/``y``/``x`` coordinates (units ``nm``).
    name : str
        Image name or label-image name.
    kind : {"image", "labels"}
    label_names : mapping int -> str or sequence of str, optional
        Names of label values (a sequence is indexed by value); values
        without a name are valid and listed without one.
    label_colors : mapping int -> (r, g, b[, a]) in 0-255, optional
        Every value present is listed with a colour (0 transparent, 1, 2, ...
        from the tab10 palette unless given) when there are at most 4096
        distinct values; beyond that only named/coloured values are, and
        without any, no colour table is written and viewers use their own
        (napari draws listed values above 2**16 only with numba installed).
    version : {"0.5", "0.4"}
        ``"0.5"`` writes zarr v3; ``"0.4"`` zarr v2 for older viewers.
    n_levels : int, optional
        Pyramid levels (each halves every spatial axis); default: until the
        largest axis is below 64 voxels.
    chunks : tuple of int, optional
        Spatial chunk shape of every level; default up to 64 per axis (one
        channel per chunk).
    mask : array of bool, spatial shape, optional
        Voxels whose values set the display window (e.g. the particle mask);
        default all finite values.
    window_percentiles : (float, float)
        Percentiles (0-100) of the values inside ``mask`` that become the
        OMERO window's start and end (its min/max are the data's range).
    channel_labels : sequence of str, optional
        Names of the channels; default from the channel coordinate, e.g.
        ``"642.5 eV"`` for ``energy`` in eV.
    metadata : dict, optional
        JSON-serialisable extra attributes stored under ``"spectrotomo"``
        beside the OME metadata (units, source, channel values).
    overwrite : bool
        Replace an existing image or label image of that name.

    Returns
    -------
    pathlib.Path
        The directory written (the image, or ``path/labels/<name>``).
    """
    import zarr

    src, channel_dim, spatial = _as_source(data, kind)
    if voxel_size_nm is None:
        voxel_size_nm = _voxel_from_dataarray(data, spatial)
    voxel, dtype = _check_inputs(src, kind, version, voxel_size_nm, len(spatial), name)
    labels = kind == "labels"
    channel = channel_dim is not None
    spatial_shape = tuple(src.shape[1:])
    mask, percentiles, n_levels, chunks = _check_layout(spatial_shape, mask, window_percentiles,
                                                        n_levels, chunks)
    names = _channel_names(data, channel_dim, src.shape[0], channel_labels) if channel \
        else [name]
    fmt = 3 if version == "0.5" else 2
    path = Path(path)
    target = _fresh_target(path, name, labels=labels, version=version,
                           spatial_shape=spatial_shape, overwrite=overwrite)

    group = zarr.open_group(str(target), mode="w", zarr_format=fmt)
    axes = ("c",) * channel + spatial
    array_kw = ({"dimension_names": axes} if fmt == 3 else
                {"chunk_key_encoding": {"name": "v2", "separator": "/"}})
    window = None if labels else Window(src.shape[0], int(np.prod(spatial_shape)), percentiles)
    try:
        values = _write_levels(group, src, dtype=dtype, n_levels=n_levels, chunks=chunks,
                               labels=labels, array_kw={**array_kw, "_channel": channel},
                               mask=mask, window=window, name=name)
    except Exception:
        shutil.rmtree(target, ignore_errors=True)  # never leave a half image that opens
        raise
    meta = {"multiscales": [multiscale(name, spatial, voxel, n_levels, labels, version,
                                        channel)]}
    if labels:
        meta["image-label"] = image_label(values, label_names, label_colors, version)
    else:
        meta["omero"] = {"channels": window.channels(names), "rdefs": {"model": "greyscale"}}
    attrs = {"ome": {"version": "0.5", **meta}} if fmt == 3 else meta
    if metadata:
        attrs["spectrotomo"] = metadata
    group.attrs.update(attrs)
    if labels:
        _list_label(path / "labels", name, fmt)
    return target


def _check_layout(spatial_shape, mask, window_percentiles, n_levels, chunks):
    """Checked (mask as bool array or None, (low, high) percentiles, levels, chunks)."""
    if mask is not None:
        mask = np.asarray(getattr(mask, "values", mask), dtype=bool)
        if mask.shape != spatial_shape:
            raise ValueError(f"mask shape {mask.shape} differs from the image's spatial "
                             f"shape {spatial_shape}")
    lo_p, hi_p = (float(p) for p in window_percentiles)
    if not 0 <= lo_p < hi_p <= 100:
        raise ValueError(f"window_percentiles must be 0 <= low < high <= 100; got "
                         f"{window_percentiles}")
    n_levels = default_levels(spatial_shape) if n_levels is None else int(n_levels)
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1; got {n_levels}")
    chunks = tuple(min(64, s) for s in spatial_shape) if chunks is None else tuple(chunks)
    if len(chunks) != len(spatial_shape) or min(chunks) < 1:
        raise ValueError(f"chunks must give one size >= 1 per spatial axis; got {chunks}")
    return mask, (lo_p, hi_p), n_levels, chunks


def _fresh_target(path: Path, name: str, *, labels: bool, version: str, spatial_shape,
                  overwrite: bool) -> Path:
    """The directory to write (the image, or ``path/labels/<name>`` under a checked
    parent image), removed first when ``overwrite``."""
    if labels:
        _check_parent_image(path, version, spatial_shape)
        target = path / "labels" / name
    else:
        target = path
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{str(target)!r} exists; pass overwrite=True to replace it")
        shutil.rmtree(target)
    return target


def _list_label(container_path: Path, name: str, fmt: int) -> None:
    """Add ``name`` to the ``labels`` list of the image's ``labels/`` group (kept unique)."""
    import zarr

    container = zarr.open_group(str(container_path), mode="a", zarr_format=fmt)
    current = (container.attrs.get("ome", {}) if fmt == 3 else container.attrs) \
        .get("labels", [])
    listed = list(dict.fromkeys([*current, name]))
    container.attrs.update({"ome": {"version": "0.5", "labels": listed}} if fmt == 3
                           else {"labels": listed})
