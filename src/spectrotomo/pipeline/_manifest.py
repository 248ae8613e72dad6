"""Batch manifest: a TOML, YAML (safe loader) or CSV list of scans -> validated specs.

TOML/YAML layout (YAML: the same keys)::

    config = "run.toml"          # optional shared pipeline config (relative to the manifest)
    out_dir = "results"          # optional; default <manifest stem>_batch beside it

    [[scan]]
    label = "p1_4.4V"            # unique, letters/digits/._- (names the store <label>.zarr)
    input = "p1_44.h5"           # beamline file, sample store (.zarr), "simulate:PRESET"
                                 # or "simulate-holo:PRESET"; or a list of files / a glob,
                                 # one tilt series per energy: ["p1/tomo_*eV.txrm"]
    xanes = "p1/xanes.xrm"       # optional 2-D XANES scan(s) (file, list or glob) -> valence
    sample = "P1"                # free labels: any scalar (voltage_v, state_of_charge, c_rate...)
    voltage_v = 4.4
    [scan.config.preprocess]     # per-scan overrides of the shared config, by section
    center = 31.5
    [scan.simulate]              # simulator overrides (simulate: inputs), e.g. composition
    reduction_depth_nm = 60.0

CSV: one row per scan with columns ``input``, ``label``, ``xanes`` and free
labels (several files in one ``input``/``xanes`` cell separated by ``;``);
a column ``section.key`` (e.g. ``preprocess.center``) is a config override and
``simulate.key`` a simulator override; empty cells are absent.
"""

from __future__ import annotations

import csv
import copy
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._config import Config, ConfigError, config_from_dict
from ._source import parse_source

__all__ = ["ManifestError", "Manifest", "ScanSpec", "load_manifest", "scan_config"]

_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_RESERVED = ("input", "label", "config", "simulate", "xanes")
#: Fields that name files: relative paths are taken from the manifest's folder.
_PATH_FIELDS = ("input", "xanes")
_SCALARS = (str, int, float, bool)


class ManifestError(ConfigError):
    """A batch manifest is invalid (the message names the file, the scan and the field)."""


@dataclass
class ScanSpec:
    """One scan of a batch.

    ``labels`` are the free manifest labels (``sample``, ``voltage_v``...);
    ``config`` nested per-section overrides; ``simulate`` simulator overrides.
    """

    label: str
    #: a file, store, preset or glob, or a list of files/globs (one per energy)
    input: str | list[str]
    labels: dict[str, Any] = field(default_factory=dict)
    config: dict[str, dict[str, Any]] = field(default_factory=dict)
    simulate: dict[str, Any] = field(default_factory=dict)
    where: str = ""
    #: 2-D XANES scan(s) for the valence step ("" = none)
    xanes: str | list[str] = ""

    @property
    def input_text(self) -> str:
        """``input`` as one string (list entries joined by ``;``), for tables and logs."""
        return self.input if isinstance(self.input, str) else ";".join(self.input)

    @property
    def is_simulated(self) -> bool:
        """A ``simulate:PRESET`` input (prepared with its simulator overrides)."""
        return parse_source(self.input).kind == "simulate"


@dataclass
class Manifest:
    source: Path
    scans: list[ScanSpec]
    config_path: Path | None = None
    out_dir: Path | None = None


def _parse_cell(text: str) -> Any:
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _path_cell(cell: str) -> str | list[str]:
    """A CSV ``input``/``xanes`` cell: one path, or several separated by ``;``."""
    parts = [p.strip() for p in cell.split(";") if p.strip()]
    return parts[0] if len(parts) == 1 else parts


def _paths_field(where: str, key: str, value: Any, *, required: bool) -> str | list[str]:
    """A manifest ``input``/``xanes`` value: a non-empty string or list of strings."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return [v.strip() for v in value]
    if not required and value in (None, ""):
        return ""
    expected = ("a file, a list of files or a glob (one tilt series per energy), a .zarr "
                "store or 'simulate:PRESET'" if key == "input"
                else "a 2-D XANES file, a list of files or a glob")
    if value is None:
        raise ManifestError(f"{where}: field {key!r} is required: {expected}")
    raise ManifestError(f"{where}: field {key!r} must be {expected}; got {value!r}")


def _resolve(base: Path, value: str | list[str]) -> str | list[str]:
    """Relative file paths (or patterns) from the manifest's folder."""
    def one(p: str) -> str:
        return p if Path(p).is_absolute() else str(base / p)
    return one(value) if isinstance(value, str) else [one(p) for p in value]


def _read_csv(path: Path) -> dict:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "input" not in reader.fieldnames:
            raise ManifestError(f"{path}: CSV manifest needs a header row with an 'input' column; "
                                f"got {reader.fieldnames}")
        scans = []
        for row in reader:
            scan: dict[str, Any] = {}
            for key, cell in row.items():
                if key is None:
                    raise ManifestError(f"{path}: row {reader.line_num}: more cells than header "
                                        "columns")
                if cell is None or not cell.strip():
                    continue
                value = _parse_cell(cell) if key not in ("input", "label", "xanes") else \
                    _path_cell(cell)
                if "." in key:
                    head, tail = key.split(".", 1)
                    if head == "simulate":
                        scan.setdefault("simulate", {})[tail] = value
                    else:
                        head, tail = (tail.split(".", 1) if head == "config" and "." in tail
                                      else (head, tail))
                        scan.setdefault("config", {}).setdefault(head, {})[tail] = value
                else:
                    scan[key.strip()] = value
            scans.append(scan)
    return {"scan": scans}


def _read_mapping(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest ({exc.strerror})") from exc
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ManifestError(f"{path}: invalid YAML: {exc}") from exc
    elif path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ManifestError(f"{path}: invalid TOML: {exc}") from exc
    else:
        raise ManifestError(f"{path}: manifest must be .toml, .yaml/.yml or .csv")
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: top level must be a table with a 'scan' list")
    if "scans" in data and "scan" not in data:  # YAML reads more naturally with 'scans:'
        data["scan"] = data.pop("scans")
    return data


def _check_scan(path: Path, index: int, raw: Any) -> ScanSpec:
    where = f"{path}: scan {index}"
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: must be a table of fields (input, label, ...); got {raw!r}")
    src = _paths_field(where, "input", raw.get("input"), required=True)
    xanes = _paths_field(where, "xanes", raw.get("xanes"), required=False)
    source = parse_source(src)
    label = raw.get("label", raw.get("sample"))
    if label is None:
        label = source.label
    label = str(label)
    if not _LABEL_RE.match(label):
        raise ManifestError(f"{where}: field 'label' must be letters, digits, '.', '_' or '-' "
                            f"(it names the store <label>.zarr); got {label!r}")
    where = f"{path}: scan {index} ({label})"
    labels = {}
    for key, value in raw.items():
        if key in _RESERVED:
            continue
        if not isinstance(value, _SCALARS):
            raise ManifestError(f"{where}: label {key!r} must be a number, string or boolean; "
                                f"got {value!r} (config overrides go under 'config', simulator "
                                "overrides under 'simulate')")
        labels[key] = value
    overrides = raw.get("config", {})
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise ManifestError(f"{where}: field 'config' must be a table of config sections, e.g. "
                            "config.preprocess.center = 31.5")
    if "output" in overrides:
        raise ManifestError(f"{where}: field 'config.output' cannot be overridden per scan "
                            "(each scan's store is <out_dir>/<label>.zarr)")
    for key in ("path", "xanes"):
        if key in overrides.get("input", {}):
            raise ManifestError(f"{where}: field 'config.input.{key}' cannot be overridden per "
                                f"scan; set the scan's '{'input' if key == 'path' else key}' "
                                "instead")
    sim = raw.get("simulate", {})
    if not isinstance(sim, dict):
        raise ManifestError(f"{where}: field 'simulate' must be a table of simulator overrides")
    if sim and source.kind != "simulate":
        raise ManifestError(f"{where}: field 'simulate' applies only to 'simulate:PRESET' inputs; "
                            f"input is {src!r}")
    if source.kind == "simulate":
        _check_simulation(where, source.target, sim)
    elif not source.simulated:
        src = _resolve(path.parent.resolve(), src)
    return ScanSpec(label=label, input=src, labels=labels, config=copy.deepcopy(overrides),
                    simulate=dict(sim), where=where,
                    xanes=_resolve(path.parent.resolve(), xanes) if xanes else "")


def _check_simulation(where: str, preset: str, sim: dict) -> None:
    from ..simulate import particle_options, preset_names

    if preset not in preset_names():
        raise ManifestError(f"{where}: field 'input' names an unknown simulator preset "
                            f"{preset!r}; expected one of {list(preset_names())}")
    allowed = {*particle_options(preset), "seed"}
    unknown = sorted(set(sim) - allowed)
    if unknown:
        raise ManifestError(f"{where}: field 'simulate' has unknown key(s) {unknown}; expected "
                            f"any of {sorted(allowed)}")


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a batch manifest (``.toml``, ``.yaml``/``.yml`` or ``.csv``).

    Raises
    ------
    ManifestError
        Naming the manifest file, the scan (index from 1 and label) and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    data = _read_csv(path) if path.suffix == ".csv" else _read_mapping(path)
    unknown = sorted(set(data) - {"scan", "config", "out_dir"})
    if unknown:
        raise ManifestError(f"{path}: unknown top-level key(s) {unknown}; expected scan, config, "
                            "out_dir")
    raw_scans = data.get("scan")
    if not isinstance(raw_scans, list) or not raw_scans:
        raise ManifestError(f"{path}: needs at least one scan ([[scan]] tables in TOML, a "
                            "'scans:' list in YAML, rows in CSV)")
    scans = [_check_scan(path, i, raw) for i, raw in enumerate(raw_scans, start=1)]
    seen: dict[str, int] = {}
    for i, scan in enumerate(scans, start=1):
        if scan.label in seen:
            raise ManifestError(f"{path}: scan {i}: label {scan.label!r} repeats scan "
                                f"{seen[scan.label]}; labels name the stores and must be unique")
        seen[scan.label] = i
    manifest = Manifest(source=path, scans=scans)
    for key in ("config", "out_dir"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise ManifestError(f"{path}: top-level '{key}' must be a path string; got {value!r}")
        if value is not None:
            setattr(manifest, "config_path" if key == "config" else key, path.parent / value)
    return manifest


def scan_config(base: Config, spec: ScanSpec, store: Path) -> Config:
    """The shared config with ``spec``'s overrides, its input and its store.

    Raises :class:`ManifestError` naming the manifest scan and the config field.
    """
    data = base.to_dict()
    for section, values in spec.config.items():
        if section not in data:
            raise ManifestError(f"{spec.where}: field 'config.{section}' is not a config "
                                f"section; expected one of {', '.join(data)}")
        data[section].update(values)
    data["input"]["path"] = spec.input
    if spec.xanes:
        data["input"]["xanes"] = spec.xanes
    if "seed" in spec.simulate:
        data["input"]["seed"] = spec.simulate["seed"]
    data["output"]["store"] = str(store)
    try:
        return config_from_dict(data, source=f"{spec.where} config")
    except ConfigError as exc:
        raise ManifestError(str(exc)) from None
