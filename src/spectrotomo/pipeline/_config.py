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
from typing import Any

from ._config_rules import range_problems
from ._config_template import TEMPLATE, write_template

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
    problems += range_problems(cfg, source, skip=bad)
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
    return problems + range_problems(cfg, source, skip=bad)


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
