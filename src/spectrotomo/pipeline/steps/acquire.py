"""The ``acquire`` step: the input (files, a store, or the simulator) -> ``raw``.

Simulated inputs also write ``truth``, ``raw_xanes`` and ``references`` (a XANES
tomography, ``simulate:xanes3d``: ``truth`` and ``references``); the
input source is parsed once by :func:`spectrotomo.pipeline._source.parse_source`.
"""

from __future__ import annotations

from ... import io
from .._context import RunContext
from .._source import parse_source

__all__ = ["acquire", "SIMULATED_GROUPS", "simulated_groups", "simulate_preset"]

#: Store group of each child of :func:`spectrotomo.simulate.sample`'s tree.
SIMULATED_GROUPS = {"truth": "truth", "tilt_series": "raw", "xanes": "raw_xanes",
                    "references": "references"}


def simulated_groups(preset: str) -> dict[str, str]:
    """Child -> store group of the tree that ``simulate:preset`` gives (a XANES
    tomography has no separate 2D scan, so no ``raw_xanes``)."""
    from ...simulate import XANES3D_PRESETS

    if preset in XANES3D_PRESETS:
        return {k: v for k, v in SIMULATED_GROUPS.items() if k != "xanes"}
    return dict(SIMULATED_GROUPS)


def simulate_preset(preset: str, *, seed: int, **kwargs):
    """The tree of ``simulate:preset``: :func:`spectrotomo.simulate.xanes3d_sample` for
    a XANES-tomography preset, else :func:`spectrotomo.simulate.sample`."""
    from ...simulate import XANES3D_PRESETS, sample, xanes3d_sample

    return (xanes3d_sample if preset in XANES3D_PRESETS else sample)(preset, seed=seed, **kwargs)


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
    if source.kind == "simulate-holo":
        from ...simulate import holotomo_sample

        kwargs = {"distances_m": cfg.phase.distances_m} if cfg.phase.distances_m else {}
        if cfg.phase.energy_ev:
            kwargs["energy_ev"] = cfg.phase.energy_ev
        tree = holotomo_sample(source.target, seed=cfg.input.seed, **kwargs)
        return _write_inputs(ctx, tree, {"truth": "truth", "tilt_series": "raw"})
    if source.kind == "simulate":
        tree = simulate_preset(source.target, seed=cfg.input.seed,
                               pixel_size_metadata=cfg.input.pixel_size_metadata)
        return _write_inputs(ctx, tree, simulated_groups(source.target))
    overrides = {}
    if cfg.input.energies_ev:
        overrides["energy"] = cfg.input.energies_ev
    if cfg.input.pixel_size_nm:
        overrides["pixel_size"] = cfg.input.pixel_size_nm
    ts = io.read(source.target, **overrides)
    io.write(ctx.store, "raw", ts, overwrite=ctx.overwrite)
