"""OME-Zarr view of volumes, maps and label images for napari and neuroglancer.

OME-Zarr 0.5 (zarr v3, metadata under ``attrs["ome"]``) by default, 0.4
(zarr v2, ``/``-separated chunk keys) for older viewers.  Images and maps are
written as float32 multiscale pyramids (2x block means); label images keep
their unsigned integer dtype and are subsampled (nearest), placed under
``<image>/labels/<name>`` with ``image-label`` colours and names as the spec
requires.  Axes are ``z, y, x`` (or ``y, x``) of type ``space`` in
``nanometer``; every level carries its scale (and the half-voxel translation
that block averaging implies).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

__all__ = ["write_ome_zarr"]

_AXES = ("z", "y", "x")
# tab10, 0-255: distinct, colour-blind-tolerant defaults for label values 1, 2, ...
_PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
_LABEL_DTYPES = (np.uint8, np.uint16, np.uint32)


def _default_levels(shape) -> int:
    levels = 1
    while max(-(-s // 2 ** levels) for s in shape) >= 64:
        levels += 1
    return levels


def _mean_down(a: np.ndarray) -> np.ndarray:
    """2x block mean along every axis; odd sizes are padded by edge replication."""
    pad = [(0, s % 2) for s in a.shape]
    a = np.pad(a, pad, mode="edge") if any(p for _, p in pad) else a
    shape = [n for s in a.shape for n in (s // 2, 2)]
    return a.reshape(shape).mean(axis=tuple(range(1, 2 * a.ndim, 2)), dtype=np.float64) \
        .astype(a.dtype)


def _pyramid(data: np.ndarray, n_levels: int, labels: bool) -> list[np.ndarray]:
    levels = [data]
    for _ in range(n_levels - 1):
        prev = levels[-1]
        levels.append(prev[(slice(None, None, 2),) * prev.ndim] if labels else _mean_down(prev))
    return levels


def _transforms(voxel, level: int, labels: bool) -> list[dict]:
    factor = 2 ** level
    out = [{"type": "scale", "scale": [float(v * factor) for v in voxel]}]
    if level and not labels:  # a block mean's centre sits half a block in
        out.append({"type": "translation",
                    "translation": [float(v * (factor - 1) / 2) for v in voxel]})
    return out


def _multiscale(name, axes, voxel, n_levels, labels, version) -> dict:
    ms = {
        "name": name,
        "axes": [{"name": a, "type": "space", "unit": "nanometer"} for a in axes],
        "datasets": [{"path": str(k), "coordinateTransformations": _transforms(voxel, k, labels)}
                     for k in range(n_levels)],
        "type": "nearest" if labels else "mean",
        "metadata": {"description": "2x subsampling" if labels else "2x block mean",
                     "software": "spectrotomo"},
    }
    if version == "0.4":
        ms["version"] = "0.4"
    return ms


def _omero(name: str, data: np.ndarray) -> dict:
    finite = data[np.isfinite(data)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return {"channels": [{"label": name, "color": "FFFFFF", "active": True,
                          "window": {"min": lo, "max": hi, "start": lo, "end": hi}}],
            "rdefs": {"model": "greyscale"}}


def _image_label(data, label_names, label_colors, version) -> dict:
    values = set(np.unique(data).tolist())
    names = dict(enumerate(label_names)) if isinstance(label_names, (list, tuple)) \
        else dict(label_names or {})
    colors = dict(label_colors or {})
    values |= set(names) | set(colors)
    rgba = []
    for v in sorted(int(v) for v in values):
        c = colors.get(v, (0, 0, 0, 0) if v == 0 else _PALETTE[(v - 1) % len(_PALETTE)])
        c = [int(x) for x in c] + [255] * (4 - len(c))
        if len(c) != 4 or not all(0 <= x <= 255 for x in c):
            raise ValueError(f"label_colors[{v}] must be (r, g, b[, a]) in 0-255; got {c}")
        rgba.append({"label-value": v, "rgba": c})
    props = [{"label-value": int(v), "name": str(n)} for v, n in sorted(names.items())]
    label = {"colors": rgba, "properties": props, "source": {"image": "../../"}}
    if version == "0.4":
        label["version"] = "0.4"
    return label


def _check_inputs(data, kind, version, voxel_size_nm):
    if kind not in ("image", "labels"):
        raise ValueError(f"kind must be 'image' or 'labels'; got {kind!r}")
    if version not in ("0.5", "0.4"):
        raise ValueError(f"version must be '0.5' (zarr v3) or '0.4' (zarr v2); got {version!r}")
    if data.ndim not in (2, 3):
        raise ValueError(f"data must be 2-D (y, x) or 3-D (z, y, x); got shape {data.shape}")
    if kind == "labels" and data.dtype.type not in _LABEL_DTYPES:
        raise ValueError(f"label images must be uint8, uint16 or uint32; got {data.dtype}")
    if kind == "image" and data.dtype.kind not in "fiub":
        raise ValueError(f"image data must be real numbers; got {data.dtype}")
    voxel = np.broadcast_to(np.asarray(voxel_size_nm, dtype=float), (data.ndim,))
    if not np.all(np.isfinite(voxel)) or np.any(voxel <= 0):
        raise ValueError(f"voxel_size_nm must be > 0 nm (one value or one per axis); "
                         f"got {voxel_size_nm}")
    return voxel


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


def _voxel_from_dataarray(data):
    """Voxel size (nm) of a DataArray: ``attrs["pixel_size"]``, else the spacing of
    its nm coordinates."""
    attrs = getattr(data, "attrs", {})
    if attrs.get("pixel_size") is not None:
        return attrs["pixel_size"]
    coords = getattr(data, "coords", {})
    steps = []
    for dim in getattr(data, "dims", ()):
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


def write_ome_zarr(path, data, *, voxel_size_nm=None, name: str = "image",
                   kind: str = "image", label_names=None, label_colors=None,
                   version: str = "0.5", n_levels: int | None = None,
                   chunks=None, overwrite: bool = False) -> Path:
    """Export a volume, map or label image as an OME-Zarr multiscale pyramid.

    Parameters
    ----------
    path : str or path-like
        The OME-Zarr image directory (``kind="image"``), or the existing
        image to attach labels to (``kind="labels"``: written to
        ``path/labels/<name>``).
    data : array or xarray.DataArray, shape (nz, ny, nx) or (ny, nx)
        Images/maps: real numbers, stored as float32; NaN is kept.  Labels:
        uint8, uint16 or uint32, same shape as the image.
    voxel_size_nm : float or sequence of float, optional
        Voxel size in nm (one value, or one per axis); defaults to a
        DataArray's ``attrs["pixel_size"]``, else the spacing of its
        ``z``/``y``/``x`` coordinates (units ``nm``).
    name : str
        Image name or label-image name.
    kind : {"image", "labels"}
    label_names : mapping int -> str or sequence of str, optional
        Names of label values (a sequence is indexed by value).
    label_colors : mapping int -> (r, g, b[, a]) in 0-255, optional
        Defaults: 0 transparent, 1, 2, ... from the tab10 palette.
    version : {"0.5", "0.4"}
        ``"0.5"`` writes zarr v3; ``"0.4"`` zarr v2 for older viewers.
    n_levels : int, optional
        Pyramid levels (each halves every axis); default: until the
        largest axis is below 64 voxels.
    chunks : tuple of int, optional
        Chunk shape of every level; default up to 64 per axis.
    overwrite : bool
        Replace an existing image or label image of that name.

    Returns
    -------
    pathlib.Path
        The directory written (the image, or ``path/labels/<name>``).
    """
    import zarr

    if voxel_size_nm is None:
        voxel_size_nm = _voxel_from_dataarray(data)
    if hasattr(data, "dims") and tuple(data.dims) not in (_AXES, _AXES[1:]):
        raise ValueError(f"data dims must be ('z', 'y', 'x') or ('y', 'x'); got {data.dims}")
    data = np.asarray(getattr(data, "values", data))
    voxel = _check_inputs(data, kind, version, voxel_size_nm)
    labels = kind == "labels"
    if not labels:
        data = data.astype(np.float32, copy=False)
    axes = _AXES[3 - data.ndim:]
    n_levels = _default_levels(data.shape) if n_levels is None else int(n_levels)
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1; got {n_levels}")
    chunks = tuple(min(64, s) for s in data.shape) if chunks is None else tuple(chunks)
    fmt = 3 if version == "0.5" else 2
    path = Path(path)

    if labels:
        _check_parent_image(path, version, data.shape)
        target = path / "labels" / name
    else:
        target = path
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{str(target)!r} exists; pass overwrite=True to replace it")
        shutil.rmtree(target)

    group = zarr.open_group(str(target), mode="w", zarr_format=fmt)
    array_kw = ({"dimension_names": axes} if fmt == 3 else
                {"chunk_key_encoding": {"name": "v2", "separator": "/"}})
    for k, level in enumerate(_pyramid(data, n_levels, labels)):
        arr = group.create_array(str(k), shape=level.shape, dtype=level.dtype,
                                 chunks=tuple(min(c, s) for c, s in zip(chunks, level.shape)),
                                 fill_value=0, **array_kw)
        arr[...] = level
    meta = {"multiscales": [_multiscale(name, axes, voxel, n_levels, labels, version)]}
    if labels:
        meta["image-label"] = _image_label(data, label_names, label_colors, version)
    else:
        meta["omero"] = _omero(name, data)
    group.attrs.update({"ome": {"version": "0.5", **meta}} if fmt == 3 else meta)

    if labels:
        container = zarr.open_group(str(path / "labels"), mode="a", zarr_format=fmt)
        current = (container.attrs.get("ome", {}) if fmt == 3 else container.attrs) \
            .get("labels", [])
        names = list(dict.fromkeys([*current, name]))
        container.attrs.update({"ome": {"version": "0.5", "labels": names}} if fmt == 3
                               else {"labels": names})
    return target
