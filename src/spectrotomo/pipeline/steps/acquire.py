"""The ``acquire`` step: the input (files, a store, or the simulator) -> ``raw``.

Simulated inputs also write ``truth``, ``raw_xanes`` and ``references`` (a XANES
tomography, ``simulate:xanes3d``: ``truth`` and ``references``); the
input source is parsed once by :func:`spectrotomo.pipeline._source.parse_source`.
"""

from __future__ import annotations

from ... import io
from .._context import RunContext
from .._source import parse_source

__all__ = ["acquire", "SIMULATED_GROUPS"]

#: Store group of each child of :func:`spectrotomo.simulate.sample`'s tree.
SIMULATED_GROUPS = {"truth": "truth", "tilt_series": "raw", "xanes": "raw_xanes",
                    "references": "references"}


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
    cfg = ctx.config
    source = parse_source(cfg.input.path)
    source.check_preset()
    from ...simulate import XANES3D_PRESETS
    if source.kind == "simulate-holo":
        from ...simulate import holotomo_sample

        kwargs = {"distances_m": cfg.phase.distances_m} if cfg.phase.distances_m else {}
        if cfg.phase.energy_ev:
            kwargs["energy_ev"] = cfg.phase.energy_ev
        tree = holotomo_sample(source.target, seed=cfg.input.seed, **kwargs)
        return _write_inputs(ctx, tree, {"truth": "truth", "tilt_series": "raw"})
    if source.kind == "simulate" and source.target in XANES3D_PRESETS:
        from ...simulate import xanes3d_sample

        tree = xanes3d_sample(source.target, seed=cfg.input.seed,
                              pixel_size_metadata=cfg.input.pixel_size_metadata)
        return _write_inputs(ctx, tree, {k: v for k, v in SIMULATED_GROUPS.items()
                                         if k in tree.children})
    if source.kind == "simulate":
        from ...simulate import sample

        tree = sample(source.target, seed=cfg.input.seed,
                      pixel_size_metadata=cfg.input.pixel_size_metadata)
        return _write_inputs(ctx, tree, SIMULATED_GROUPS)
    overrides = {}
    if cfg.input.energies_ev:
        overrides["energy"] = cfg.input.energies_ev
    if cfg.input.pixel_size_nm:
        overrides["pixel_size"] = cfg.input.pixel_size_nm
    ts = io.read(source.target, **overrides)
    io.write(ctx.store, "raw", ts, overwrite=ctx.overwrite)
