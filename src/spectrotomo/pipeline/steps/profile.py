"""The ``profile`` step: statistics per shell, depth bin and composition class.

The ``profiles`` group of the sample store holds, for every profiled quantity
``q`` (``tm_o_ratio`` and ``amount`` per element for absorption runs,
``electron_density`` for holotomography, ``valence3d`` per element (e, quality-masked)
for a XANES tomography), grouping ``by`` (``shell``,
``depth``, ``class``) and statistic (``count``, ``mean``, ``std``,
``median``, ``q25``, ``q75``), one variable ``{q}_{stat}_by_{by}`` over dim ``by`` (and
``element`` for amounts). Coords: ``shell`` (1 outermost .. n), ``depth``
(bin centres, nm) with the bin edges ``depth_lo``/``depth_hi`` (nm, from
``[segmentation] depth_bins_nm``), ``class`` (1 target, 2 oxygen-poor, 3
oxygen-rich) with ``class_name``. The report turns them into CSV/PNG tables
with :func:`profile_table_of`.
"""

from __future__ import annotations

import xarray as xr

from ... import io
from .._plan import step_block_threads
from ..._model import add_provenance

__all__ = ["profile", "profile_dataset", "profile_table_of", "STATS"]

STATS = ("count", "mean", "std", "median", "q25", "q75")


def _stat_vars(table: xr.Dataset, quantity: str, by: str) -> dict[str, xr.DataArray]:
    """The variables ``{quantity}_{stat}_by_{by}`` of one :func:`profile_table` result."""
    out = {}
    for stat in STATS:
        da = table[stat].copy()
        da.attrs = ({"units": "voxels", "long_name": f"voxels with a finite {quantity}"}
                    if stat == "count" else
                    {"units": table.attrs["units"], "long_name": f"{stat} of {quantity}"})
        out[f"{quantity}_{stat}_by_{by}"] = da
    return out


def profile_dataset(maps: dict[str, xr.DataArray], seg_ds: xr.Dataset, *,
                    depth_bins_nm, chunk: int = 128, client=None,
                    scratch_dir=None, workers: int | None = None) -> xr.Dataset:
    """Shell / depth / class statistics of each map over the particle mask.

    Block by block (:func:`spectrotomo.segmentation.profile_tables_blocks`, every
    table at once): lazy (store-backed) inputs are read one block at a time, each
    once (the mask, the region images and every map serve all tables), on this
    process's threads or, given ``client``, as tasks on a dask cluster.

    Parameters
    ----------
    maps : dict name -> xarray.DataArray, dims (z, y, x) or (element, z, y, x)
        The quantities to profile, each with ``attrs["units"]``.
    seg_ds : xarray.Dataset
        The ``segmentation`` group: ``mask``, ``shell``, ``depth`` (nm) and,
        when present, ``composition_class`` (classes are profiled only then).
    depth_bins_nm : sequence of float
        Depth bin edges (nm), increasing; voxels deeper than the last edge are
        left out of the depth profile.
    chunk : int
        Block edge (voxels).
    client : distributed.Client, optional
        Reduce the blocks on this cluster (the store on a file system it sees).
    scratch_dir : path-like, optional
        Where the particle voxels wait between passes (default: the temporary
        directory; with ``client``, a directory every worker sees).
    workers : int, optional
        Threads of the block pool (default: the host's; ignored with ``client``).

    Returns
    -------
    xarray.Dataset
        Variables ``{name}_{stat}_by_{by}`` (see the module docstring).
    """
    from ... import segmentation as seg

    groupings = [("shell", seg_ds["shell"], {}),
                 ("depth", seg_ds["depth"], {"bins": list(depth_bins_nm)})]
    if "composition_class" in seg_ds:
        groupings.append(("class", seg_ds["composition_class"], {}))
    mask = seg_ds["mask"]  # one object: the tables share its reads (and each map's, region's)
    jobs = [(name, dict(values=values, regions=regions, by=by, mask=mask, **kwargs))
            for name, values in maps.items() for by, regions, kwargs in groupings]
    # all tables at once on the step's threads: a one-block volume keeps every core busy
    results = seg.profile_tables_blocks([job for _, job in jobs], chunk=chunk, client=client,
                                        scratch_dir=scratch_dir, workers=workers)
    tables = {}
    for (name, job), table in zip(jobs, results):
        tables.update(_stat_vars(table, name, job["by"]))
    ds = xr.Dataset(tables)
    ds.attrs.update(pixel_size=float(seg_ds.attrs["pixel_size"]), pixel_size_units="nm",
                    quantities=" ".join(maps), statistics=" ".join(STATS))
    return ds


def _valence3d_map(store) -> dict[str, xr.DataArray]:
    """``valence3d`` (element, z, y, x): the 3D valence where its quality mask holds."""
    if "valence3d" not in io.list_groups(store):
        return {}
    v3d = io.read_group(store, "valence3d")[["valence", "quality_mask"]]  # lazy: by blocks
    return {"valence3d": v3d["valence"].where(v3d["quality_mask"]).assign_attrs(
        v3d["valence"].attrs)}


def _maps(ctx) -> dict[str, xr.DataArray]:
    """The quantities this store's run can profile (empty: nothing to profile); lazy."""
    groups = io.list_groups(ctx.store)
    if "chemistry" in groups:
        chem = io.read_group(ctx.store, "chemistry")
        maps = {"tm_o_ratio": chem["tm_o_ratio"], "amount": chem["amount"]}
        seg = io.read_group(ctx.store, "segmentation")
        if "tm_o_ratio_smoothed" in seg:  # the ratio the classes are formed from
            maps["tm_o_ratio_smoothed"] = seg["tm_o_ratio_smoothed"]
        return {**maps, **_valence3d_map(ctx.store)}
    if "valence3d" in groups:  # a XANES tomography: no O pair, so no chemistry
        return _valence3d_map(ctx.store)
    if "density" in groups:
        dens = io.read_group(ctx.store, "density")
        return {"electron_density": dens["electron_density"].isel(energy=0, drop=True)}
    return {}


def profile(ctx) -> None:
    """segmentation + chemistry (or density) -> profiles: statistics per shell,
    depth bin (nm) and composition class of TM/O and element amounts (atoms/nm^3),
    the 3D valence (e) of a XANES tomography, or the electron density (e/nm^3) of a
    holotomography run."""
    maps = _maps(ctx)
    if not maps:
        ctx.log("profile: no chemistry, valence3d or density group; skipped")
        return
    seg_ds = io.read_group(ctx.store, "segmentation")
    bins = ctx.config.segmentation.depth_bins_nm
    ds = profile_dataset(maps, seg_ds, depth_bins_nm=bins, chunk=ctx.config.segmentation.chunk,
                         client=ctx.client, scratch_dir=ctx.store.parent,
                         workers=step_block_threads(ctx.config, seg_ds["mask"].shape))
    add_provenance(ds, "pipeline.profile", inputs=[str(ctx.store)],
                   quantities=list(maps), depth_bins_nm=list(bins))
    io.write(ctx.store, "profiles", ds, overwrite=ctx.overwrite)


def profile_table_of(profiles: xr.Dataset, quantity: str, by: str) -> xr.Dataset:
    """One quantity's table (``count``, ``mean``, ``std``, ``median`` over dim
    ``by``) from the ``profiles`` group, shaped as
    :func:`spectrotomo.segmentation.profile_table` returns it (for ``to_csv``
    and ``plot_profile``).

    Raises
    ------
    KeyError
        If the group has no ``{quantity}_mean_by_{by}`` (names what it has).
    """
    # the column order of profile_table (and of the report's CSV files)
    names = {stat: f"{quantity}_{stat}_by_{by}"
             for stat in ("mean", "std", "median", "q25", "q75", "count")
             if stat in ("mean", "std", "median", "count")  # stores before the quartiles
             or f"{quantity}_{stat}_by_{by}" in profiles}
    if names["mean"] not in profiles:
        have = sorted(n for n in profiles.data_vars if n.endswith(f"_mean_by_{by}"))
        raise KeyError(f"profiles group has no {names['mean']!r}; it has {have}")
    table = profiles[list(names.values())].rename({v: k for k, v in names.items()})
    units = profiles[names["mean"]].attrs.get("units", "")
    for stat in names:
        table[stat].attrs = {} if stat == "count" else {"units": units}
    table.attrs = {"by": by, "quantity": quantity, "units": units}
    return table
