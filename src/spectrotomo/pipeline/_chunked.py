"""The chunk-parallel steps: reconstruction (slice-parallel) and element
quantification (voxel-parallel), streamed chunk by chunk through the store.

Each chunk is one task (:func:`~spectrotomo.pipeline._compute.run_tasks`): it
reads its own input block from the store, computes, and writes its own
chunk-aligned region with a done marker; the coordinator only creates the
arrays, lists the missing regions and marks the group complete. So memory per
task is one chunk (whatever the volume size), any dask worker that sees the
store can take a task, and a killed run resumes at the first unwritten chunk.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .. import io
from .._backend import cupy_available, to_numpy
from .._model import add_provenance, volume
from ._compute import run_tasks

__all__ = ["reconstruct", "quantify", "reconstruct_region", "quantify_slab", "edge_pairs",
           "EDGE_RANGES_EV"]

#: Energy windows of the absorption edges (eV): the lowest and highest measured
#: energy inside a window form that element's below/above dual-energy pair.
EDGE_RANGES_EV = {"O": (520.0, 560.0), "Mn": (630.0, 670.0), "Co": (770.0, 810.0),
                  "Ni": (845.0, 885.0)}


# --------------------------------------------------------------------------- #
# reconstruct: one task per (energy, row chunk)
# --------------------------------------------------------------------------- #
def reconstruct_region(region, *, store, params: dict) -> None:
    """Reconstruct one ``(energy, z)`` region of ``recon/mu`` from ``od/od``.

    ``params``: ``angles`` (deg), ``center`` (column index), ``algorithm``,
    ``iterations``, ``pixel_size`` (nm), the algorithm's ``options`` and
    ``device`` (auto | cpu | gpu: where the slices are reconstructed; the GPU
    is the current cupy device, e.g. one per dask-cuda worker or batch slot).
    """
    from ..recon import reconstruct as recon_fn

    e, zs = region[0], region[1]
    sino = io.read_region(store, "od", "od", (e.start, slice(None), zs))  # (angles, rows, cols)
    vol = recon_fn(_on_device(sino, params["device"]), params["angles"],
                   algorithm=params["algorithm"], center=params["center"],
                   iterations=params["iterations"], pixel_size=params["pixel_size"],
                   **params["options"])
    io.write_region(store, "recon", "mu", region, to_numpy(vol).astype(np.float32)[None])


def _on_device(block: np.ndarray, device: str):
    """``block`` on the GPU (current cupy device) for ``device`` gpu, or where
    ``auto`` finds a usable GPU in this (worker) process; else unchanged."""
    if device == "cpu" or (device == "auto" and not cupy_available()):
        return block
    if not cupy_available():
        raise RuntimeError("[compute] device = \"gpu\" but cupy finds no usable CUDA device in "
                           "this process; install spectrotomo[gpu] or use device = \"auto\"")
    import cupy

    return cupy.asarray(block)


def reconstruct(ctx) -> None:
    """od -> recon: every energy, chunk by chunk of rows, resumable per chunk."""
    cfg = ctx.config.reconstruct
    od = io.read_group(ctx.store, "od")
    n_e, _, ny, nx = od["od"].shape
    px = float(od.attrs["pixel_size"])
    rows = min(cfg.chunk_rows, ny)
    template = volume(np.zeros((n_e, 1, 1, 1), np.float32), energies=od["energy"].values,
                      voxel_size=px, name="mu")
    coords = {"energy": od["energy"], "z": od["y"].rename(y="z"), "y": od["x"].rename(x="y"),
              "x": od["x"]}
    io.init_array(ctx.store, "recon", "mu", shape=(n_e, ny, nx, nx), dtype="float32",
                  chunks=(1, rows, nx, nx), dims=("energy", "z", "y", "x"), coords=coords,
                  attrs={**template.attrs, "algorithm": cfg.algorithm,
                         "device": ctx.config.compute.device,
                         "center": od.attrs["center"]}, overwrite=ctx.overwrite)
    params = {"angles": od["angle"].values, "center": float(od.attrs["center"]),
              "device": ctx.config.compute.device,
              "algorithm": cfg.algorithm, "iterations": cfg.iterations, "pixel_size": px,
              "options": {"filter": cfg.filter} if cfg.algorithm == "fbp"
              else {"nonneg": cfg.nonneg}}
    regions = io.missing_regions(ctx.store, "recon", "mu")
    _log_resume(ctx, "reconstruct", regions, n_e * -(-ny // rows))
    run_tasks(ctx.client, reconstruct_region, regions, desc="reconstruct",
              store=str(ctx.store), params=params)
    io.mark_complete(ctx.store, "recon")


def _log_resume(ctx, step: str, todo: list, total: int) -> None:
    if len(todo) < total:
        ctx.log(f"{step}: resuming, {total - len(todo)} of {total} chunks already written")


# --------------------------------------------------------------------------- #
# quantify: one task per slab of z rows (all energies of those voxels)
# --------------------------------------------------------------------------- #
def edge_pairs(energies: np.ndarray, elements) -> dict[str, tuple[float, float]]:
    """Element -> (below, above) eV: the extreme measured energies in its edge window."""
    pairs = {}
    for el in elements:
        lo, hi = EDGE_RANGES_EV[el]
        inside = energies[(energies >= lo) & (energies <= hi)]
        if inside.size >= 2:
            pairs[el] = (float(inside.min()), float(inside.max()))
    return pairs


def _element_maps(mu, pairs):
    from ..spectra import element_maps

    # No amount threshold: negative amounts are noise around small true values and
    # must survive so that averages (segmentation smoothing, profiles) stay unbiased.
    return element_maps(mu, pairs=pairs, threshold=-np.inf)


def quantify_slab(zs: slice, *, store, pairs: dict, names: list[str], layout: dict) -> None:
    """Element maps of the voxels in rows ``zs`` of ``recon/mu`` -> ``chemistry``.

    ``layout``: dims, coords and attrs of ``recon/mu`` (:func:`_layout`), so that
    the task reads only its block and opens no dataset.
    """
    import xarray as xr

    coords = {k: (dims, values[zs] if dims == ("z",) else values, attrs)
              for k, (dims, values, attrs) in layout["coords"].items()}
    mu = xr.DataArray(io.read_region(store, "recon", "mu", {"z": zs}), dims=layout["dims"],
                      coords=coords, attrs=layout["attrs"])
    ds = _element_maps(mu, pairs)
    for name in names:
        var = ds[name]
        region = tuple(zs if d == "z" else slice(None) for d in var.dims)
        io.write_region(store, "chemistry", name, region, var.values)


def _layout(da) -> dict:
    """Dims, coords (1-D, small) and attrs of ``da`` without its data: picklable."""
    return {"dims": da.dims, "attrs": dict(da.attrs),
            "coords": {k: (c.dims, c.values, dict(c.attrs)) for k, c in da.coords.items()}}


def _slabs_missing(store, template) -> list[slice]:
    """z slabs of which at least one chemistry array (``template``'s variables) lacks
    its chunk."""
    starts = {}
    for name, var in template.data_vars.items():
        axis = var.dims.index("z")
        for region in io.missing_regions(store, "chemistry", name):
            starts[region[axis].start] = region[axis]
    return [starts[k] for k in sorted(starts)]


def _chemistry_attrs(store, template) -> dict:
    """Group attrs of the assembled chemistry (counts over every chunk)."""
    ds = io.read_group(store, "chemistry", allow_incomplete=True)
    attrs = {k: v for k, v in template.attrs.items()
             if k not in ("n_masked", "tm_o_ratio_n_masked")}
    if "valid" in ds:
        masked = (~ds["valid"]).sum(("z", "y", "x")).compute()
        attrs["n_masked"] = repr({str(el): int(masked.sel(element=el))
                                  for el in masked["element"].values})
    if "tm_o_ratio" in ds:
        attrs["tm_o_ratio_n_masked"] = int(ds["tm_o_ratio"].isnull().sum().compute())
    return attrs


def quantify(ctx) -> None:
    """recon -> chemistry: element amounts (atoms/nm^3) and TM/O per voxel, by z slab."""
    if io.read_group(ctx.store, "od").attrs.get("signal") == "phase":
        ctx.log("quantify: phase-contrast run (no absorption edges); skipped")
        return
    mu = io.read_group(ctx.store, "recon")["mu"]
    pairs = edge_pairs(mu["energy"].values, ctx.config.spectra.elements)
    if "O" not in pairs:
        raise ValueError("quantify: the tilt series has no O K-edge pair (520-560 eV); "
                         f"energies are {mu['energy'].values.tolist()}")
    # one z row gives every variable's dims, dtype, units and coords
    template = _element_maps(mu.isel(z=slice(0, 1)).load(), pairs)
    rows = min(ctx.config.reconstruct.chunk_rows, mu.sizes["z"])
    names = list(template.data_vars)
    for name in names:
        var = template[name]
        shape = tuple(mu.sizes["z"] if d == "z" else var.sizes[d] for d in var.dims)
        chunks = tuple(rows if d == "z" else var.sizes[d] for d in var.dims)
        coords = {d: (mu[d] if d in ("z", "y", "x") else template[d]) for d in var.dims}
        io.init_array(ctx.store, "chemistry", name, shape=shape, dtype=var.dtype,
                      chunks=chunks, dims=var.dims, coords=coords, attrs=var.attrs,
                      overwrite=ctx.overwrite)
    slabs = _slabs_missing(ctx.store, template)
    _log_resume(ctx, "quantify", slabs, -(-mu.sizes["z"] // rows))
    run_tasks(ctx.client, quantify_slab, slabs, desc="quantify", store=str(ctx.store),
              pairs=pairs, names=names, layout=_layout(mu))
    attrs = _chemistry_attrs(ctx.store, template)
    add_provenance(SimpleNamespace(attrs=attrs), "pipeline.quantify", inputs=[str(ctx.store)],
                   pairs=pairs, chunk_rows=rows)
    io.mark_complete(ctx.store, "chemistry", attrs=attrs)

