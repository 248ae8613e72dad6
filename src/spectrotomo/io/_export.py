"""Export a sample store to viewer formats: OME-Zarr images and TIFF stacks.

Every spatial variable of the chosen groups becomes one file: a float map of
dims ``(z, y, x)`` or ``(y, x)`` an image, one with a leading dim (``energy``,
``element``, ``state``) a channel image; an integer or boolean volume a label
image (OME-Zarr: attached to an image of the same group and shape, under its
``labels/``).  Tilt series (dims with ``angle``) are not volumes and are left
out.  Layout::

    OUT/<group>/<variable>.ome.zarr[/labels/<label variable>]   (ome-zarr)
    OUT/<group>/<variable>.tif                                  (tiff)
    OUT/index.json                                              (what was written)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .._model import ValidationError
from ._omezarr import write_ome_zarr

__all__ = ["export_store", "EXPORT_FORMATS"]

EXPORT_FORMATS = ("ome-zarr", "tiff")
#: groups of acquisitions and intermediate projections: exported only when named
_NOT_BY_DEFAULT = ("raw", "raw_xanes", "od", "references")
_SPATIAL = (("z", "y", "x"), ("y", "x"))
#: label hosts: the map a label image is drawn over, in order of preference
_HOSTS = ("tm_o_ratio_smoothed", "tm_o_ratio", "electron_density", "valence", "depth")


def _split(var):
    """(lead dims, spatial dims) of a variable, or None if it is not a map/volume."""
    for spatial in _SPATIAL:
        n = len(spatial)
        if var.dims[-n:] == spatial and len(var.dims) - n <= 1:
            lead = var.dims[:-n]
            if lead and lead[0] in ("z", "y", "x", "angle", "distance"):
                return None
            return lead, spatial
    return None


def _plan(ds):
    """The group's images and label volumes (label volumes with a leading dim are
    split into one label image per entry)."""
    images, labels = [], []
    for name, var in ds.data_vars.items():
        split = _split(var)
        if split is None or var.size == 0:
            continue
        lead, spatial = split
        if var.dtype.kind in "iub":
            if lead:
                labels += [(f"{name}_{v}", var.isel({lead[0]: k}, drop=True))
                           for k, v in enumerate(var[lead[0]].values)]
            else:
                labels.append((name, var))
        elif var.dtype.kind == "f":
            images.append((name, var))
    return images, labels


def _window_mask(ds, seg_mask, var):
    """The particle mask for ``var``'s display window: the segmentation mask, else the
    group's own ``quality_mask``/``mask`` of the same spatial dims."""
    spatial = _split(var)[1]
    if seg_mask is not None and seg_mask.dims == spatial and seg_mask.shape == \
            var.shape[-len(spatial):]:
        return seg_mask.values
    for name in ("quality_mask", "mask"):
        if name in ds and ds[name].dims[-len(spatial):] == spatial and \
                ds[name].shape[-len(spatial):] == var.shape[-len(spatial):]:
            m = ds[name].values.astype(bool)
            return m.reshape((-1,) + m.shape[-len(spatial):]).any(axis=0)
    return None


def _metadata(store, group, name, var) -> dict:
    meta = {"store": str(store), "group": group, "variable": name,
            "units": str(var.attrs.get("units", "")), "dims": list(var.dims)}
    if var.attrs.get("long_name"):
        meta["long_name"] = str(var.attrs["long_name"])
    lead = _split(var)[0]
    if lead and lead[0] in var.coords:
        coord = var[lead[0]]
        meta.update(channel_dim=lead[0], channel_values=coord.values.tolist(),
                    channel_units=str(coord.attrs.get("units", "")))
    return meta


def _flag_legend(store, group, name, var):
    """(label names, label colours) of a label volume from its CF flag attributes.

    ``flag_meanings`` (space-separated names) gives the names; ``flag_values``
    the value of each (default 0, 1, 2, ... in order, as in stores whose segment
    step wrote the meanings only); ``flag_colors`` (space-separated
    ``#rrggbb``, as :func:`spectrotomo.segmentation.composition_classes`
    writes) the colours. Without ``flag_meanings`` (stores written before the
    segment step recorded them, or a plain label volume such as pores):
    ``(None, None)``, the values without names in the viewer's own colours.
    """
    meanings = var.attrs.get("flag_meanings")
    if meanings is None:
        return None, None
    where = f"export: store {store}, {group}/{name}"
    names = meanings.split() if isinstance(meanings, str) else [str(m) for m in meanings]
    values = var.attrs.get("flag_values", range(len(names)))
    values = [int(v) for v in np.atleast_1d(np.asarray(values))]
    if len(values) != len(names):
        raise ValidationError(f"{where}: flag_values has {len(values)} entries but "
                              f"flag_meanings names {len(names)} ({names}); expected one "
                              "meaning per value")
    colors = var.attrs.get("flag_colors")
    if colors is None:
        return dict(zip(values, names)), None
    colors = colors.split() if isinstance(colors, str) else [str(c) for c in colors]
    bad = [c for c in colors if not re.fullmatch(r"#[0-9a-fA-F]{6}", c)]
    if len(colors) != len(values) or bad:
        raise ValidationError(f"{where}: flag_colors must be one '#rrggbb' per flag value "
                              f"({len(values)}); got {colors}")
    rgb = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in colors]
    return dict(zip(values, names)), dict(zip(values, rgb))


def _host_for(images, label_var):
    """Name of the group's image that a label volume is drawn over (same spatial
    dims and shape, no channel axis), or None."""
    fits = [n for n, v in images if v.dims == label_var.dims and v.shape == label_var.shape]
    preferred = [n for n in _HOSTS if n in fits]
    return (preferred or fits or [None])[0]


def _voxel(var, pixel_size):
    px = var.attrs.get("pixel_size", pixel_size)
    if px is None:
        return None  # write_ome_zarr reads the nm coordinates
    return float(px)


def _export_group_omezarr(store, group, ds, out, *, seg_mask, version, overwrite):
    images, labels = _plan(ds)
    pixel_size = ds.attrs.get("pixel_size")
    written = []
    for name, var in images:
        path = write_ome_zarr(out / f"{name}.ome.zarr", var, name=name, version=version,
                              voxel_size_nm=_voxel(var, pixel_size),
                              mask=_window_mask(ds, seg_mask, var),
                              metadata=_metadata(store, group, name, var), overwrite=overwrite)
        written.append({"group": group, "variable": name, "kind": "image", "path": str(path),
                        "dims": list(var.dims), "shape": list(var.shape)})
    for name, var in labels:
        host = _host_for(images, var)
        if host is None:  # nothing to draw it over: the label values as their own image
            host = name
            write_ome_zarr(out / f"{name}.ome.zarr", var.astype(np.float32), name=name,
                           version=version, voxel_size_nm=_voxel(var, pixel_size),
                           metadata=_metadata(store, group, name, var), overwrite=overwrite)
        image = out / f"{host}.ome.zarr"
        names, colors = _flag_legend(store, group, name, var)
        path = write_ome_zarr(image, var, name=name, kind="labels", version=version,
                              voxel_size_nm=_voxel(var, pixel_size),
                              label_names=names, label_colors=colors,
                              metadata=_metadata(store, group, name, var), overwrite=overwrite)
        written.append({"group": group, "variable": name, "kind": "labels", "path": str(path),
                        "image": str(image), "dims": list(var.dims), "shape": list(var.shape)})
    return written


def _tiff_dtype(var, name):
    """ImageJ holds uint8, uint16 and float32: labels go to the smallest that fits."""
    if var.dtype.kind == "f":
        return np.dtype(np.float32)
    lo, hi = (int(var.min().values), int(var.max().values)) if var.dtype.kind != "b" else (0, 1)
    if lo < 0:
        raise ValueError(f"TIFF export of {name!r}: negative label values (min {lo})")
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535), (np.float32, 2 ** 24)):
        if hi <= top:
            return np.dtype(dtype)
    raise ValueError(f"TIFF export of {name!r}: label values up to {hi} exceed what "
                     "ImageJ TIFF holds exactly (2**24 as float32)")


def _write_tiff(path, var, *, pixel_size, mask, overwrite):
    """One ImageJ hyperstack (Z[C]YX) per variable, written plane by plane."""
    import tifffile

    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    lead, spatial = _split(var)
    px = _voxel(var, pixel_size) or float(abs(np.diff(var[spatial[-1]].values[:2])[0]))
    arr = var.data if lead else var.data[None]
    if len(spatial) == 2:
        arr = arr[:, None]
    nc, nz, ny, nx = arr.shape
    dtype = _tiff_dtype(var, var.name)

    def planes():
        for z in range(nz):
            block = np.asarray(arr[:, z])
            for c in range(nc):
                yield block[c].astype(dtype, copy=False)

    labels = [f"{v:.6g} {var[lead[0]].attrs.get('units', '')}".strip()
              if np.asarray(v).dtype.kind == "f" else str(v)
              for v in (var[lead[0]].values if lead else [var.name])] * nz
    meta = {"axes": "ZCYX", "unit": "nm", "spacing": px, "Labels": labels}
    if dtype.kind == "f":
        meta["Ranges"] = tuple(_ranges(arr, None if mask is None else mask.reshape(nz, ny, nx)))
    tifffile.imwrite(path, planes(), shape=(nz, nc, ny, nx), dtype=dtype, imagej=True,
                     resolution=(1.0 / px, 1.0 / px), metadata=meta)
    return path


def _ranges(arr, mask):
    """(start, end) display range per channel: 1st/99th percentile inside the mask."""
    out = []
    step = max(1, int(np.prod(arr.shape[1:])) // 4_000_000)  # planes sampled: bounded memory
    for c in range(arr.shape[0]):
        values = np.asarray(arr[c, ::step]).astype(np.float64)
        values = values[mask[::step]] if mask is not None else values
        values = values[np.isfinite(values)]
        lo, hi = np.percentile(values, [1, 99]) if values.size else (0.0, 1.0)
        out += [float(lo), float(hi if hi > lo else lo + 1)]
    return out


def _seg_mask(store, groups):
    from ._store import read_group

    if "segmentation" not in groups:
        return None
    seg = read_group(store, "segmentation")
    return seg["mask"].load() if "mask" in seg else None


def export_store(store, out, *, format: str = "ome-zarr", groups=None, version: str = "0.5",
                 overwrite: bool = False) -> list[dict]:
    """Write every map, volume and label volume of a sample store as OME-Zarr or TIFF.

    Parameters
    ----------
    store : str or path-like
        The sample store (``.zarr``).
    out : str or path-like
        Output directory (created); files go to ``out/<group>/``, and
        ``out/index.json`` lists them.
    format : {"ome-zarr", "tiff"}
        ``"ome-zarr"``: one OME-Zarr image per float variable (a leading
        ``energy``/``element``/``state`` dim becomes the ``c`` axis, channel
        labels such as ``"642.5 eV"``), integer/boolean volumes as label
        images under the group's TM/O (or other) image, label names and
        colours from the variable's CF ``flag_meanings``/``flag_values``/
        ``flag_colors`` when it has them; display windows from
        the 1st-99th percentile inside the particle mask.  ``"tiff"``: one
        ImageJ hyperstack (``ZCYX``, voxel size in nm, display ranges) per
        variable; labels as uint8/uint16 (float32 beyond 65535).
    groups : sequence of str, optional
        Groups to export; default every complete group except the
        acquisitions (``raw``, ``raw_xanes``, ``od``, ``references``).
    version : {"0.5", "0.4"}
        OME-Zarr version (0.5: zarr v3; 0.4: zarr v2 for older viewers).
    overwrite : bool
        Replace files this export wrote before.

    Returns
    -------
    list of dict
        One entry per file: ``group``, ``variable``, ``kind`` (``image``,
        ``labels`` or ``tiff``), ``path``, ``dims``, ``shape``.

    Raises
    ------
    ValueError
        Unknown format or a group the store lacks (the message lists them).
    ValidationError
        A label volume's ``flag_values``/``flag_colors`` do not match its
        ``flag_meanings`` (the message names the store, group and variable).
    """
    from ._store import list_groups, read_group

    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}; got {format!r}")
    present = [g for g, marker in list_groups(store).items()
               if marker and marker.get("state") == "complete"]
    if groups is None:
        groups = [g for g in present if g not in _NOT_BY_DEFAULT]
    missing = [g for g in groups if g not in present]
    if missing:
        raise ValueError(f"export: store {store} has no complete group(s) {missing}; it has "
                         f"{present}")
    out = Path(out)
    seg_mask = _seg_mask(store, present)
    written = []
    for group in groups:
        ds = read_group(store, group)
        target = out / group
        target.mkdir(parents=True, exist_ok=True)
        if format == "ome-zarr":
            written += _export_group_omezarr(store, group, ds, target, seg_mask=seg_mask,
                                             version=version, overwrite=overwrite)
            continue
        images, labels = _plan(ds)
        for name, var in images + labels:
            var = var.rename(name)
            mask = _window_mask(ds, seg_mask, var) if var.dtype.kind == "f" else None
            path = _write_tiff(target / f"{name}.tif", var, pixel_size=ds.attrs.get(
                "pixel_size"), mask=mask, overwrite=overwrite)
            written.append({"group": group, "variable": name, "kind": "tiff",
                            "path": str(path), "dims": list(var.dims),
                            "shape": list(var.shape)})
    (out / "index.json").write_text(json.dumps({"store": str(store), "format": format,
                                                "version": version if format == "ome-zarr"
                                                else None, "files": written}, indent=1))
    return written
