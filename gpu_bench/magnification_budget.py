"""Class-fraction error of the pipeline on ``simulate:small`` with and without per-energy
pixel-size metadata, and where the rest of the error comes from.

Cases (one pipeline run each, ``[preprocess] align = false``, figures off):

- ``meta`` / ``nometa``: the simulator records / does not record ``pixel_size_energy``;
- ``oracle``: every energy warped onto the truth geometry with the true scale and shift;
- ``perfect``: no instrument imperfection at all (noise and the missing wedge only);
- ``only:KEY[,KEY...]`` / ``without:KEY``: metadata on and only these / all but one of
  ``simulate.IMPERFECTIONS``;
- ``fourier-shift``: energy shifts only, simulated by a band-limited (Fourier) shift
  instead of the simulator's bilinear resampling.

A case may end in ``+spline`` (the simulator's bilinear misalignment replaced by a
quintic-spline resampling, whose blur hardly depends on the sub-pixel shift) and in
``@SEED`` (``[input] seed``, default 0), e.g. ``meta@1``.

Usage: ``PYTHONPATH=src python gpu_bench/magnification_budget.py OUT_DIR CASE [CASE ...]``
(one JSON line per case).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

ERRORS = ("magnification_error_pct", "class_fraction_error_pp", "class_fraction_error_sum_pp",
          "class_voxel_agreement", "center_error_px")


def _oracle_register(store):
    from spectrotomo import io
    from spectrotomo.recon._register import EnergyRegistration, warp

    def register(od, angles, *, pixel_sizes=None, estimate=True):
        raw = io.read_group(store, "raw")
        s, d = raw["true_scale"].values, raw["true_energy_shift"].values
        n_e, n_a = od.shape[:2]
        for e in range(n_e):  # a few energies
            od[e] = warp(od[e], np.repeat(s[e], n_a), np.repeat(d[e][None], n_a, axis=0))
        zeros = np.zeros(n_e)
        return od, EnergyRegistration(shifts=d, scales=s, residual_px=zeros, residual_rms=zeros,
                                      reference=0, scale_source="oracle")
    return register


def _fourier_misalign(od, shifts, scales):
    from spectrotomo.recon._shift import fourier_shift

    if not np.all(scales == 1):
        raise ValueError("fourier-shift case: magnification must be off")
    flat = od.reshape(-1, *od.shape[2:]).astype(np.float64)
    return fourier_shift(flat, shifts.reshape(-1, 2)).reshape(od.shape)


def _spline_misalign(od, shifts, scales):
    """out(r) = od(c0 + (r - c0 - shift) / scale) per (energy, angle) image, quintic spline."""
    from scipy import ndimage

    c = (np.array(od.shape[2:]) - 1) / 2.0
    out = np.empty(od.shape, np.float64)
    for e in range(od.shape[0]):  # a simulation-only reference, a few thousand frames
        for a in range(od.shape[1]):
            offset = c - (c + shifts[e, a]) / scales[e]
            out[e, a] = ndimage.affine_transform(od[e, a].astype(np.float64),
                                                 np.full(2, 1 / scales[e]), offset=offset,
                                                 order=5, mode="constant")
    return out


def run_case(out: str, case: str) -> dict:
    import spectrotomo.simulate._forward as fwd
    import spectrotomo.simulate._sample as smod
    from spectrotomo.pipeline import Config, _steps, run_pipeline

    saved = (dict(smod.IMPERFECTIONS), _steps._register, fwd._misalign)
    name = case.replace(":", "-").replace("@", "-seed")
    case, _, seed = case.partition("@")
    case, spline = case.removesuffix("+spline"), case.endswith("+spline")
    cfg = Config()
    cfg.input.seed = int(seed or 0)
    cfg.input.path = "simulate:small"
    cfg.output.store = f"{out}/{name}.zarr"
    cfg.output.figures = False
    cfg.preprocess.align = False
    cfg.input.pixel_size_metadata = case != "nometa"
    try:
        if case == "oracle":
            _steps._register = _oracle_register(cfg.output.store)
        elif case == "perfect":
            smod.IMPERFECTIONS.update({k: 0.0 for k in smod.IMPERFECTIONS})
        elif case.startswith("only:") or case == "fourier-shift":
            keys = ["energy_shift_px"] if case == "fourier-shift" else case[5:].split(",")
            smod.IMPERFECTIONS.update({k: 0.0 for k in smod.IMPERFECTIONS if k not in keys})
            if case == "fourier-shift":
                fwd._misalign = _fourier_misalign
        elif case.startswith("without:"):
            smod.IMPERFECTIONS[case[8:]] = 0.0
        elif case not in ("meta", "nometa"):
            raise ValueError(f"unknown case {case!r}")
        if spline:
            fwd._misalign = _spline_misalign
        t0 = time.time()
        res = run_pipeline(cfg, report_dir=f"{out}/{name}-report", log=lambda m: None)
    finally:
        smod.IMPERFECTIONS.clear()
        smod.IMPERFECTIONS.update(saved[0])
        _steps._register, fwd._misalign = saved[1:]
    err = res["summary"]["errors_vs_truth"]
    if case == "oracle":  # scales relative to the truth geometry, not to a reference energy
        err["magnification_error_pct"] = 0.0
    return {"case": case + ("+spline" if spline else ""), "seed": cfg.input.seed,
            "wall_s": round(time.time() - t0, 1),
            **{k: err.get(k) for k in ERRORS}}


if __name__ == "__main__":
    for c in sys.argv[2:]:
        print(json.dumps(run_case(sys.argv[1], c)), flush=True)
