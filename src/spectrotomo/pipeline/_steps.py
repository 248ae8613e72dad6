"""Pipeline steps: each reads its inputs from the sample store, calls stage
functions with explicit arguments, and writes one group (completion marker last).

Groups: ``raw`` (+ ``raw_xanes``, ``truth``, ``references`` for simulated
input) -> ``od`` -> ``recon`` -> ``chemistry`` -> ``valence`` ->
``segmentation`` -> ``profiles``. A step whose group is complete is skipped,
so a killed run resumes where it stopped; ``recon`` also resumes per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import xarray as xr

from .. import io
from .._model import add_provenance
from ._chunked import EDGE_RANGES_EV, quantify, reconstruct
from ._config import Config
from ._phase import SIMULATE_HOLO, density
from ._preprocess import (_magnification, _normalise_all, od_chunks,  # noqa: F401
                          preprocess, scale_options)
from ._profiles import profile

__all__ = ["RunContext", "STEPS", "EDGE_RANGES_EV"]

@dataclass
class RunContext:
    config: Config
    store: Path
    report_dir: Path
    log: Callable[[str], None] = print
    results: dict = field(default_factory=dict)
    #: dask.distributed Client the chunk tasks run on (None: in this process)
    client: Any = None

    @property
    def overwrite(self) -> bool:
        return self.config.output.overwrite


# --------------------------------------------------------------------------- #
def _write_inputs(ctx: RunContext, tree, groups: dict[str, str]) -> None:
    """Write the ``tree`` children as store groups (child -> group), ``raw`` last.

    ``raw`` marks the acquire step complete, so it is written after the other
    input groups; groups already complete (a run killed part-way through this
    step) are kept unless ``[output] overwrite``.
    """
    for child, group in sorted(groups.items(), key=lambda kv: kv[1] == "raw"):
        if io.is_complete(ctx.store, group) and not ctx.overwrite:
            continue
        io.write(ctx.store, group, tree[child].to_dataset(inherit=False), overwrite=True)


def acquire(ctx: RunContext) -> None:
    """Read the input file (or simulate it) into the ``raw`` group(s)."""
    src = ctx.config.input.path
    if src.startswith(SIMULATE_HOLO):
        from ..simulate import holotomo_sample

        kwargs = {"distances_m": ctx.config.phase.distances_m} if ctx.config.phase.distances_m \
            else {}
        if ctx.config.phase.energy_ev:
            kwargs["energy_ev"] = ctx.config.phase.energy_ev
        tree = holotomo_sample(src[len(SIMULATE_HOLO):], seed=ctx.config.input.seed, **kwargs)
        return _write_inputs(ctx, tree, {"truth": "truth", "tilt_series": "raw"})
    if src.startswith("simulate:"):
        from ..simulate import sample

        tree = sample(src.split(":", 1)[1], seed=ctx.config.input.seed,
                      pixel_size_metadata=ctx.config.input.pixel_size_metadata)
        return _write_inputs(ctx, tree, {"truth": "truth", "tilt_series": "raw",
                                         "xanes": "raw_xanes", "references": "references"})
    overrides = {}
    if ctx.config.input.energies_ev:
        overrides["energy"] = ctx.config.input.energies_ev
    if ctx.config.input.pixel_size_nm:
        overrides["pixel_size"] = ctx.config.input.pixel_size_nm
    ts = io.read(src, **overrides)
    io.write(ctx.store, "raw", ts, overwrite=ctx.overwrite)


def valence(ctx: RunContext) -> None:
    """raw_xanes -> valence: 2D LCF of every pixel's spectrum against the
    ``[spectra] references``, in the mode of ``[spectra] sum_to_one``/``nonneg``."""
    from ..recon import normalize, register_energies
    from ..spectra import DEFAULT_WINDOWS
    from ._xanes import config_references, fit_valence

    if "raw_xanes" not in io.list_groups(ctx.store):
        ctx.log("valence: no XANES scan in the store; skipped")
        return
    ds = io.read_group(ctx.store, "raw_xanes").load()
    proj = ds["projections"].values[:, 0]  # (energy, y, x) at the single angle
    darks = ds["darks"].values[:, 0] if "darks" in ds else None
    od = np.stack([normalize(proj[e][None], ds["flats"].values[e],
                             None if darks is None else ds["darks"].values[e])[0][0]
                   for e in range(proj.shape[0])])
    mode = ctx.config.preprocess.magnification
    # Reference = the lowest energy, below the edge: against a white-line image
    # (the default middle energy, 643.5 eV on the Mn L scan) the outline model
    # mistakes the reduced shell's contrast for up to 7.5 % magnification on the
    # demo particle (0.3-0.4 % from the pre-edge; gpu_bench/RESULTS.prep.md).
    od, reg = register_energies(od, reference=int(np.argmin(ds["energy"].values)),
                                pixel_sizes=_magnification(ds, mode),
                                **scale_options(mode, ds["energy"].values))
    px = float(ds.attrs["pixel_size"])
    spectra = xr.DataArray(od.astype(np.float32), dims=("energy", "y", "x"),
                           coords={"energy": ds["energy"], "y": ds["y"], "x": ds["x"]},
                           attrs={"units": "1", "pixel_size": px})
    cfg = ctx.config.spectra
    refs = config_references(cfg.references)
    energies = ds["energy"].values
    elements = [el for el, (lo, hi) in DEFAULT_WINDOWS.items()
                if ((energies >= lo) & (energies <= hi)).sum() >= 2 and el in set(
                    refs["state_element"].values)]
    result = fit_valence(spectra, refs, elements, cfg)
    result["registration_residual"] = (("energy",), np.asarray(reg.residual_px), {"units": "px"})
    result["energy_scale"] = (("energy",), np.asarray(reg.scales),
                              {"units": "1", "source": reg.scale_source})
    result.attrs["registration_reference"] = int(reg.reference)
    add_provenance(result, "pipeline.valence", inputs=[str(ctx.store)],
                   references=cfg.references, fit_mode=result.attrs["fit_mode"],
                   nonneg=cfg.nonneg, sum_to_one=cfg.sum_to_one)
    io.write(ctx.store, "valence", result, overwrite=ctx.overwrite)


#: variable -> (units, extra attrs) of the segmentation group
_SEG_VARS = {"mask": "1", "tm_o_ratio_smoothed": "1", "composition_class": "1",
             "depth": "nm", "shell": "1", "pores": "1", "cracks": "1"}


def _target(ctx) -> float:
    target = ctx.config.segmentation.target_tm_o
    if target is None and "truth" in io.list_groups(ctx.store):
        target = io.read_group(ctx.store, "truth").attrs.get("target_tm_o")
    if target is None:
        raise ValueError("segment: [segmentation] target_tm_o is not set and the input has no "
                         "target composition; set it in the config")
    return float(target)


def segment(ctx: RunContext) -> None:
    """recon + chemistry -> segmentation: mask, classes, shells, depth, pores, cracks.

    Block by block (``[segmentation] chunk`` voxels): the inputs are read lazily
    from the store and every output is written region by region, so memory per
    worker does not grow with the volume (segmentation.segment_volume).
    """
    from .. import segmentation as seg

    cfg = ctx.config.segmentation
    mu = io.read_group(ctx.store, "recon")["mu"]
    px = float(mu.attrs["pixel_size"])
    kw, extra = {}, {}
    if "chemistry" in io.list_groups(ctx.store):
        amount = io.read_group(ctx.store, "chemistry")["amount"]
        target = _target(ctx)
        kw = dict(amounts=amount.data, elements=list(amount["element"].values), target=target,
                  tolerance=cfg.tolerance, smoothing_nm=cfg.smoothing_nm,
                  surface_layer_nm=cfg.surface_layer_nm)
        extra = {"tm_o_ratio_smoothed": dict(smoothing_nm=cfg.smoothing_nm,
                                             surface_layer_nm=cfg.surface_layer_nm),
                 "composition_class": dict(target_tm_o=target, tolerance=cfg.tolerance,
                                           flag_meanings="background target oxygen_poor "
                                                         "oxygen_rich")}
    else:  # phase-contrast run: no chemistry
        ctx.log("segment: no chemistry group; composition classes not computed")
    res = seg.segment_volume(mu.data, spacing=px, chunk=cfg.chunk, n_shells=cfg.n_shells,
                             scratch_dir=ctx.store.parent, **kw)
    try:
        _write_segmentation(ctx, mu, res, extra, cfg.chunk)
    finally:
        res.close()
    attrs = {"pixel_size": px, "pixel_size_units": "nm"}
    add_provenance(SimpleNamespace(attrs=attrs), "pipeline.segment", inputs=[str(ctx.store)],
                   n_shells=cfg.n_shells, chunk=cfg.chunk,
                   **({} if not kw else dict(target_tm_o=kw["target"], tolerance=cfg.tolerance,
                                             smoothing_nm=cfg.smoothing_nm,
                                             surface_layer_nm=cfg.surface_layer_nm)))
    io.mark_complete(ctx.store, "segmentation", attrs=attrs)


def _write_segmentation(ctx, mu, res, extra: dict, chunk: int) -> None:
    """Copy the block-wise results into the ``segmentation`` group, region by region."""
    px = float(mu.attrs["pixel_size"])
    dims = ("z", "y", "x")
    shape = tuple(mu.sizes[d] for d in dims)
    for name, arr in res.arrays.items():
        attrs = {"pixel_size": px, "pixel_size_units": "nm", "units": _SEG_VARS[name],
                 **extra.get(name, {})}
        io.init_array(ctx.store, "segmentation", name, shape=shape, dtype=arr.dtype,
                      chunks=(chunk,) * 3, dims=dims, coords={d: mu[d] for d in dims},
                      attrs=attrs, overwrite=True)
        for region in io.missing_regions(ctx.store, "segmentation", name):
            io.write_region(ctx.store, "segmentation", name, region, np.asarray(arr[region]))


STEPS: dict[str, tuple[Callable[[RunContext], None], tuple[str, ...]]] = {
    "acquire": (acquire, ("raw",)),
    "preprocess": (preprocess, ("od",)),
    "reconstruct": (reconstruct, ("recon",)),
    "density": (density, ("density",)),
    "quantify": (quantify, ("chemistry",)),
    "valence": (valence, ("valence",)),
    "segment": (segment, ("segmentation",)),
    "profile": (profile, ("profiles",)),
}
