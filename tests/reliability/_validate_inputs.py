"""Tiny, physically plausible beamline files for the validation tests.

The io writers (``tests/io/_writers.py``) write random counts; the validation
checks counts, so these tests build plausible ones (darks ~100, flats ~30000,
projections between them) and write them with the same writers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))

import _writers  # noqa: E402

#: Format -> writer of one file (or folder) from a truth dict.
FORMATS = {
    "dxchange": lambda d, t: _writers.write_dxchange(d / "scan.h5", t),
    "nxtomo": lambda d, t: _writers.write_nxtomo(d / "scan.nx", t),
    "fxi": lambda d, t: _writers.write_fxi(d / "fxi.h5", t),
    "xradia": lambda d, t: _writers.write_xradia(d / "scan.txrm", t),
    "tiff-folder": lambda d, t: _writers.write_tiff_folder(d / "scan", t),
    "tiff-multipage": lambda d, t: _writers.write_tiff_multipage(d / "scan.tif", t),
}


def plausible(*, n_angles: int = 40, span_deg: float = 130.0, ny: int = 8, nx: int = 8,
              energy: float = 8350.0, seed: int = 0) -> dict:
    """Counts of a tilt series: darks ~100, flats ~30000, projections in between."""
    rng = np.random.default_rng(seed)
    darks = 100 + rng.integers(0, 5, (2, ny, nx))
    flats = 30000 + rng.integers(0, 100, (2, ny, nx))
    proj = 100 + 29900 * np.exp(-rng.random((n_angles, ny, nx)))
    return {"projections": proj.astype("<u2"), "flats": flats.astype("<u2"),
            "darks": darks.astype("<u2"),
            "angles": np.linspace(-span_deg / 2, span_deg / 2, n_angles),
            "energy": float(energy), "pixel_size": 15.625}


def write(fmt: str, folder: Path, truth: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return FORMATS[fmt](folder, truth)
