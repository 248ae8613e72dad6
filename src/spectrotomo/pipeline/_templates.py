"""Commented config templates per experiment type, pre-filled from input files
(``spectrotomo init --input FILE... --template T OUT.toml``).

Every template is the commented default config (:data:`~._config.TEMPLATE`)
with its ``[input]`` section written from the files (each file described as
``spectrotomo check`` does) and a few keys set for the experiment type.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ._config import TEMPLATE, config_from_dict

__all__ = ["TEMPLATES", "render_template", "write_config"]

#: Experiment type -> (one-line description, {"section.key": (TOML value, comment)}).
TEMPLATES: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "txm-dual-energy": (
        "soft X-ray TXM tilt series, one file per energy below/above each edge "
        "(O K, Mn/Co/Ni L3), limited angular range; optional 2-D XANES scan",
        {}),
    "xanes2d": (
        "soft X-ray TXM tilt series plus 2-D XANES energy scans fitted into valence maps "
        "(give the scans with --xanes)",
        {"spectra.sum_to_one": ("true", "edge-step normalized fractions (measured XANES "
                                "scans rarely have absolute scale)")}),
    "xanes3d": (
        "a tilt series at every energy of a XANES scan (one file per energy): every "
        "energy reconstructed; the valence step fits 2-D scans only",
        {"reconstruct.chunk_rows": ("8", "many energies: smaller chunks per task")}),
    "holo": (
        "hard X-ray holotomography: one file per propagation distance (full 180/360 deg), "
        "phase retrieval then FBP",
        {"phase.method": ('"ctf"', "ctf for several distances, paganin for one"),
         "preprocess.align": ("false", "phase backgrounds bias the jitter stage"),
         "preprocess.register_energies": ("false", "one energy")}),
}


def _toml_list(items: list[str], indent: str = "    ") -> str:
    if len(items) == 1:
        return json.dumps(items[0])
    return "[\n" + "".join(f"{indent}{json.dumps(p)},\n" for p in items) + "]"


def _input_section(inputs: list[str], xanes: list[str], reports, angles: str) -> str:
    combined = reports[-1] if reports else None
    lines = ["[input]", f"path = {_toml_list(inputs)}"]
    if combined is not None and combined.info:
        lines.append(f"# read from the files: energies {combined.info.get('energies (eV)')} eV; "
                     f"angles {combined.info.get('angles')};")
        lines.append(f"# pixel size {combined.info.get('pixel size (nm)')} nm; frame "
                     f"{combined.info.get('frame (y x)')}; flats/darks "
                     f"{combined.info.get('flats / darks')}")
    lines += [
        f'angles = "{angles}"              # same | common (keep the angles all files share)',
        f"xanes = {_toml_list(xanes) if xanes else json.dumps('')}"
        + ("" if xanes else "                   # 2-D XANES energy scan(s): file, list or glob"),
        "energies_ev = []             # override the files' energies (eV), one per file",
        "# pixel_size_nm = 10.0       # override the files' pixel size (nm)",
        "# crop = {rows = [100, 900], columns = [50, 950]}  # pixels kept, stop exclusive",
        "binning = 1                  # 1 | 2 | 4 (projections, flats, darks, pixel size)",
        "",
    ]
    return "\n".join(lines) + "\n"


def _set_key(text: str, section: str, key: str, value: str, comment: str) -> str:
    """Replace ``key = ...`` (commented or not) inside ``[section]`` of ``text``."""
    start = text.index(f"[{section}]\n")
    end = text.find("\n[", start + 1)
    end = len(text) if end < 0 else end
    body = text[start:end]
    pattern = re.compile(rf"^#? ?{re.escape(key)} = .*$", re.M)
    line = f"{key} = {value}".ljust(28) + f" # {comment}"
    body = pattern.sub(lambda _: line, body, count=1) if pattern.search(body) else \
        body.rstrip("\n") + "\n" + line + "\n"
    return text[:start] + body + text[end:]


def render_template(template: str = "txm-dual-energy", *, inputs=(), xanes=(),
                    store: str | None = None) -> tuple[str, list]:
    """The commented TOML config of ``template`` for ``inputs`` (files/globs).

    Returns the text and the ``spectrotomo check`` reports of the inputs (the
    caller shows their errors). Raises ValueError for an unknown template.
    """
    from ._check import check_inputs

    if template not in TEMPLATES:
        raise ValueError(f"--template must be one of {', '.join(TEMPLATES)}; got {template!r}")
    description, keys = TEMPLATES[template]
    text = TEMPLATE
    reports = []
    inputs = [str(p) for p in inputs]
    xanes = [str(p) for p in xanes]
    if inputs:
        reports = check_inputs(inputs)
        angles = "same"
        if reports and any("common" in e for e in reports[-1].errors):
            angles = "common"
        start, end = text.index("[input]\n"), text.index("[output]\n")
        text = text[:start] + _input_section(inputs, xanes, reports, angles) + text[end:]
    elif xanes:
        text = _set_key(text, "input", "xanes", _toml_list(xanes), "2-D XANES scan(s)")
    for dotted, (value, comment) in keys.items():
        section, key = dotted.split(".", 1)
        text = _set_key(text, section, key, value, comment)
    if template == "holo" and len(inputs) == 1:
        text = _set_key(text, "phase", "method", '"paganin"', "one distance: Paganin")
    if store:
        text = _set_key(text, "output", "store", json.dumps(store), "one zarr v3 store per sample")
    header = f"# template {template}: {description}\n"
    if inputs and template != "holo":
        header += ("# measured files carry no target composition: set [segmentation] "
                   "target_tm_o before the segment step\n")
    return header + text, reports


def _refuse_stores(inputs) -> None:
    """A sample store is where a run writes, not a measured input: say so before
    a config that cannot run is written."""
    from ._source import parse_source

    for item in inputs:
        if parse_source(item).kind == "store":
            raise ValueError(f"--input {item}: a spectrotomo sample store, not a beamline file; "
                             "to rerun or continue it, set [output] store = "
                             f"{json.dumps(str(item))} in a config (`spectrotomo init run.toml` "
                             "writes the template) and run that")


def write_config(path, template: str = "txm-dual-energy", *, inputs=(), xanes=(),
                 overwrite: bool = False) -> tuple[Path, list]:
    """Write :func:`render_template`'s config to ``path`` (checked to load).

    The store is named after ``path`` (``run.toml`` -> ``run.zarr``) when inputs
    are given. Raises FileExistsError unless ``overwrite``, ValueError when an
    input is a spectrotomo sample store (that is an ``[output] store``, not an input).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists; pass --overwrite to replace it")
    _refuse_stores(inputs)
    store = str(path.with_suffix(".zarr")) if inputs else None
    text, reports = render_template(template, inputs=inputs, xanes=xanes, store=store)
    import tomllib

    config_from_dict(tomllib.loads(text), source=str(path))  # a template must load
    path.write_text(text)
    return path, reports
