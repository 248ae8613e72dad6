"""Range rules of the run configuration: what each value must be, checked after types.

Each rule is (section, key, predicate, what is expected); :func:`range_problems`
turns the failing ones into messages that name the key, the expected range and
the value.
"""

from __future__ import annotations

import math
from typing import Any, Callable


def _finite_positive(x) -> bool:
    return x is None or (math.isfinite(x) and x > 0)


def _depth_bins_ok(bins) -> bool:
    return (len(bins) >= 2 and all(b >= 0 for b in bins)
            and all(b > a for a, b in zip(bins, bins[1:])))


def _formula_ok(formula) -> bool:
    import xraydb

    try:
        return formula is None or "O" in xraydb.chemparse(str(formula))
    except Exception:  # xraydb raises bare errors on what it cannot parse
        return False


def _elements_ok(elements) -> bool:
    from .._physics import EDGE_WINDOWS_EV

    return (len(elements) > 0 and all(e in EDGE_WINDOWS_EV for e in elements)
            and len(set(elements)) == len(elements))


#: Algorithms whose solves ``[reconstruct] max_seconds`` caps.
_CAPPED = ("joint", "sirt", "cgls", "tv")


def _rules(cfg) -> list[tuple[str, str, Callable[[Any], bool], str]]:
    """(section, key, predicate of the value, what is expected) of every range rule."""
    from .._physics import EDGE_WINDOWS_EV
    from ..recon import ITERATION_LIMIT

    compute, rec = cfg.compute, cfg.reconstruct
    return [
        ("input", "seed", lambda x: x >= 0, ">= 0"),
        ("input", "energies_ev", lambda x: all(math.isfinite(e) and e > 0 for e in x),
         "positive energies in eV"),
        ("input", "pixel_size_nm", _finite_positive, "> 0 (nm)"),
        ("input", "binning", lambda x: x in (1, 2, 4), "1, 2 or 4"),
        ("preprocess", "center", lambda x: x == "auto" or math.isfinite(x),
         '"auto" or a finite column index'),
        ("preprocess", "align_iterations", lambda x: x >= 0, ">= 0 (0: coarse alignment only)"),
        ("phase", "delta_beta", _finite_positive, "> 0"),
        ("phase", "energy_ev", _finite_positive, "> 0 (eV), or unset"),
        ("phase", "distances_m", lambda x: all(d > 0 for d in x), "> 0 (metres)"),
        ("phase", "pixel_size_m", lambda x: cfg.phase.method == "none" or x is None or 0 < x < 1e-3,
         "in metres (0 < size < 1e-3)"),
        ("reconstruct", "iterations", lambda x: x is None or x >= 1,
         "an integer >= 1, or unset (the algorithm's default)"),
        ("reconstruct", "iterations",
         lambda x: x is None or x <= ITERATION_LIMIT or (rec.max_seconds is not None
                                                          and rec.algorithm in _CAPPED),
         f"<= {ITERATION_LIMIT} unless [reconstruct] max_seconds caps each solve (algorithm "
         f"{', '.join(_CAPPED)}; algorithm = {rec.algorithm!r})"),
        ("reconstruct", "max_seconds", _finite_positive, "> 0 (seconds per chunk), or unset"),
        ("reconstruct", "chunk_rows", lambda x: x >= 1, ">= 1 (detector rows)"),
        ("reconstruct", "xanes_components", lambda x: x >= 1,
         ">= 1 (spectral components per XANES edge)"),
        ("spectra", "elements", _elements_ok,
         f"a non-empty list of distinct elements among {', '.join(EDGE_WINDOWS_EV)}"),
        ("spectra", "formula", _formula_ok, 'a chemical formula with O (e.g. "LiCoO2"), or unset'),
        ("segmentation", "target_tm_o", _finite_positive, "> 0 (TM/O atomic ratio), or unset"),
        ("segmentation", "tolerance", lambda x: x > 0, "> 0 (relative: 0.05 = 5 %)"),
        ("segmentation", "smoothing_nm", lambda x: x >= 0, ">= 0 (nm)"),
        ("segmentation", "surface_layer_nm", lambda x: x >= 0, ">= 0 (nm)"),
        ("segmentation", "layer_pooling", lambda x: 0 <= x <= 1, "in [0, 1] (0: off)"),
        ("segmentation", "n_shells", lambda x: x >= 1, ">= 1"),
        ("segmentation", "depth_bins_nm", _depth_bins_ok,
         "at least two depths (nm), non-negative and strictly increasing"),
        ("compute", "n_workers", lambda x: x >= 1, ">= 1"),
        ("compute", "threads_per_worker", lambda x: x >= 1, ">= 1"),
        ("compute", "scheduler", lambda x: x == "threads" or ":" in x,
         '"threads" or a scheduler address such as "tcp://host:8786"'),
        ("compute", "scheduler", lambda x: x == "threads" or compute.cluster == "none",
         f"\"threads\" when [compute] cluster is set (either scheduler, an address, or "
         f"cluster, not both; cluster = {compute.cluster!r})"),
        ("compute", "memory_limit_gb", lambda x: x > 0, "> 0 (GiB)"),
    ]


def range_problems(cfg, source: str, *, skip: set) -> list[str]:
    problems = []
    for section, key, ok, expected in _rules(cfg):
        if (section, key) in skip:
            continue
        value = getattr(getattr(cfg, section), key)
        try:
            good = bool(ok(value))
        except (TypeError, ValueError):
            good = False
        if not good:
            where = f"{source}: [{section}] {key}" if source else f"[{section}] {key}"
            problems.append(f"{where} must be {expected}; got {value!r}")
    return problems
