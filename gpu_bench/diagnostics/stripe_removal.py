"""Stripe removal: how much of a stripe pattern each method removes, and what it does to
the particle's edges (the quantities of gpu_bench/RESULTS.prep.md, 2026-12-01).

Series as in ``tests/pipeline/test_preprocess_rings.py``: the TINY ``simulate:small``
particle (32 x 40 x 40 px, seed 2), the O pair 525/555 eV, -65..+65 deg every 2 deg,
energy shifts 0.5 px RMS and a centre offset of 0.7 px; od from ``recon.prep.normalize`` per
energy, then ``remove_rings`` per energy as the pipeline does. Per method:

- ``empty %``: stripe RMS removed on an empty field with 1 % gain errors (noise-free):
  1 - RMS(angle-mean of corrected - true od) / RMS(the same without removal);
- ``jump %`` / ``od %``: noise-free particle, no gain errors: max |change| of the
  O-edge jump (od[555] - od[525]) over its peak, and of od over the peak od;
- ``jump+gain %``: the same jump error with 1 % gain errors (noise-free; the gain map
  is the same at both energies, so it cancels from the jump unless removal breaks it);
- ``real %`` (in / out): particle + 1 % gain + 2e4 photons: stripe RMS removed against
  the known gain map, -log(true_gain) (mean-free), by the angle-mean removed offset;
  also inside the particle's shadow (any angle) and outside it;
- ``ring x`` / ``bias %``: the off-axis phantom of ``tests/recon/prep/test_rings.py`` (96 px,
  10 stripes of 2-6 %): ring RMS before / after in the FBP, and the particle's mean
  attenuation bias;
- ``ms/proj``: remove_rings on a (131, 64, 64) float32 stack, best of 3.

Usage: ``PYTHONPATH=src python gpu_bench/diagnostics/stripe_removal.py [METHOD ...]`` (default: none
sort offset blind); one line per method.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

TINY = dict(shape=(32, 40, 40), radius_nm=240.0, n_grains=8, n_voids=2, n_cracks=1)
O_PAIR = [525.0, 555.0]


def series(truth, ring=0.0, photons=None):
    """(od, true_od, true_gain): od (energy, angle, y, x) float64 as normalize gives it."""
    from spectrotomo.recon.prep import normalize
    from spectrotomo.simulate import Imperfections, tilt_series

    ts = tilt_series(truth, energies=O_PAIR, angles=np.arange(-65, 65.1, 2.0), photons=photons,
                     imperfections=Imperfections(energy_shift_px=0.5, center_offset_px=0.7,
                                                 ring_strength=ring), seed=1)
    od = np.stack([normalize(ts["projections"].values[e], ts["flats"].values[e],
                             ts["darks"].values[e], flat_mode="median")[0]
                   for e in range(ts.sizes["energy"])]).astype(np.float64)
    return od, ts["true_od"].values.astype(np.float64), ts["true_gain"].values.astype(np.float64)


def _removed(left, stripes):
    return 100 * (1 - np.sqrt((left ** 2).mean()) / np.sqrt((stripes ** 2).mean()))


def measure(method: str, data: dict) -> dict:
    from spectrotomo.recon.prep import remove_rings

    def fn(x):
        return x if method == "none" else remove_rings(x, method=method)

    out = {}
    od, true, _ = data["empty"]
    corr = np.stack([fn(o) for o in od])
    out["empty %"] = _removed((corr - true).mean(1), (od - true).mean(1))
    od, true, _ = data["particle"]
    corr = np.stack([fn(o) for o in od])
    true_jump = true[1] - true[0]
    out["jump %"] = 100 * np.abs(corr[1] - corr[0] - true_jump).max() / np.abs(true_jump).max()
    out["od %"] = 100 * np.abs(corr - true).max() / np.abs(true).max()
    od, true, _ = data["particle+gain"]
    corr = np.stack([fn(o) for o in od])
    out["jump+gain %"] = 100 * np.abs(corr[1] - corr[0] - true_jump).max() / np.abs(true_jump).max()
    od, true, gain = data["realistic"]
    corr = np.stack([fn(o) for o in od])
    stripe = -np.log(gain)
    stripe -= stripe.mean()
    est = (od - corr).mean(1)
    left = stripe[None] - (est - est.mean(axis=(1, 2), keepdims=True))
    shadow = true.max(axis=(0, 1)) > 0.01
    out["real %"] = _removed(left, np.broadcast_to(stripe, left.shape))
    out["real in %"] = _removed(left[:, shadow], np.broadcast_to(stripe[shadow], left[:, shadow].shape))
    out["real out %"] = _removed(left[:, ~shadow],
                                 np.broadcast_to(stripe[~shadow], left[:, ~shadow].shape))
    od1, bad, angles, particle = data["phantom"]
    ring = data["ring_metrics"]
    before, _ = ring(bad, od1, angles, particle)
    after, bias = ring(fn(bad), od1, angles, particle)
    out["ring x"], out["bias %"] = before / after, 100 * bias
    stack = np.random.default_rng(0).random((131, 64, 64)).astype(np.float32)
    fn(stack)
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        fn(stack)
        best = min(best, time.perf_counter() - t0)
    out["ms/proj"] = 1e3 * best / stack.shape[0]
    return out


def load() -> dict:
    from spectrotomo.simulate import particle

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "recon" / "prep"))
    import test_rings  # the phantom and its ring metric, shared with the test

    truth = particle("small", seed=2, **TINY)
    empty = truth.copy(deep=True)
    empty["density"][:] = 0.0
    return {"empty": series(empty, ring=0.01), "particle": series(truth),
            "particle+gain": series(truth, ring=0.01),
            "realistic": series(truth, ring=0.01, photons=2e4),
            "phantom": test_rings.stripes.__wrapped__(), "ring_metrics": test_rings._metrics}


if __name__ == "__main__":
    methods = sys.argv[1:] or ["none", "sorting", "offset", "blind"]
    data = load()
    rows = [(m, measure(m, data)) for m in methods]
    keys = list(rows[0][1])
    print("| method | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for m, r in rows:
        print(f"| {m} | " + " | ".join(f"{r[k]:.2f}" for k in keys) + " |", flush=True)
