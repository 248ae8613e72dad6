"""The report's part for a ``valence3d`` group: valence orthoslices, mean valence and
the error against the simulator's truth (3D valence MAE over the interior)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from .. import io
from ._figures import orthoslices
from ._report_reads import block_sums

__all__ = ["valence3d_report", "valence3d_errors", "truth_interior"]


def valence3d_report(store, out: Path, *, draw=None) -> dict:
    """``valence3d_<el>.png`` (central slices of the valence where the quality mask
    holds) and the summary's mean valence and trusted-voxel fraction per element.
    ``draw(fn, *args, **kwargs)`` draws each figure (e.g. submits it to a thread
    pool); None: no figures. The volumes are read by blocks (in this thread) and planes,
    never whole."""
    v3d = io.read_group(store, "valence3d")[["valence", "quality_mask", "particle_mask"]]
    elements = list(v3d["element"].values)
    maps = [v3d[name].sel(element=el) for el in elements for name in ("valence", "quality_mask")]
    sums = block_sums(_trusted_sums, v3d["particle_mask"], *maps)
    summary = {}
    inside = max(int(sums[0]), 1)
    for k, el in enumerate(elements):
        da, quality = v3d["valence"].sel(element=el), v3d["quality_mask"].sel(element=el)
        if draw:
            draw(orthoslices, da, Path(out) / f"valence3d_{el}.png", mask=quality,
                 title=f"{el} effective valence (3D, quality-masked)", cmap="plasma")
        total, n = sums[1 + 2 * k: 3 + 2 * k]
        summary[f"mean_valence3d_{el}"] = float(total / n) if n else None
        summary[f"valence3d_{el}_trusted_fraction"] = float(np.int64(n) / inside)
    return summary


def _trusted_sums(particle, *maps) -> np.ndarray:
    """One block's [particle voxels, then per element: sum of the valence where the
    quality mask holds (float64), those voxels]."""
    out = [np.count_nonzero(particle)]
    for valence, quality in zip(maps[::2], maps[1::2]):
        trusted = valence[np.asarray(quality, dtype=bool)]
        out += [trusted.sum(dtype=np.float64), trusted.size]
    return np.array(out, dtype=np.float64)


def truth_interior(truth: xr.Dataset) -> np.ndarray:
    """The voxels every interior error is taken over: > 3 voxels deep, fully solid,
    no pore or crack (boolean, the truth's shape)."""
    px = float(truth.attrs["pixel_size"])
    return ((truth["depth"].values > 3 * px) & (truth["occupancy"].values > 0.99)
            & ~truth["void"].values & ~truth["crack"].values)


def valence3d_errors(store, abs_sum: float, trusted: int, interior: int) -> dict:
    """``mn_valence3d_mae``: mean |estimated - true| Mn valence over the interior voxels
    (> 3 voxels deep, fully solid, no pore or crack, :func:`truth_interior`) that the
    quality mask trusts, from its sum ``abs_sum`` over the ``trusted`` voxels;
    ``mn_valence3d_coverage``: the fraction of the ``interior`` voxels it trusts;
    ``valence3d_energy_offset_ev`` and its error against the simulator's offset."""
    v3d = io.read_group(store, "valence3d")
    if "Mn" not in v3d["element"].values:
        return {}
    errors = {"mn_valence3d_mae": float(abs_sum / trusted) if trusted else None,
              "mn_valence3d_coverage": float(trusted / max(int(interior), 1))}
    if "true_energy_offset_ev" in v3d.attrs:
        fitted = float(v3d.attrs["energy_offset_ev"][list(v3d["element"].values).index("Mn")])
        errors["valence3d_energy_offset_ev"] = fitted
        errors["valence3d_energy_offset_error_ev"] = fitted - float(
            v3d.attrs["true_energy_offset_ev"])
    return errors
