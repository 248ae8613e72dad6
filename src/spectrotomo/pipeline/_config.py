"""Run configuration: a TOML file (or YAML, safe loading only) -> validated dataclasses.

The CLI turns config sections into explicit arguments of stage functions; no
global state. Unknown keys and wrong types are rejected with the file, the
key and the expected value.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["Config", "ConfigError", "check_config", "config_from_dict", "load_config",
           "write_template", "TEMPLATE"]


class ConfigError(ValueError):
    """A configuration file, value or the input it names is invalid.

    ``problems`` lists every problem found (each names the key or file field,
    the value and what is expected); the message lists them all, so one run
    shows every mistake at once. ``check_config(cfg, source="")`` messages start
    at the key (``[section] key``), a file's with the file.
    """

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems:\n" + "\n".join(
                f"  - {p}" for p in self.problems)
        super().__init__(message)


@dataclass
class InputConfig:
    #: one file, a list of files and/or glob patterns (one tilt series per energy),
    #: a sample store, or "simulate:PRESET" / "simulate-holo:PRESET"
    path: str | list[str] = "simulate:small"
    seed: int = 0
    energies_ev: list[float] = field(default_factory=list)
    pixel_size_nm: float | None = None
    pixel_size_metadata: bool = False
    #: "same": every file has the same angles; "common": keep the angles all files have
    angles: str = "same"
    #: 2-D XANES energy scan(s): a file, a list of files or a glob ("" = none)
    xanes: str | list[str] = ""
    #: {rows = [start, stop], columns = [start, stop]} detector pixels, stop exclusive
    crop: dict = field(default_factory=dict)
    #: 1, 2 or 4: average binning x binning detector pixels (after the crop)
    binning: int = 1


@dataclass
class OutputConfig:
    store: str = "sample.zarr"
    overwrite: bool = False
    figures: bool = True
    ome_zarr: bool = False
    ome_zarr_version: str = "0.5"


@dataclass
class PreprocessConfig:
    flat_mode: str = "median"
    rings: str = "blind"
    center: float | str = "auto"
    align: bool = True
    align_iterations: int = 4
    register_energies: bool = True
    magnification: str = "auto"


@dataclass
class PhaseConfig:
    method: str = "none"
    delta_beta: float = 100.0
    energy_ev: float | None = None
    distances_m: list[float] = field(default_factory=list)
    pixel_size_m: float | None = None


@dataclass
class ReconstructConfig:
    algorithm: str = "auto"
    iterations: int | None = None
    max_seconds: float | None = None
    filter: str = "ram-lak"
    nonneg: bool = True
    chunk_rows: int = 16
    xanes_components: int = 6


@dataclass
class SpectraConfig:
    elements: list[str] = field(default_factory=lambda: ["O", "Mn", "Co", "Ni"])
    references: str = "builtin"
    nonneg: bool = True
    sum_to_one: bool = False
    energy_offset: float | str = "fit"
    formula: str | None = None


@dataclass
class SegmentationConfig:
    target_tm_o: float | None = None
    tolerance: float = 0.05
    smoothing_nm: float = 30.0
    surface_layer_nm: float = 40.0
    layer_pooling: float = 0.6
    n_shells: int = 5
    #: block edge (voxels) of the block-wise segment and profile steps
    chunk: int = 128
    depth_bins_nm: list[float] = field(
        default_factory=lambda: [0.0, 30.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 2500.0])


@dataclass
class ComputeConfig:
    scheduler: str = "threads"
    cluster: str = "none"
    n_workers: int = 1
    threads_per_worker: int = 1
    memory_limit_gb: float = 8.0
    device: str = "auto"


@dataclass
class Config:
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    phase: PhaseConfig = field(default_factory=PhaseConfig)
    reconstruct: ReconstructConfig = field(default_factory=ReconstructConfig)
    spectra: SpectraConfig = field(default_factory=SpectraConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_CHOICES = {
    ("input", "angles"): ("same", "common"),
    ("preprocess", "flat_mode"): ("mean", "median"),
    ("preprocess", "rings"): ("none", "blind", "offset", "sorting", "fourier-wavelet"),
    ("preprocess", "magnification"): ("auto", "metadata", "estimate", "linear", "none"),
    ("phase", "method"): ("none", "paganin", "ctf"),
    ("reconstruct", "algorithm"): ("auto", "fbp", "joint", "sirt", "cgls", "tv"),
    ("reconstruct", "filter"): ("ram-lak", "shepp-logan", "cosine", "hamming", "hann", "parzen"),
    ("compute", "cluster"): ("none", "local", "slurm", "cuda"),
    ("compute", "device"): ("auto", "cpu", "gpu"),
    ("output", "ome_zarr_version"): ("0.5", "0.4"),
}


#: (section, key) of a "word or number" option -> (the word, what the number is).
_WORD_OR_NUMBER = {
    ("preprocess", "center"): ("auto", "a column position (number)"),
    ("spectra", "energy_offset"): ("fit", "an offset in eV (number)"),
}


def _coerce(source: str, section: str, key: str, value: Any, annotation: str) -> Any:
    where = f"{source}: [{section}] {key}" if source else f"[{section}] {key}"
    ann = annotation.replace(" ", "")
    if ann == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false; got {value!r}")
        return value
    if ann in ("int", "int|None"):
        if value is None and "None" in ann:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{where} must be an integer; got {value!r}")
        return value
    if ann in ("float", "float|None"):
        if value is None and "None" in ann:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number; got {value!r}")
        return float(value)
    if ann == "float|str":
        word, number = _WORD_OR_NUMBER[(section, key)]
        if isinstance(value, str) and value == word:
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            return float(value)
        raise ConfigError(f"{where} must be \"{word}\" or {number}, finite; got {value!r}")
    if ann in ("str", "str|None"):
        if value is None and "None" in ann:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string; got {value!r}")
        choices = _CHOICES.get((section, key))
        if choices and value not in choices:
            raise ConfigError(f"{where} must be one of {', '.join(choices)}; got {value!r}")
        return value
    if ann == "str|list[str]":
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return list(value)
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a path string or a non-empty list of paths; "
                          f"got {value!r}")
    if ann == "dict":
        return _coerce_crop(where, value)
    if ann.startswith("list["):
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list; got {value!r}")
        if "float" in ann:
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       and math.isfinite(v) for v in value):
                raise ConfigError(f"{where} must be a list of finite numbers; got {value!r}")
            return [float(v) for v in value]
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings; got {value!r}")
        return list(value)
    raise ConfigError(f"{where}: unsupported type {annotation}")  # pragma: no cover


def _coerce_crop(where: str, value: Any) -> dict[str, list[int]]:
    """``[input] crop``: {rows = [start, stop], columns = [start, stop]} (pixels, stop
    exclusive, either key optional)."""
    if not isinstance(value, dict) or set(value) - {"rows", "columns"}:
        raise ConfigError(f"{where} must be a table with rows and/or columns, e.g. "
                          f"{{rows = [100, 900], columns = [50, 950]}}; got {value!r}")
    out = {}
    for key, pair in value.items():
        ok = (isinstance(pair, list) and len(pair) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
              and 0 <= pair[0] < pair[1])
        if not ok:
            raise ConfigError(f"{where}.{key} must be [start, stop] detector pixels with "
                              f"0 <= start < stop (stop exclusive); got {pair!r}")
        out[key] = list(pair)
    return out


def config_from_dict(data: dict[str, Any], *, source: str = "<config>") -> Config:
    """Validate a nested mapping (as parsed from TOML/YAML) into a :class:`Config`.

    Raises
    ------
    ConfigError
        Listing every unknown section or key, wrong type and out-of-range value
        at once (``problems``), each naming the key, the value and what is expected.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a table of sections")
    cfg = Config()
    sections = {f.name: f for f in dataclasses.fields(Config)}
    problems: list[str] = []
    bad: set[tuple[str, str]] = set()
    for section, values in data.items():
        if section not in sections:
            problems.append(f"{source}: unknown section [{section}]; expected one of "
                            f"{', '.join(sections)}")
            continue
        if not isinstance(values, dict):
            problems.append(f"{source}: [{section}] must be a table; got {values!r}")
            continue
        target = getattr(cfg, section)
        fields = {f.name: f for f in dataclasses.fields(target)}
        for key, value in values.items():
            if key not in fields:
                problems.append(f"{source}: unknown key [{section}] {key}; expected one of "
                                f"{', '.join(fields)}")
                continue
            try:
                setattr(target, key, _coerce(source, section, key, value, str(fields[key].type)))
            except ConfigError as exc:
                problems.extend(exc.problems)
                bad.add((section, key))
    problems += _range_problems(cfg, source, skip=bad)
    if problems:
        raise ConfigError(problems)
    return cfg


def check_config(cfg: Config, *, source: str = "") -> list[str]:
    """Every problem of a :class:`Config` as it is now (also one built or edited in
    Python, which :func:`config_from_dict` never saw): types, choices and ranges.

    Returns
    -------
    list of str
        One message per problem (empty when the config is valid).
    """
    problems: list[str] = []
    bad: set[tuple[str, str]] = set()
    for section in dataclasses.fields(Config):
        target = getattr(cfg, section.name)
        for fld in dataclasses.fields(target):
            try:
                _coerce(source, section.name, fld.name, getattr(target, fld.name), str(fld.type))
            except ConfigError as exc:
                problems.extend(exc.problems)
                bad.add((section.name, fld.name))
    return problems + _range_problems(cfg, source, skip=bad)


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


def _rules(cfg: Config) -> list[tuple[str, str, Callable[[Any], bool], str]]:
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


def _range_problems(cfg: Config, source: str, *, skip: set) -> list[str]:
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


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``, safe loader) config.

    ``overrides`` maps ``"section.key"`` to a value (CLI options win).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from exc
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:  # pragma: no cover - pyyaml ships with dask
            raise ConfigError(f"{path}: YAML configs need PyYAML") from exc
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        data.setdefault(section, {})[key] = value
    return config_from_dict(data, source=str(path))


TEMPLATE = '''\
# spectrotomo run configuration (TOML). Units: angles deg, energies eV, lengths nm
# unless a key name says otherwise (_m: metres, _gb: GiB).

[input]
path = "simulate:small"      # a beamline file (Data Exchange, NXtomo, txrm/xrm, TIFF sidecar,
                             # FXI HDF5), a list of files or a glob, one tilt series per
                             # energy (["tomo_525eV.txrm", ...] or "scan/tomo_*eV.h5"; formats
                             # may be mixed), or "simulate:<preset>" (tiny | small | demo), or
                             # "simulate-holo:<preset>" (hard X-ray holotomography, 17 keV)
angles = "same"              # same: every file has the same angles | common: keep the
                             # angles all files share (a file that lost a few projections)
xanes = ""                   # 2-D XANES energy scan(s) for the valence step: a file (Xradia
                             # energy scan, TIFF + sidecar, NXtomo, HDF5), a list or a glob
seed = 0                     # simulator seed (simulate: inputs only)
energies_ev = []             # override the files' energies (eV), one per file
# pixel_size_nm = 10.0       # override the file's pixel size (nm)
pixel_size_metadata = false  # simulate: inputs record the true pixel size per energy
# crop = {rows = [100, 900], columns = [50, 950]}  # detector pixels kept, stop exclusive
binning = 1                  # 1 | 2 | 4: average binning^2 pixels after the crop (projections,
                             # flats, darks; the pixel size grows by the factor)

[output]
store = "sample.zarr"        # one zarr v3 store per sample
overwrite = false            # replace finished results instead of refusing
figures = true               # report PNG figures (tables and summary are always written)
ome_zarr = false             # after the report, export maps and labels as OME-Zarr to
                             # <store>-ome/ (as `spectrotomo export STORE OUT` does)
ome_zarr_version = "0.5"     # 0.5 (zarr v3) | 0.4 (zarr v2, older viewers)

[preprocess]
flat_mode = "median"         # mean | median of several flats
rings = "blind"              # blind | offset | sorting | fourier-wavelet | none (before
                             # energy registration; the others reshape the particle's edges
                             # more, differently at each energy's sub-pixel position)
center = "auto"              # rotation-axis column (column i's centre at i), or "auto"
align = true                 # jitter correction by re-projection alignment
align_iterations = 4
register_energies = true     # translation + magnification across energies
magnification = "auto"       # auto: the per-energy pixel sizes the files recorded when present
                             # (exact), else estimated from the images (biased 0.1-0.3 % across
                             # the O/Mn edges by surface chemistry; on a XANES tomography under
                             # the linear law below) | metadata (required) |
                             # estimate | linear (estimated, constrained to a magnification
                             # linear in energy, as zone-plate optics give) | none (scale 1)

[phase]
method = "none"              # none | paganin | ctf (holotomography; a raw series with a
                             # distance dim retrieves phase even with "none": ctf if >1)
delta_beta = 100.0           # delta/beta ratio (Paganin, CTF low-frequency prior)
# energy_ev = 17000.0        # photon energy (eV) if the file lacks it
distances_m = []             # effective propagation distances (m); default: the file's
# pixel_size_m = 2.0e-8      # effective (sample-plane) pixel size (m); default: the file's
# Phase runs: the Paganin/CTF background varies per angle and biases the coarse jitter
# stage; set [preprocess] align = false unless the scan has jitter.

[reconstruct]
algorithm = "auto"           # auto | fbp | joint | sirt | cgls | tv. auto: FBP for scans of
                             # >= 170 deg, else joint (regularised, all energies at once:
                             # at -65..+65 deg amounts within 3 % instead of 25-30 % low
                             # with FBP, at ~6-12x FBP's CPU time)
# iterations = 100          # joint/sirt/cgls/tv: an integer >= 1 (default 5/100/20/100);
                             # above 10000 only sirt/cgls/tv with max_seconds
# max_seconds = 600.0        # joint/sirt/cgls/tv: wall-clock cap of each chunk's solve (s); an early
                             # stop is logged and kept in the recon group
filter = "ram-lak"           # ram-lak | shepp-logan | cosine | hamming | hann | parzen
nonneg = true
chunk_rows = 16              # detector rows per chunk (memory per worker scales with it)
xanes_components = 6         # joint solver, XANES tomography: spectral components kept per edge
                             # window (fit-then-reconstruct; >= the window's energies: all)

[spectra]
elements = ["O", "Mn", "Co", "Ni"]
references = "builtin"       # builtin (synthetic model spectra), or a CSV/text file: energy (eV)
                             # then one column per state named like Mn2+, Mn3+, O2- (element,
                             # valence); relative paths from the working directory
nonneg = true                # state weights >= 0
sum_to_one = false           # false: absolute fit (references = cross sections per atom, nm^2,
                             # plus a smooth background); true: edge-step normalize each element's
                             # window (spectra and references) and fit fractions summing to 1
energy_offset = "fit"        # eV by which the references are moved up to match the scan's energy
                             # scale, or "fit": per element window, the offset (+-1.5 eV) whose
                             # LCF fits best (a calibration difference of 0.3 eV moves the Mn
                             # valence by ~0.1); 0 uses the references as they are
# formula = "Li1.2Mn0.56Ni0.16Co0.08O2"  # sample formula; default from the input's metadata.
                             # Elements without an edge pair (Li) are counted at their ratio to O
                             # in the amounts (their cross section falls across every pair:
                             # neglected, Co reads 1.6 % low, Ni 0.8 %)

[segmentation]
# target_tm_o = 0.4          # target TM/O atomic ratio; default from the input's metadata
tolerance = 0.05             # relative band around the target (5 %)
smoothing_nm = 30.0          # Gaussian sigma (nm) averaging the TM and O amounts over the
                             # particle's solid before the class ratio (0: per voxel, noisy)
surface_layer_nm = 40.0      # within this depth (nm) average only along the surface, inside
                             # one-voxel depth layers, so thin surface layers stay resolved
layer_pooling = 0.6          # within surface_layer_nm, pull each voxel's TM/O this far towards
                             # its iso-depth layer's mean (whole particle): a skin thinner than
                             # the resolution stays classified where the missing wedge blurs it
                             # (0: off; measured: class agreement +0.01-0.03, gpu_bench/RESULTS.recon.md);
                             # grains reaching the surface keep 1 - pooling of their contrast
n_shells = 5                 # equal-volume shells from surface to centre
chunk = 128                  # segment/profile run block by block (voxels per edge; memory
                             # per worker ~ 100 bytes x (2 chunk)^3, whatever the volume)
depth_bins_nm = [0.0, 30.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 2500.0]

[compute]
scheduler = "threads"        # threads (this process), or a dask.distributed scheduler
                             # address ("tcp://host:8786"; workers must see the store path)
cluster = "none"             # none | local (LocalCluster) | slurm (dask-jobqueue) |
                             # cuda (dask-cuda, one worker per GPU); reconstruct and
                             # quantify then run one task per chunk on the workers
n_workers = 1                # workers of a local/slurm cluster
threads_per_worker = 1       # threads per worker (also each task's FFT threads)
memory_limit_gb = 8.0        # per worker (GiB); a run whose plan exceeds it refuses to
                             # start, and a local/slurm/cuda cluster's workers get it
device = "auto"              # reconstruction tasks on: auto (the GPU when cupy can use
                             # one, else CPU) | cpu | gpu (refused without a usable GPU)
'''


def write_template(path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the commented config template to ``path`` (refuses to overwrite)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists; pass overwrite=True to replace it")
    path.write_text(TEMPLATE)
    return path
