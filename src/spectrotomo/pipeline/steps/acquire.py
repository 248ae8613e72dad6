"""The ``acquire`` step: the input (files, a store, or the simulator) -> ``raw``.

A real experiment is a set of files (``[input] path``: a list or a glob, one
tilt series per energy, read by :func:`spectrotomo.io.read_series`) plus 2-D
XANES energy scans (``[input] xanes``, :func:`spectrotomo.io.read_xanes`) ->
``raw_xanes`` for the ``valence`` step. ``[input] crop`` and ``binning`` are
applied to the measured tilt series (projections, flats, darks, coordinates and
pixel sizes) before ``raw`` is written, and recorded in its provenance.
Simulated inputs also write ``truth``, ``raw_xanes`` and ``references`` (a XANES
tomography, ``simulate:xanes3d``: ``truth`` and ``references``); the
input source is parsed once by :func:`spectrotomo.pipeline._source.parse_source`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ... import io
from ..._model import add_provenance
from .._config import ConfigError
from .._context import RunContext
from .._source import Source, parse_source, xanes_paths

__all__ = ["acquire", "crop_and_bin", "nominal", "input_shape", "read_input", "read_input_xanes",
           "SIMULATED_GROUPS", "simulated_groups", "simulate_preset"]

#: Store group of each child of :func:`spectrotomo.simulate.sample`'s tree.
SIMULATED_GROUPS = {"truth": "truth", "tilt_series": "raw", "xanes": "raw_xanes",
                    "references": "references"}
#: Variables of a tilt series whose detector frames are cropped and binned.
_FRAMES = ("projections", "flats", "darks")


def simulated_groups(preset: str) -> dict[str, str]:
    """Child -> store group of the tree that ``simulate:preset`` gives (a XANES
    tomography has no separate 2D scan, so no ``raw_xanes``)."""
    from ...simulate import XANES3D_PRESETS

    if preset in XANES3D_PRESETS:
        return {k: v for k, v in SIMULATED_GROUPS.items() if k != "xanes"}
    return dict(SIMULATED_GROUPS)


def nominal(ctx: RunContext, configured, key: str):
    """``configured`` (a config value), else the input's nominal sample metadata ``key``
    (what the experimenter knows before measuring, e.g. the sample formula; a simulated
    input stores it with its truth); None when neither has it."""
    if configured is None and "truth" in io.list_groups(ctx.store):
        return io.read_group(ctx.store, "truth").attrs.get(key)
    return configured


def simulate_preset(preset: str, *, seed: int, **kwargs):
    """The tree of ``simulate:preset``: :func:`spectrotomo.simulate.xanes3d_sample` for
    a XANES-tomography preset, else :func:`spectrotomo.simulate.sample`."""
    from ...simulate import XANES3D_PRESETS, sample, xanes3d_sample

    return (xanes3d_sample if preset in XANES3D_PRESETS else sample)(preset, seed=seed, **kwargs)


def crop_and_bin(ds: xr.Dataset, *, rows=None, columns=None, binning: int = 1) -> xr.Dataset:
    """Crop detector rows/columns, then average ``binning`` x ``binning`` pixels.

    Parameters
    ----------
    ds : xarray.Dataset
        Tilt series: ``projections`` (energy, [distance,] angle, y, x) counts,
        optional ``flats``/``darks`` (energy, flat|dark, y, x); numpy or dask.
    rows, columns : (int, int), optional
        ``[start, stop)`` detector pixels kept (stop exclusive), before binning.
    binning : {1, 2, 4}
        Pixels averaged per side; rows/columns beyond a multiple are dropped.

    Returns
    -------
    xarray.Dataset
        Cropped and binned frames (float32 when binned: the mean of counts),
        ``y``/``x`` coordinates (nm) the bins' centres, ``attrs["pixel_size"]``
        and the ``pixel_size_energy`` coordinate multiplied by ``binning``.

    Raises
    ------
    ValueError
        Naming ``[input] crop``/``binning`` when the range exceeds the frame or
        the binned frame would be empty.
    """
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    for key, rng, n in (("rows", rows, ny), ("columns", columns, nx)):
        if rng is not None and not 0 <= rng[0] < rng[1] <= n:
            raise ValueError(f"[input] crop.{key} = {list(rng)} must lie within the frame's "
                             f"{n} {key} (0 <= start < stop <= {n})")
    out = ds.isel(y=slice(*rows) if rows else slice(None),
                  x=slice(*columns) if columns else slice(None))
    if binning == 1:
        return out
    if out.sizes["y"] < binning or out.sizes["x"] < binning:
        raise ValueError(f"[input] binning = {binning} leaves no pixel of the "
                         f"{out.sizes['y']} x {out.sizes['x']} frame")
    frames = [v for v in _FRAMES if v in out]
    binned = out[frames].coarsen(y=binning, x=binning, boundary="trim").mean()
    for name in frames:  # the mean of counts: float32 holds it (24-bit mantissa)
        binned[name] = binned[name].astype(np.float32).assign_attrs(out[name].attrs)
    rest = out.drop_vars(frames).isel(y=slice(0, binned.sizes["y"] * binning),
                                      x=slice(0, binned.sizes["x"] * binning))
    rest = rest.drop_dims([d for d in ("y", "x") if d in rest.dims])
    result = xr.merge([rest, binned], combine_attrs="override")
    for dim in ("y", "x"):
        result[dim].attrs = out[dim].attrs
    result.attrs["pixel_size"] = float(out.attrs["pixel_size"]) * binning
    if "pixel_size_energy" in result.coords:
        result = result.assign_coords(
            pixel_size_energy=result["pixel_size_energy"] * binning)
    return result


def read_input(config, *, lazy: bool | None = None) -> tuple[xr.Dataset, list[str]]:
    """The measured tilt series of ``config.input`` (files), cropped and binned.

    Returns the dataset and the list of files read. Several files are one
    tilt series per energy (per propagation distance when ``[phase] method``
    is not "none": ``[phase] distances_m`` then gives one distance per file).
    """
    cfg = config.input
    source = parse_source(cfg.path)
    files = source.files()
    kwargs = {"angles": cfg.angles}
    if cfg.pixel_size_nm:
        kwargs["pixel_size"] = cfg.pixel_size_nm
    holo = config.phase.method != "none" and len(files) > 1
    values = config.phase.distances_m if holo else cfg.energies_ev
    if values and len(values) != len(files):
        key = "[phase] distances_m" if holo else "[input] energies_ev"
        raise ConfigError(f"{key} must give one value per input file ({len(files)}: "
                          f"{files}); got {len(values)}")
    ds = io.read_series(files, dim="distance" if holo else "energy", values=values or None,
                        lazy=lazy, **kwargs)
    crop = cfg.crop
    ds = crop_and_bin(ds, rows=crop.get("rows"), columns=crop.get("columns"),
                      binning=cfg.binning)
    if crop or cfg.binning != 1:
        add_provenance(ds, "pipeline.acquire", inputs=files, crop=crop, binning=cfg.binning,
                       pixel_size=float(ds.attrs["pixel_size"]))
    return ds, files


def read_input_xanes(config, *, lazy: bool | None = None) -> xr.Dataset | None:
    """The 2-D XANES scan of ``[input] xanes`` in the ``raw_xanes`` layout, or None."""
    paths = xanes_paths(config.input.xanes)
    if not paths:
        return None
    return io.read_xanes(paths, lazy=lazy)


def input_shape(config) -> tuple[tuple[int, int, int, int], int]:
    """``((energy, angle, y, x), n_xanes)`` of the input after crop and binning."""
    source = parse_source(config.input.path)
    xanes = read_input_xanes(config, lazy=True) if config.input.xanes else None
    if source.kind in ("file", "files"):
        sizes = read_input(config, lazy=True)[0]["projections"].sizes
        shape = tuple(sizes[d] for d in ("energy", "angle", "y", "x"))
        n_xanes = 0
    else:
        shape, n_xanes = source.shape(angles=config.input.angles)
    return shape, (xanes.sizes["energy"] if xanes is not None else n_xanes)


def _write_inputs(ctx: RunContext, tree, groups: dict[str, str], *,
                  numpy_layout: bool = False) -> None:
    """Write the ``tree`` children as store groups (child -> group), ``raw`` last.

    ``numpy_layout``: dask variables are stored in the chunks of a numpy array
    (:func:`_numpy_layout`; a lazy simulated truth), not in their dask chunks (lazily
    read files keep theirs).

    ``raw`` marks the acquire step complete, so it is written after the other
    input groups (those side by side in threads: each compresses its own arrays);
    groups already complete (a run killed part-way through this step) are kept
    unless ``[output] overwrite``.
    """
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import nullcontext

    import dask

    from ..._backend import glibc_function, host_threads

    def write(child):
        group = groups[child]
        if io.is_complete(ctx.store, group) and not ctx.overwrite:
            return
        data = tree[child]
        ds = data if isinstance(data, xr.Dataset) else data.to_dataset(inherit=False)
        ds, encoding = _numpy_layout(ds) if numpy_layout else (ds, None)
        # a lazy truth's slabs computed here (they hold the geometry), not on a cluster
        # two dask threads, two chunk rows of slabs in memory (~0.3 GiB each at 256^3):
        # one thread left the writer 17 s vs 12.8 s of wall at load ~8, for the same
        # step peak (1.60 vs 1.62 GiB: the dual-energy series' counts set it)
        with (dask.config.set(scheduler="threads", num_workers=2) if numpy_layout
              else nullcontext()):
            io.write(ctx.store, group, ds, overwrite=True, encoding=encoding)
        trim = glibc_function("malloc_trim") if numpy_layout else None
        if trim is not None:  # its slabs (2-45 MiB) were freed into the heap: hand them back
            trim(0)

    first = [child for child, group in groups.items() if group != "raw"]
    with ThreadPoolExecutor(max(1, min(host_threads(), len(first)))) as pool:
        list(pool.map(write, first))
    for child in groups.keys() - set(first):
        write(child)


def _numpy_layout(ds: xr.Dataset) -> tuple[xr.Dataset, dict | None]:
    """``ds`` with its dask variables rechunked to the zarr chunks the same arrays get
    from numpy (zarr's default guess), and the encoding that asks for them.

    A lazy truth (``sample(lazy_truth=True)``) is chunked by thin slabs for the
    simulator; stored, it keeps the layout its numpy build had (the steps that read
    it are tuned to it). Dask chunks span whole zarr chunks (z and the leading
    dimension as zarr's, y and x whole), so no two tasks write one zarr chunk.
    """
    from zarr.core.chunk_grids import _guess_chunks  # what zarr does for a numpy array

    encoding, ds = {}, ds.copy()  # shallow: the caller's dataset keeps its chunks
    for name, var in ds.data_vars.items():
        if var.chunks is None:
            continue
        chunks = _guess_chunks(var.shape, var.dtype.itemsize)
        ds[name] = var.chunk({d: (c if d not in ("y", "x") else -1)
                              for d, c in zip(var.dims, chunks)})
        encoding[name] = {"chunks": chunks}
    return ds, encoding or None


def _check_simulated(source: Source, cfg) -> None:
    source.check_preset()
    if cfg.crop or cfg.binning != 1:
        raise ConfigError(f"[input] crop/binning apply to measured files; {cfg.path!r} is "
                          "simulated (its truth would no longer match): choose a smaller preset")


def acquire(ctx: RunContext) -> None:
    """Read the input files (or simulate them) into ``raw`` (+ ``raw_xanes``)."""
    cfg = ctx.config
    source = parse_source(cfg.input.path)
    xanes = read_input_xanes(cfg)
    if xanes is not None:
        ctx.log(f"acquire: XANES scan of {xanes.sizes['energy']} energies from "
                f"{xanes_paths(cfg.input.xanes)}")
    extra = {"xanes_file": xanes} if xanes is not None else {}
    if source.kind == "simulate-holo":
        from ...simulate import holotomo_sample

        _check_simulated(source, cfg.input)
        kwargs = {"distances_m": cfg.phase.distances_m} if cfg.phase.distances_m else {}
        if cfg.phase.energy_ev:
            kwargs["energy_ev"] = cfg.phase.energy_ev
        tree = holotomo_sample(source.target, seed=cfg.input.seed, **kwargs)
        return _write_inputs(ctx, {**dict(tree.children), **extra},
                             {"truth": "truth", "tilt_series": "raw",
                              **({"xanes_file": "raw_xanes"} if extra else {})})
    if source.kind == "simulate":
        _check_simulated(source, cfg.input)
        groups = simulated_groups(source.target)
        from ...simulate import XANES3D_PRESETS

        early = {}
        if source.target not in XANES3D_PRESETS:  # sample() takes on_truth: the truth is
            # written while the series are simulated
            early["on_truth"] = lambda truth: _write_inputs(ctx, {"truth": truth},
                                                            {"truth": "truth"}, numpy_layout=True)
            early["lazy_truth"] = True  # its chemistry written and projected by slabs
            groups.pop("truth")
        tree = simulate_preset(source.target, seed=cfg.input.seed,
                               pixel_size_metadata=cfg.input.pixel_size_metadata, **early)
        if extra:  # a measured XANES scan replaces the simulated one
            groups.pop("xanes", None)
            groups["xanes_file"] = "raw_xanes"
        return _write_inputs(ctx, {**dict(tree.children), **extra}, groups)
    if source.kind == "store":
        raise ConfigError(f"[input] path {source.target!r} is a sample store: run the "
                          "pipeline with it as [output] store instead")
    ts, files = read_input(cfg)
    ctx.log(f"acquire: {len(files)} file(s), {ts.sizes['energy']} energies "
            f"{np.round(ts['energy'].values, 2).tolist()} eV, {ts.sizes['angle']} angles, "
            f"{ts.sizes['y']} x {ts.sizes['x']} pixels of {ts.attrs['pixel_size']:.4g} nm")
    _write_inputs(ctx, {"tilt_series": ts, **extra},
                  {"tilt_series": "raw", **({"xanes_file": "raw_xanes"} if extra else {})})
