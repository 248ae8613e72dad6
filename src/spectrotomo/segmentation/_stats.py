"""Statistics of any map per shell, per composition class and per depth bin."""

from __future__ import annotations

import numpy as np

from .._backend import to_numpy
from .._model import ValidationError
from ._util import as_mask, check_same_shape, label_ids, resolve_spacing, unwrap

__all__ = ["region_stats", "profile_table", "to_csv"]

_BY = ("shell", "class", "depth")
#: the statistics of a profile table, in column order
STATISTICS = ("mean", "std", "median", "q25", "q75", "count")


def region_stats(values, regions, *, labels=None, n_regions: int | None = None):
    """Mean, std, median, quartiles and count of ``values`` per integer region (and
    particle).

    Parameters
    ----------
    values : array, shape S, float
        Any map (e.g. valence, TM/O ratio). NaN/inf voxels are left out.
    regions : array, shape S, int
        Region index per voxel, 0 = not counted.
    labels : array, shape S, int or bool, optional
        Particle labels; statistics are then per (particle, region).
    n_regions : int, optional
        Regions are 1..n_regions (default: the largest region index).

    Returns
    -------
    dict of ndarray, each shaped (n_particles, n_regions)
        ``mean``, ``std`` (population, ddof=0), ``median``, ``q25``/``q75``
        (quartiles: the interquartile range, robust against the few wild
        voxels a ratio of two noisy amounts has), ``count`` and ``particle``
        (ids; ``[1]`` without labels). Empty groups give NaN statistics and
        count 0.
    """
    vals = np.asarray(to_numpy(values), dtype=np.float64)
    reg = np.asarray(to_numpy(regions)).astype(np.int64)
    lab = None if labels is None else np.asarray(to_numpy(labels)).astype(np.int64)
    check_same_shape(values=vals, regions=reg, labels=lab)
    n_reg = int(reg.max(initial=0)) if n_regions is None else int(n_regions)
    ids = np.array([1]) if lab is None else label_ids(lab)
    sel = (reg > 0) & (reg <= n_reg) & np.isfinite(vals)
    if lab is not None:
        sel &= lab > 0
    pidx = np.zeros(int(sel.sum()), dtype=np.int64) if lab is None else \
        np.searchsorted(ids, lab[sel])
    key = pidx * n_reg + (reg[sel] - 1)
    v = vals[sel]
    size = ids.size * n_reg
    count = np.bincount(key, minlength=size)
    total = np.bincount(key, weights=v, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        centred = v - mean[key]  # two-pass variance: no cancellation
        std = np.sqrt(np.bincount(key, weights=centred * centred, minlength=size) / count)
    q25, median, q75 = _group_quantiles(key, v, count, (0.25, 0.5, 0.75))
    shape = (ids.size, n_reg)
    return {"mean": mean.reshape(shape), "std": std.reshape(shape),
            "median": median.reshape(shape), "q25": q25.reshape(shape),
            "q75": q75.reshape(shape), "count": count.reshape(shape), "particle": ids}


def profile_table(values, regions=None, *, by: str = "shell", labels=None, n_shells: int = 5,
                  bins=None, spacing=None, per_particle: bool = False):
    """Statistics of a map per shell, per composition class or per depth bin.

    Parameters
    ----------
    values : array or xarray.DataArray, shape (nz, ny, nx) or (ny, nx)
        The map (e.g. Mn valence); its DataArray ``name``/``units`` are kept.
        A DataArray with one extra leading dim (e.g. ``element``) gives one
        profile per entry along that dim.
    regions : array, same spatial shape, optional
        ``by="shell"``: shell labels from :func:`shells` (computed from
        ``labels`` if omitted); ``by="class"``: the class image from
        :func:`composition_classes` (required); ``by="depth"``: depth in nm
        from :func:`depth` (computed from ``labels`` if omitted).
    by : {"shell", "class", "depth"}
    labels : array, optional
        Particle mask/labels (0 outside); needed to compute shells/depth and
        for ``per_particle``; also restricts the statistics to particles.
    n_shells : int
        Number of shells when they are computed here.
    bins : sequence of float, optional
        Depth bin edges in nm (``by="depth"``); default 10 equal bins from 0 to
        the largest depth. Voxels outside the edges are left out.
    spacing : float or sequence, optional
        Voxel size in nm (for computed shells/depth).
    per_particle : bool
        One profile per particle (dim ``particle``) instead of pooling.

    Returns
    -------
    xarray.Dataset
        Variables ``mean``, ``std``, ``median``, ``q25``, ``q75`` (units of
        ``values``) and ``count`` (voxels), over dim ``shell`` (1 outermost .. n), ``class``
        (1 target, 2 oxygen-poor, 3 oxygen-rich; coord ``class_name``) or
        ``depth`` (bin centres, nm; coords ``depth_lo``/``depth_hi``),
        plus ``particle`` when ``per_particle`` and any leading dim of
        ``values``. attrs ``by``, ``quantity``, ``units``.
    """
    if by not in _BY:
        raise ValidationError(f"by must be one of {_BY}; got {by!r}")
    vdata, vt = unwrap(values)
    vals = np.asarray(to_numpy(vdata), dtype=np.float64)
    lab = None
    if labels is not None:
        lab = as_mask(to_numpy(unwrap(labels)[0]), name="labels").astype(np.int64)
    spatial_ndim = lab.ndim if lab is not None else (
        np.ndim(unwrap(regions)[0]) if regions is not None else vals.ndim)
    lead = vals.ndim - spatial_ndim
    if lead not in (0, 1):
        raise ValidationError(f"values must have the spatial shape of the mask (or one leading "
                              f"dim); got values {vals.shape}, spatial ndim {spatial_ndim}")
    sp = resolve_spacing(spacing, spatial_ndim, vt,
                         unwrap(labels)[1] if labels is not None else None)
    reg, dim, coords, n_reg = _regions(regions, by, lab, n_shells, bins, sp)
    check_same_shape(values=vals[0] if lead else vals, regions=reg, labels=lab)
    use_lab = lab if per_particle else (None if lab is None else (lab > 0).astype(np.int64))
    stacks = vals if lead else vals[None]
    results = [region_stats(v, reg, labels=use_lab, n_regions=n_reg) for v in stacks]
    return assemble_table(results, dim, coords, vt, lead=bool(lead), per_particle=per_particle,
                          by=by)


def assemble_table(results, dim, coords, vt, *, lead: bool, per_particle: bool, by: str):
    """The :func:`profile_table` Dataset from :func:`region_stats` results (one per
    entry of the leading dim, or one)."""
    import xarray as xr

    units = vt.attrs.get("units", "") if vt is not None else ""
    data = {}
    for key in STATISTICS:
        arr = np.stack([r[key] for r in results])  # (lead, particle, region)
        arr_dims = ("_lead", "particle", dim)
        data[key] = (arr_dims, arr, {} if key == "count" else {"units": units})
    coords = dict(coords)
    ds = xr.Dataset(data, coords={dim: coords.pop(dim), **coords,
                                  "particle": results[0]["particle"]})
    if lead:
        lead_dim = vt.dims[0] if vt is not None else "component"
        ds = ds.rename({"_lead": lead_dim})
        if vt is not None and lead_dim in vt.coords:
            ds = ds.assign_coords({lead_dim: vt.coords[lead_dim].values})
    else:
        ds = ds.squeeze("_lead", drop=True)
    if not per_particle:
        ds = ds.squeeze("particle", drop=True)
    ds.attrs.update(by=by, quantity=(vt.name if vt is not None and vt.name else "value"),
                    units=units)
    return ds


def to_csv(table, path) -> None:
    """Write a table from :func:`profile_table`, :func:`class_fractions` or
    :func:`defect_table` as CSV (one row per region/particle/class)."""
    import xarray as xr

    if not isinstance(table, xr.Dataset):
        raise ValidationError(f"table must be an xarray.Dataset; got {type(table).__name__}")
    frame = table.to_dataframe() if table.dims else table.to_pandas().to_frame().T
    # coordinate columns first, by name: xarray keeps coordinate names in a set, so their
    # column order followed the process's string-hash seed, and the same table must
    # always give the same file
    values = [c for c in table.data_vars if c in frame.columns]
    frame = frame[sorted(c for c in frame.columns if c not in values) + values]
    frame.to_csv(path)


# --------------------------------------------------------------------------- #
def _regions(regions, by, lab, n_shells, bins, sp):
    """Integer region image, dim name, coords and number of regions."""
    from ._classes import CLASS_LEGEND
    from ._depth import depth as _depth
    from ._shells import shells as _shells

    reg = None if regions is None else np.asarray(to_numpy(unwrap(regions)[0]))
    if by == "class":
        if reg is None:
            raise ValidationError("regions (the class image) is required for by='class'")
        names = [CLASS_LEGEND[k][0] for k in (1, 2, 3)]
        return reg.astype(np.int64), "class", {"class": np.arange(1, 4),
                                               "class_name": ("class", names)}, 3
    if reg is None and lab is None:
        raise ValidationError(f"by={by!r} needs regions or labels (the particle mask)")
    if by == "shell":
        if reg is None:
            reg = np.asarray(_shells(lab, n_shells, sp))
        n = int(reg.max(initial=0))
        return reg.astype(np.int64), "shell", {"shell": np.arange(1, n + 1)}, n
    dep = np.asarray(_depth(lab, sp) if reg is None else reg, dtype=np.float64)
    inside = (lab > 0) if lab is not None else dep > 0
    edges = np.linspace(0.0, dep[inside].max(initial=0.0), 11) if bins is None else \
        np.asarray(bins, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValidationError(f"bins must be >= 2 increasing depth edges (nm); got {bins!r}")
    idx = np.searchsorted(edges, dep, side="right")  # 1..n for lo <= d < hi
    idx[dep == edges[-1]] = edges.size - 1  # the last edge is inclusive
    idx[(idx >= edges.size) | ~inside] = 0
    centres = 0.5 * (edges[:-1] + edges[1:])
    coords = {"depth": ("depth", centres, {"units": "nm"}),
              "depth_lo": ("depth", edges[:-1], {"units": "nm"}),
              "depth_hi": ("depth", edges[1:], {"units": "nm"})}
    return idx, "depth", coords, edges.size - 1


def _group_quantiles(key, v, count, qs):
    """Quantiles of ``v`` per group ``key`` (linear interpolation, as numpy's default)
    from one sort of all values."""
    out = [np.full(count.size, np.nan) for _ in qs]
    if v.size == 0:
        return out
    order = np.lexsort((v, key))
    sorted_v = v[order]
    starts = np.concatenate(([0], np.cumsum(count)[:-1]))
    has = count > 0
    for q, res in zip(qs, out):
        pos = q * (count[has] - 1)
        lo = np.floor(pos).astype(np.int64)
        frac = pos - lo
        hi = np.minimum(lo + 1, count[has] - 1)
        res[has] = (1 - frac) * sorted_v[starts[has] + lo] + frac * sorted_v[starts[has] + hi]
    return out
