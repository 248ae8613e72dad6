"""Validation before a run writes anything: the whole config and the input's metadata.

:func:`validate_run` checks every config key against its domain
(:func:`~spectrotomo.pipeline._config.check_config`) and the input the run will
use (the store's ``raw`` group when complete, else ``[input] path``: a file's
metadata, a store, or a simulator preset) for physical sanity. It raises one
:class:`ConfigError` listing every problem (key or file field, value, what is
expected) within seconds, or returns the warnings, which the run logs to
``run.log`` and the report's summary.

Documented limits (refused unless stated):

- a tomogram needs at least ``MIN_ANGLES`` (20) angles spanning ``MIN_RANGE_DEG``
  (60 deg); repeated angles are refused by the data model (the readers); a span
  over ``MAX_SPAN_DEG`` (two turns) warns (degrees labelled radians read 57.3x too large);
- energies inside ``ENERGY_RANGE_EV`` (100 eV - 100 keV: soft to hard X-rays;
  values of 0.1-100 are named as probably keV); each ``[spectra] elements``
  entry needs two energies around its edge when ``quantify`` runs;
- counts: no all-zero frame, no frame with >= 99 % pixels at the integer
  type's maximum (> 5 % warns), flats brighter than darks at every energy,
  at most 20 % non-positive (dark-subtracted) counts (> 1 % warns); NaN/Inf
  counts are counted and warned. Frame checks read at most ``SAMPLE_BYTES``
  (64 MiB): every frame of a small input, evenly spaced angles of a large one;
- references must give every element they contain two states of different
  valence (one state gives no valence: all NaN).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from ..io import ReaderError
from ._config import Config, ConfigError, check_config
from ._config_rules import _CAPPED
from ._source import parse_source
from ._validate_counts import SAMPLE_BYTES, check_counts, short_values

__all__ = ["validate_run", "InputReaderError", "MIN_ANGLES", "MIN_RANGE_DEG", "ENERGY_RANGE_EV", "SAMPLE_BYTES"]

#: Fewest projection angles of a tomogram (a 130 deg tilt series at 2 deg has 66).
MIN_ANGLES = 20
#: Smallest angular range (deg) of a tomogram.
MIN_RANGE_DEG = 60.0
#: Angular span (deg) above which a warning asks whether degrees were labelled radians.
MAX_SPAN_DEG = 720.0
#: Photon energies (eV) the toolkit models: soft to hard X-rays.
ENERGY_RANGE_EV = (100.0, 100_000.0)
#: Steps that reconstruct (need a tomogram) and that need each element's edge pair.
_TOMO_STEPS, _EDGE_STEPS = ("preprocess", "reconstruct"), ("quantify",)


class InputReaderError(ConfigError, ReaderError):
    """Validation refused the run and a reader refused the input: a
    :class:`ConfigError` (``problems``) that is also an ``io.ReaderError``."""


@dataclass
class _Input:
    """What the run will read: ``where`` names it in messages."""

    where: str
    energies: np.ndarray | None = None
    angles: np.ndarray | None = None
    n_cols: int | None = None
    phase: bool = False
    tomogram: bool = True  # raw projections still to reconstruct (not an od group)
    ds: object = None  # raw tilt series (lazy) for the count checks
    xanes: bool = False
    problems: list[str] = field(default_factory=list)  # the input cannot be described
    unreadable: bool = False  # a reader refused the input
    extra: list[str] = field(default_factory=list)  # problems that do not stop the checks


def validate_run(config: Config, *, steps: Iterable[str], store: str | Path,
                 source: str = "") -> list[str]:
    """Check ``config`` and its input before a run writes anything.

    Parameters
    ----------
    config : Config
        The run's configuration (also one built or edited in Python).
    steps : iterable of str
        The steps the run will run (checks that only a step needs run with it).
    store : path
        The sample store (a complete ``raw`` group there is the input).
    source : str
        Name of the config in messages (its file; default none: ``[section] key``).

    Returns
    -------
    list of str
        Warnings (the run logs them to run.log and the report's summary).

    Raises
    ------
    ConfigError
        Listing every problem found (``.problems``), each naming the key or
        file field, the value and what is expected; an :class:`InputReaderError`
        (also an ``io.ReaderError``) when a reader refused the input.
    """
    steps = set(steps)
    problems = check_config(config, source=source)
    warnings: list[str] = []
    store = Path(store)
    if store.exists() and not store.is_dir():
        problems.append(f"[output] store = {str(store)!r} is a file; expected a .zarr "
                        "directory (or a path to create)")
    problems += _compute_problems(config, steps)
    unreadable = False
    if not any("[input] path" in p for p in problems):
        inp = _describe_input(config, store)
        problems += inp.problems + inp.extra
        unreadable = inp.unreadable
        if not inp.problems:
            _check_input(config, inp, steps, problems, warnings)
            _check_references(config, inp, steps, problems)
    if problems:
        raise (InputReaderError if unreadable else ConfigError)(problems)
    return warnings


# --------------------------------------------------------------------------- #
# the input the run will read
# --------------------------------------------------------------------------- #
def _describe_input(cfg: Config, store: Path) -> _Input:
    from .. import io

    groups = io.list_groups(store) if (store / "zarr.json").is_file() else {}
    try:  # coordinates only: the counts were checked when acquire wrote them
        if "raw" in groups and io.is_complete(store, "raw"):
            inp = _from_dataset(io.read_group(store, "raw"), f"{store} (group raw)",
                                xanes="raw_xanes" in groups)
            inp.ds = None
            return inp
        if "od" in groups and io.is_complete(store, "od"):  # prepared elsewhere
            od = io.read_group(store, "od")
            return _Input(f"{store} (group od)", energies=od["energy"].values,
                          angles=od["angle"].values, n_cols=od.sizes["x"], tomogram=False,
                          phase=od.attrs.get("signal") == "phase")
    except (ValueError, KeyError, OSError):
        pass  # a damaged group: the run verifies and rebuilds it from the input
    where = f"[input] path = {cfg.input.path!r}"
    try:
        src = parse_source(cfg.input.path)
    except ValueError as exc:
        return _Input(where, problems=[str(exc)])
    if src.simulated:
        inp = _simulated(src, cfg, where)
        used = {"energies_ev": cfg.input.energies_ev, "pixel_size_nm": cfg.input.pixel_size_nm,
                "crop": cfg.input.crop, "binning": cfg.input.binning != 1}
        inp.extra += [f"[input] {key} = {getattr(cfg.input, key)!r}"
                      + (": crop/binning apply to measured files only" if key in ("crop", "binning")
                         else " applies to measured files only")
                      + f"; the input is the simulator ({cfg.input.path}); remove it"
                      for key, value in used.items() if value]
        inp.xanes = inp.xanes or bool(cfg.input.xanes)
        return inp
    if src.kind == "store":
        return _Input(where, problems=[f"{where} is a sample store: run the pipeline with it as "
                                       "[output] store instead"])
    return _from_files(src, cfg, where)


def _simulated(src, cfg: Config, where: str) -> _Input:
    from ..simulate import holotomo_shape, preset_names, sample_shape
    from ..spectra import EDGES  # the simulator's below/above energies (sample())

    if src.target not in preset_names():
        return _Input(where, problems=[f"{where}: unknown simulator preset {src.target!r}; "
                                       f"expected one of {list(preset_names())}"])
    if src.kind == "simulate-holo":
        _, n_a, _, nx = holotomo_shape(src.target)
        energy = cfg.phase.energy_ev or 17000.0  # holotomo_sample's default
        return _Input(where, energies=np.array([energy]), n_cols=nx, phase=True,
                      angles=np.linspace(0.0, 180.0, n_a))
    (_, n_a, _, nx), _ = sample_shape(src.target)
    energies = np.sort([EDGES[e][k] for e in ("O", "Mn", "Co", "Ni") for k in ("below", "above")])
    return _Input(where, energies=energies, n_cols=nx, xanes=True,
                  angles=np.linspace(-65.0, 65.0, n_a))  # sample(): -65..+65 deg


def _from_files(src, cfg: Config, where: str) -> _Input:
    """The measured input as acquire will read it (crop, binning, energies_ev)."""
    from .steps.acquire import read_input, read_input_xanes

    if src.kind == "file" and not Path(src.target).exists():
        return _Input(where, problems=[f"{where}: no such file or directory; expected a beamline "
                                       "file (or a list/glob of them), a .zarr store, or "
                                       "simulate:<preset>"])
    try:
        ds, files = read_input(cfg)  # lazy above the readers' size limit
    except (ValueError, KeyError, OSError) as exc:  # ReaderError names file and field
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        return _Input(where, problems=[f"{where}: cannot read the input: {message}"],
                      unreadable=isinstance(exc, ReaderError))
    inp = _from_dataset(ds, files[0] if len(files) == 1 else f"{where} ({len(files)} files)",
                        xanes=bool(cfg.input.xanes))
    if cfg.input.xanes:
        try:
            read_input_xanes(cfg, lazy=True)
        except (ValueError, KeyError, OSError) as exc:
            inp.extra.append(f"[input] xanes = {cfg.input.xanes!r}: cannot read the XANES scan: "
                             f"{exc}")
    return inp


def _from_dataset(ds, where: str, *, xanes: bool = False) -> _Input:
    return _Input(where, energies=np.atleast_1d(ds["energy"].values).astype(float),
                  angles=ds["angle"].values.astype(float), n_cols=ds.sizes["x"],
                  phase="distance" in ds["projections"].dims, ds=ds, xanes=xanes)


# --------------------------------------------------------------------------- #
# checks
# --------------------------------------------------------------------------- #
def _compute_problems(cfg: Config, steps: set) -> list[str]:
    from .._backend import cupy_available

    problems = []
    modules = {"slurm": ("dask_jobqueue", "cluster"), "cuda": ("dask_cuda", "cuda-cluster"),
               "local": ("distributed", "cluster")}
    if cfg.compute.cluster in modules:
        module, extra = modules[cfg.compute.cluster]
        if importlib.util.find_spec(module) is None:
            problems.append(f"[compute] cluster = {cfg.compute.cluster!r} needs the {module} "
                            f"package: pip install 'spectrotomo[{extra}]'")
    if cfg.compute.device == "gpu" and "reconstruct" in steps and not cupy_available():
        problems.append("[compute] device = \"gpu\" but cupy finds no usable CUDA device in "
                        "this process; install spectrotomo[gpu] or use device = \"auto\"")
    return problems


def _check_input(cfg: Config, inp: _Input, steps: set, problems: list, warnings: list) -> None:
    where = inp.where
    center = cfg.preprocess.center  # a wrong type is already a config problem
    if isinstance(center, (int, float)) and not isinstance(center, bool) and inp.n_cols:
        c = float(center)
        if not -0.5 <= c <= inp.n_cols - 0.5:
            problems.append(f"[preprocess] center = {c:g} is outside the detector of {where}; "
                            f"expected \"auto\" or a column index within [-0.5, "
                            f"{inp.n_cols - 0.5:g}] ({inp.n_cols} columns)")
    _check_algorithm(cfg, inp, warnings)
    if inp.tomogram and steps & set(_TOMO_STEPS):
        _check_angles(inp, problems, warnings)
    _check_energies(cfg, inp, steps, problems)
    if (inp.ds is not None and inp.tomogram and not inp.phase and cfg.phase.method == "none"
            and "preprocess" in steps and "flats" not in inp.ds):
        from ..io import require_flats

        try:  # preprocess normalises raw counts by the flats: name where they were expected
            require_flats(inp.ds)
        except ReaderError as exc:
            problems.append(str(exc))
    if inp.ds is not None:
        check_counts(inp, problems, warnings)


def _check_algorithm(cfg: Config, inp: _Input, warnings: list) -> None:
    """Keys the algorithm the run will use ignores (``auto`` resolved on the angles)."""
    from .steps.reconstruct import resolve_algorithm

    rec = cfg.reconstruct
    algorithm = resolve_algorithm(rec.algorithm, inp.angles)
    named = f"algorithm = {rec.algorithm!r}" + (f" (here {algorithm!r})"
                                                  if algorithm != rec.algorithm else "")
    if rec.iterations is not None and algorithm == "fbp":
        warnings.append(f"[reconstruct] iterations = {rec.iterations} is ignored: {named} is "
                        "not iterative (joint, sirt, cgls and tv use it)")
    if rec.max_seconds is not None and algorithm not in _CAPPED:
        warnings.append(f"[reconstruct] max_seconds = {rec.max_seconds:g} is ignored: {named}; "
                        f"it caps {', '.join(_CAPPED[:-1])} and {_CAPPED[-1]} solves")


def _check_angles(inp: _Input, problems: list, warnings: list) -> None:
    a = np.asarray(inp.angles, float)
    span = float(np.ptp(a)) if a.size else 0.0
    if a.size < MIN_ANGLES or span < MIN_RANGE_DEG:
        problems.append(f"{inp.where}: angles: {a.size} angles over {span:g} deg; a tomogram "
                        f"needs at least {MIN_ANGLES} angles spanning at least "
                        f"{MIN_RANGE_DEG:g} deg")
    elif span > MAX_SPAN_DEG:
        warnings.append(f"{inp.where}: angles span {span:.6g} deg ({span / 360:.3g} turns): "
                        "if this is not a multi-turn scan, the file's angles may be degrees "
                        "labelled radians (read 57.3x too large); check their units attribute")


def _check_energies(cfg: Config, inp: _Input, steps: set, problems: list) -> None:
    from .._physics import EDGE_WINDOWS_EV
    from ..spectra import edge_pairs

    e = np.asarray(inp.energies, float)
    lo, hi = ENERGY_RANGE_EV
    bad = e[~((e >= lo) & (e <= hi))]
    if bad.size:
        hint = (" (these look like keV: give eV, e.g. energy_units = \"keV\" in the sidecar)"
                if np.all((bad >= 0.1) & (bad <= 100)) else "")
        problems.append(f"{inp.where}: energies {short_values(bad)} eV are outside the soft/hard "
                        f"X-ray range {lo:g}-{hi:g} eV{hint}")
        return
    if inp.phase or cfg.phase.method != "none" or not steps & set(_EDGE_STEPS):
        return
    known = [el for el in cfg.spectra.elements if el in EDGE_WINDOWS_EV]  # others: config
    pairs = edge_pairs(e, known)
    missing = [el for el in known if el not in pairs]
    if "O" not in known and "O" not in edge_pairs(e, ["O"]):
        missing = ["O", *missing]  # quantify needs the O K edge for TM/O
    if missing:
        from .._physics import pair_window

        windows = ", ".join(f"{el} {pair_window(el)[0]:g}-{pair_window(el)[1]:g} eV"
                            for el in missing)
        problems.append(f"[spectra] elements = {cfg.spectra.elements!r}: the energies of "
                        f"{inp.where} ({short_values(e)} eV) do not cover the edge of {missing}; "
                        f"expected two energies around each edge ({windows}), or remove "
                        "the element")


def _check_references(cfg: Config, inp: _Input, steps: set, problems: list) -> None:
    """References that cannot define a valence are refused before anything runs."""
    if "valence" not in steps or not inp.xanes:
        return
    from .steps.valence import config_references

    spec = cfg.spectra.references
    try:
        refs = config_references(spec)
    except (ValueError, OSError, KeyError) as exc:
        problems.append(f"[spectra] references = {spec!r}: {exc}")
        return
    elements = refs["state_element"].values
    valences = refs["state_valence"].values
    for el in dict.fromkeys(elements):
        states = [str(s) for s, e in zip(refs["state"].values, elements) if e == el]
        if len(set(valences[elements == el])) < 2:
            problems.append(f"[spectra] references = {spec!r}: {el} has {len(states)} state(s) "
                            f"{states} of one valence; a valence map needs at least two "
                            f"reference states of {el} with different valences")
