"""``spectrotomo check``: what a run would read from input files, before the run.

Each file is opened lazily (headers and flats/darks counts; no projection data
beyond the readers' own checks) and described: format, energies (eV), angles
(range, step, count), flats/darks, frame size, pixel sizes (nm) and warnings;
several files are then combined as a run would (:func:`spectrotomo.io.read_series`)
so that inconsistencies between them show up here rather than in ``acquire``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import io

__all__ = ["FileReport", "describe_file", "check_inputs", "format_check_report"]


@dataclass
class FileReport:
    """What one file (or the combined series) gives: ``info`` fields in display
    order, ``warnings`` (the run proceeds) and ``errors`` (the run would fail)."""

    path: str
    info: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _angles_text(angles: np.ndarray) -> tuple[str, list[str]]:
    notes = []
    if angles.size == 0:
        return "none", ["no projection angles"]
    if angles.size == 1:
        return f"1 angle at {angles[0]:g} deg (a 2-D scan)", notes
    steps = np.diff(np.sort(angles))
    step = float(np.median(steps))
    span = float(angles.max() - angles.min())
    if steps.size and np.ptp(steps) > 0.05 * max(abs(step), 1e-9):
        notes.append(f"angle steps vary ({steps.min():.3g}..{steps.max():.3g} deg)")
    if span < 179.0:
        notes.append(f"limited angular range ({span:.1f} deg): a {180 - span:.0f} deg missing "
                     "wedge; keep [reconstruct] algorithm = \"auto\" (the joint limited-angle "
                     "solver; FBP reads amounts ~25 % low)")
    return (f"{angles.min():g}..{angles.max():g} deg, step {step:.4g} deg, "
            f"{angles.size} angles", notes)


def _describe(ds, report: FileReport) -> FileReport:
    energies = ds["energy"].values
    report.info["energies (eV)"] = ", ".join(f"{e:g}" for e in energies)
    angles_text, notes = _angles_text(np.asarray(ds["angle"].values, float))
    report.info["angles"] = angles_text
    report.warnings += notes
    n_flats = ds.sizes.get("flat", 0) if "flats" in ds else 0
    n_darks = ds.sizes.get("dark", 0) if "darks" in ds else 0
    report.info["flats / darks"] = f"{n_flats} / {n_darks}"
    if not n_flats:
        report.warnings.append("no flat fields: the run needs flats to normalize raw counts "
                               "(unless the data are already normalized)")
    if n_flats and not n_darks:
        report.warnings.append("no dark fields: flats are used without dark subtraction")
    report.info["frame (y x)"] = f"{ds.sizes['y']} x {ds.sizes['x']} pixels, " \
                                 f"{ds['projections'].dtype}"
    sizes = ds.coords.get("pixel_size_energy")
    px = float(ds.attrs["pixel_size"])
    report.info["pixel size (nm)"] = (f"{px:.6g}" if sizes is None else
                                      ", ".join(f"{s:.6g}" for s in sizes.values)
                                      + " (per energy)")
    bad = {k: v for k, v in (ds.attrs.get("nonfinite_counts") or {}).items() if v}
    if bad:
        report.warnings.append(f"non-finite counts (NaN/Inf) in {bad}")
    return report


def _reader_name(ds) -> str:
    """The reader of the provenance's first entry ("io.read_nxtomo" -> "nxtomo")."""
    from .._model import provenance

    steps = [e["step"] for e in provenance(ds)]
    return steps[0].removeprefix("io.read_") if steps else "?"


def describe_file(path: str) -> FileReport:
    """Describe one file as :func:`spectrotomo.io.read` gives it (lazily)."""
    report = FileReport(str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = io.read(path, lazy=True)
        except (io.ReaderError, OSError, ValueError) as exc:
            report.errors.append(str(exc))
            return report
    report.info["format"] = ds.attrs.get("source_format") or _reader_name(ds)
    report.warnings += [str(w.message) for w in caught]
    return _describe(ds, report)


def check_inputs(paths, *, angles: str = "same") -> list[FileReport]:
    """Reports of every file of ``paths`` (files, lists, glob patterns) and, for
    several files, of the series a run would combine (``angles`` as ``[input] angles``).

    A missing file or a pattern without matches is an error report.
    """
    try:
        files = io.expand_paths(paths)
    except (FileNotFoundError, ValueError) as exc:
        return [FileReport(str(paths), errors=[str(exc)])]
    reports = [describe_file(p) for p in files]
    if len(files) > 1 and not any(r.errors for r in reports):
        combined = FileReport(f"combined series of {len(files)} files")
        try:
            ds = io.read_series(files, lazy=True, angles=angles)
        except (io.ReaderError, ValueError) as exc:
            combined.errors.append(str(exc))
            if angles == "same" and "angles" in str(exc):
                try:
                    io.read_series(files, lazy=True, angles="common")
                    combined.errors.append('with [input] angles = "common" the files combine '
                                           "(angles every file has)")
                except (io.ReaderError, ValueError):
                    pass
        else:
            _describe(ds, combined)
        reports.append(combined)
    return reports


def format_check_report(reports: list[FileReport]) -> str:
    """Text for the terminal: one block per report."""
    lines = []
    for r in reports:
        lines.append(r.path)
        lines += [f"  {k:<16} {v}" for k, v in r.info.items()]
        lines += [f"  warning: {w}" for w in r.warnings]
        lines += [f"  ERROR: {e}" for e in r.errors]
    bad = sum(bool(r.errors) for r in reports)
    lines.append("OK: a run can read these files" if not bad else
                 f"{bad} problem(s): a run would fail")
    return "\n".join(lines)
