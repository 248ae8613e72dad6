"""The ``quantify`` step: recon -> chemistry (element amounts in atoms/nm^3 and TM/O
per voxel), voxel-parallel: one task per slab of z rows (all energies of those
voxels), each reading its block from the store and writing its own region."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ... import io
from ..._model import add_provenance
from ..._physics import pair_window
from ...spectra import edge_pairs, xanes_elements
from .._compute import run_tasks
from ._layout import kept_chunks, volume_chunks
from .acquire import nominal
from .reconstruct import log_resume

__all__ = ["quantify", "quantify_slab"]


def _element_maps(mu, pairs, tied=None):
    from ...spectra import element_maps

    # No amount threshold: negative amounts are noise around small true values and
    # must survive so that averages (segmentation smoothing, profiles) stay unbiased.
    return element_maps(mu, pairs=pairs, tied=tied, threshold=-np.inf)


def _ties(ctx, pairs) -> dict:
    """Unpaired elements of the sample's formula tied to O (``spectra.formula_ties``):
    ``[spectra] formula``, else the input's metadata; none without a formula."""
    from ...spectra import formula_ties

    formula = nominal(ctx, ctx.config.spectra.formula, "formula")
    return formula_ties(formula, pairs) if formula else {}


def quantify_slab(zs: slice, *, store, pairs: dict, names: list[str], layout: dict,
                  tied: dict | None = None) -> dict:
    """Element maps of the voxels in rows ``zs`` of ``recon/mu`` -> ``chemistry``.

    ``layout``: dims, coords and attrs of ``recon/mu`` (:func:`_layout`), so that
    the task reads only its block and opens no dataset.

    Returns
    -------
    dict
        The slab's masked-voxel counts (:func:`_slab_counts`): the step sums them into
        the group's attrs instead of reading the whole ``valid`` and ``tm_o_ratio``
        back.
    """
    import xarray as xr

    coords = {k: (dims, values[zs] if dims == ("z",) else values, attrs)
              for k, (dims, values, attrs) in layout["coords"].items()}
    mu = xr.DataArray(io.read_region(store, "recon", "mu", {"z": zs}), dims=layout["dims"],
                      coords=coords, attrs=layout["attrs"])
    ds = _element_maps(mu, pairs, tied)
    for name in names:
        var = ds[name]
        region = tuple(zs if d == "z" else slice(None) for d in var.dims)
        io.write_region(store, "chemistry", name, region, var.values)
    return _slab_counts(ds)


def _slab_counts(ds) -> dict:
    """Masked voxels of element maps (a slab's, or the store's lazy group: reduced by
    its chunks): ``n_masked`` per element (``~valid``) and ``tm_o_ratio_n_masked``
    (NaN ratios)."""
    counts = {}
    if "valid" in ds:
        masked = (~ds["valid"]).sum([d for d in ds["valid"].dims if d != "element"]).compute()
        counts["n_masked"] = {str(el): int(k) for el, k in
                              zip(masked["element"].values, masked.values)}
    if "tm_o_ratio" in ds:
        counts["tm_o_ratio_n_masked"] = int(ds["tm_o_ratio"].isnull().sum().compute())
    return counts


def _summed_counts(slabs: list[dict]) -> dict:
    """The slabs' counts (:func:`_slab_counts`) added up."""
    total: dict = {}
    for counts in slabs:
        for el, k in counts.get("n_masked", {}).items():
            total.setdefault("n_masked", {})
            total["n_masked"][el] = total["n_masked"].get(el, 0) + k
        if "tm_o_ratio_n_masked" in counts:
            total["tm_o_ratio_n_masked"] = (total.get("tm_o_ratio_n_masked", 0)
                                            + counts["tm_o_ratio_n_masked"])
    return total


def _layout(da) -> dict:
    """Dims, coords (1-D, small) and attrs of ``da`` without its data: picklable."""
    return {"dims": da.dims, "attrs": dict(da.attrs),
            "coords": {k: (c.dims, c.values, dict(c.attrs)) for k, c in da.coords.items()}}


def _slabs_missing(store, template) -> list[slice]:
    """z slabs of which at least one chemistry array (``template``'s variables) lacks
    a chunk (an element's or a y/x tile's)."""
    starts = {}
    for name, var in template.data_vars.items():
        axis = var.dims.index("z")
        whole = tuple(d for d in var.dims if d != "z")  # a task: every chunk of its rows
        for region in io.missing_regions(store, "chemistry", name, whole=whole):
            starts[region[axis].start] = region[axis]
    return [starts[k] for k in sorted(starts)]


def _chemistry_attrs(store, template, counts: dict | None = None) -> dict:
    """Group attrs of the assembled chemistry (counts over every chunk): from
    ``counts`` (:func:`_summed_counts` of every slab's task), else counted on the
    store (a resumed run, whose earlier slabs returned nothing here)."""
    attrs = {k: v for k, v in template.attrs.items()
             if k not in ("n_masked", "tm_o_ratio_n_masked")}
    if counts is None:
        counts = _slab_counts(io.read_group(store, "chemistry", allow_incomplete=True))
    if "n_masked" in counts:
        attrs["n_masked"] = repr(counts["n_masked"])
    if "tm_o_ratio_n_masked" in counts:
        attrs["tm_o_ratio_n_masked"] = counts["tm_o_ratio_n_masked"]
    return attrs


def quantify_threads(compute, *, n_energies: int, nx: int, rows: int, slabs: int) -> int:
    """Slabs computed at once in this process: 1 on a cluster (its workers parallelise),
    else one per host thread as ``memory_limit_gb`` holds (each slab's solve is numpy
    that releases the GIL; one at a time left a core idle: cpu/wall 1.1-1.2)."""
    from ..._backend import host_threads
    from .._compute import uses_cluster
    from .._plan import quantify_in_flight

    if uses_cluster(compute):
        return 1
    return quantify_in_flight(threads=max(1, min(host_threads(), slabs)), n_energies=n_energies,
                              nx=nx, rows=rows, memory_limit_gb=compute.memory_limit_gb)


def quantify(ctx) -> None:
    """recon -> chemistry: element amounts (atoms/nm^3) and TM/O per voxel, by z slab."""
    if io.read_group(ctx.store, "od").attrs.get("signal") == "phase":
        ctx.log("quantify: phase-contrast run (no absorption edges); skipped")
        return
    mu = io.read_group(ctx.store, "recon")["mu"]
    pairs = edge_pairs(mu["energy"].values, ctx.config.spectra.elements)
    if "O" not in pairs and xanes_elements(mu["energy"].values):
        # a XANES tomography of one TM edge: no O K pair, so no TM/O and no classes;
        # valence3d fits the element's amount and valence of every voxel instead
        ctx.log("quantify: XANES tomography without an O K-edge pair (TM/O needs O); "
                "skipped: element amounts and valence come from the valence3d step")
        return
    if "O" not in pairs:
        lo, hi = pair_window("O")
        raise ValueError(f"quantify: the tilt series has no O K-edge pair ({lo:g}-{hi:g} eV); "
                         f"energies are {mu['energy'].values.tolist()}")
    # one z row gives every variable's dims, dtype, units and coords
    tied = _ties(ctx, pairs)
    template = _element_maps(mu.isel(z=slice(0, 1)).load(), pairs, tied)
    # the reconstruction's chunks of rows (fewer than chunk_rows where memory asked for it)
    rows = min(ctx.config.reconstruct.chunk_rows, mu.data.chunksize[mu.dims.index("z")])
    names = list(template.data_vars)
    for name in names:
        var = template[name]
        shape = tuple(mu.sizes["z"] if d == "z" else var.sizes[d] for d in var.dims)
        # one element per chunk, y/x tiles: a reader of one element's plane or block
        # decodes no other element nor the whole plane (the tasks write whole slabs)
        chunks = kept_chunks(ctx, "chemistry", name, volume_chunks(var.dims, shape, rows))
        coords = {d: (mu[d] if d in ("z", "y", "x") else template[d]) for d in var.dims}
        io.init_array(ctx.store, "chemistry", name, shape=shape, dtype=var.dtype,
                      chunks=chunks, dims=var.dims, coords=coords, attrs=var.attrs,
                      overwrite=ctx.overwrite)
    slabs = _slabs_missing(ctx.store, template)
    log_resume(ctx, "quantify", slabs, -(-mu.sizes["z"] // rows))
    counts = run_tasks(ctx.client, quantify_slab, slabs, desc="quantify", log=ctx.log,
                       threads=quantify_threads(ctx.config.compute,
                                                n_energies=mu.sizes["energy"],
                                                nx=mu.sizes["x"], rows=rows, slabs=len(slabs)),
                       store=str(ctx.store), pairs=pairs, names=names, layout=_layout(mu),
                       tied=tied)
    # every row's slab ran here: its counts, not a read of the whole valid/tm_o_ratio
    # (0.1-0.3 s of this process after the tasks, demo)
    every_row = sum(z.stop - z.start for z in slabs) == mu.sizes["z"]
    attrs = _chemistry_attrs(ctx.store, template,
                             _summed_counts(counts) if every_row else None)
    add_provenance(SimpleNamespace(attrs=attrs), "pipeline.quantify", inputs=[str(ctx.store)],
                   pairs=pairs, tied=tied, chunk_rows=rows)
    io.mark_complete(ctx.store, "chemistry", attrs=attrs)

