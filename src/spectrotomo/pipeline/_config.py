"""Run configuration: a TOML file (or YAML, safe loading only) -> validated dataclasses.

The CLI turns config sections into explicit arguments of stage functions; no
global state. Unknown keys and wrong types are rejected with the file, the
key and the expected value.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Config", "ConfigError", "load_config", "write_template", "TEMPLATE"]


class ConfigError(ValueError):
    """A configuration file or value is invalid."""


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
    filter: str = "ram-lak"
    nonneg: bool = True
    chunk_rows: int = 16


@dataclass
class SpectraConfig:
    elements: list[str] = field(default_factory=lambda: ["O", "Mn", "Co", "Ni"])
    references: str = "builtin"
    nonneg: bool = True
    sum_to_one: bool = False
    energy_offset: float | str = "fit"


@dataclass
class SegmentationConfig:
    target_tm_o: float | None = None
    tolerance: float = 0.05
    smoothing_nm: float = 30.0
    surface_layer_nm: float = 40.0
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
    where = f"{source}: [{section}] {key}"
    ann = annotation.replace(" ", "")
    if ann == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false; got {value!r}")
        return value
    if ann in ("int", "int|None"):
        if value is None and "None" in ann:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer; got {value!r}")
        return value
    if ann in ("float", "float|None"):
        if value is None and "None" in ann:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number; got {value!r}")
        return float(value)
    if ann == "float|str":
        word, number = _WORD_OR_NUMBER[(section, key)]
        if isinstance(value, str) and value == word:
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be \"{word}\" or {number}; got {value!r}")
    if ann == "str":
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
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise ConfigError(f"{where} must be a list of numbers; got {value!r}")
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
    """Validate a nested mapping (as parsed from TOML/YAML) into a :class:`Config`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a table of sections")
    cfg = Config()
    sections = {f.name: f for f in dataclasses.fields(Config)}
    for section, values in data.items():
        if section not in sections:
            raise ConfigError(f"{source}: unknown section [{section}]; expected one of "
                              f"{', '.join(sections)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        target = getattr(cfg, section)
        fields = {f.name: f for f in dataclasses.fields(target)}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(f"{source}: unknown key [{section}] {key}; expected one of "
                                  f"{', '.join(fields)}")
            setattr(target, key, _coerce(source, section, key, value, str(fields[key].type)))
    _check_ranges(cfg, source)
    return cfg


def _check_ranges(cfg: Config, source: str) -> None:
    checks = [
        (cfg.segmentation.tolerance > 0, "[segmentation] tolerance", "> 0"),
        (cfg.segmentation.smoothing_nm >= 0, "[segmentation] smoothing_nm", ">= 0 (nm)"),
        (cfg.segmentation.surface_layer_nm >= 0, "[segmentation] surface_layer_nm", ">= 0 (nm)"),
        (cfg.segmentation.chunk >= 8, "[segmentation] chunk", ">= 8 (voxels per block edge)"),
        (cfg.segmentation.n_shells >= 1, "[segmentation] n_shells", ">= 1"),
        (cfg.compute.n_workers >= 1, "[compute] n_workers", ">= 1"),
        (cfg.compute.threads_per_worker >= 1, "[compute] threads_per_worker", ">= 1"),
        (cfg.compute.scheduler == "threads" or ":" in cfg.compute.scheduler,
         "[compute] scheduler", '"threads" or a scheduler address such as "tcp://host:8786"'),
        (cfg.compute.scheduler == "threads" or cfg.compute.cluster == "none",
         "[compute] scheduler/cluster", "either scheduler (an address) or cluster, not both"),
        (cfg.compute.memory_limit_gb > 0, "[compute] memory_limit_gb", "> 0 (GiB)"),
        (cfg.reconstruct.chunk_rows >= 1, "[reconstruct] chunk_rows", ">= 1 (detector rows)"),
        (cfg.phase.delta_beta > 0, "[phase] delta_beta", "> 0"),
        (all(d > 0 for d in cfg.phase.distances_m), "[phase] distances_m", "> 0 (metres)"),
        (cfg.phase.method == "none" or cfg.phase.pixel_size_m is None
         or cfg.phase.pixel_size_m < 1e-3, "[phase] pixel_size_m", "in metres (< 1e-3)"),
        (cfg.input.pixel_size_nm is None or cfg.input.pixel_size_nm > 0,
         "[input] pixel_size_nm", "> 0 (nm)"),
        (cfg.input.binning in (1, 2, 4), "[input] binning", "1, 2 or 4"),
    ]
    for ok, key, expected in checks:
        if not ok:
            raise ConfigError(f"{source}: {key} must be {expected}")


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
                             # the O/Mn edges by surface chemistry) | metadata (required) |
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
                             # with FBP, at ~12-16x FBP's time)
# iterations = 100
filter = "ram-lak"           # ram-lak | shepp-logan | cosine | hamming | hann | parzen
nonneg = true
chunk_rows = 16              # detector rows per chunk (memory per worker scales with it)

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

[segmentation]
# target_tm_o = 0.4          # target TM/O atomic ratio; default from the input's metadata
tolerance = 0.05             # relative band around the target (5 %)
smoothing_nm = 30.0          # Gaussian sigma (nm) averaging the TM and O amounts over the
                             # particle's solid before the class ratio (0: per voxel, noisy)
surface_layer_nm = 40.0      # within this depth (nm) average only along the surface, inside
                             # one-voxel depth layers, so thin surface layers stay resolved
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
