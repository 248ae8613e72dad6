"""Class-fraction error of the pipeline on ``simulate:small`` with and without per-energy
pixel-size metadata, and where the rest of the error comes from.

Cases (one pipeline run each, ``[preprocess] align = false`` unless noted, figures off):

- ``meta`` / ``nometa``: the simulator records / does not record ``pixel_size_energy``;
- ``default``: the pipeline's defaults (no metadata, ``align = true``), as ``spectrotomo run``;
- ``oracle``: every energy warped onto the truth geometry with the true scale and shift;
- ``perfect``: no instrument imperfection at all (noise and the missing wedge only);
- ``only:KEY[,KEY...]`` / ``without:KEY``: metadata on and only these / all but one of
  the fields of ``simulate.MILD_IMPERFECTIONS``;
- ``fourier-shift``: energy shifts only, simulated by a periodic FFT shift
  (``recon.prep.fourier_shift``) instead of the simulator's band-limited (sinc) resampling.

A case may end in ``+spline`` or ``+bilinear`` (the simulator's band-limited
misalignment replaced by a quintic-spline / bilinear resampling; bilinear is how
the simulator shifted images before 2026-12-01: a blur that depends on each
image's sub-pixel shift) and in ``@SEED`` (``[input] seed``, default 0), e.g.
``meta+bilinear@1``.

Usage: ``PYTHONPATH=src python gpu_bench/diagnostics/magnification_budget.py OUT_DIR CASE [CASE ...]``
(one JSON line per case).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

ERRORS = ("magnification_error_pct", "class_fraction_error_pp", "class_fraction_error_sum_pp",
          "class_voxel_agreement", "center_error_px", "mn_valence_mae")


def _oracle_register(store):
    """The preprocess step's registration replaced by the simulator's truth (scales and
    shifts onto the truth geometry)."""
    from spectrotomo import io
    from spectrotomo.recon.prep._register import EnergyRegistration

    def registration(frames, reference, *, pixel_sizes=None, **options):
        raw = io.read_group(store, "raw")
        s, d = raw["true_scale"].values, raw["true_energy_shift"].values
        zeros = np.zeros(frames.shape[0])
        return EnergyRegistration(shifts=d, scales=s, residual_px=zeros, residual_rms=zeros,
                                  reference=reference, scale_source="oracle")
    return registration


def _fourier_misalign(od, shifts, scales):
    from spectrotomo.recon.prep._shift import fourier_shift

    if not np.all(scales == 1):
        raise ValueError("fourier-shift case: magnification must be off")
    flat = od.reshape(-1, *od.shape[2:]).astype(np.float64)
    return fourier_shift(flat, shifts.reshape(-1, 2)).reshape(od.shape)


def _spline_misalign(order):
    """out(r) = od(c0 + (r - c0 - shift) / scale) per (energy, angle) image, spline of ``order``."""
    from scipy import ndimage

    mode = "grid-constant" if order == 1 else "constant"

    def misalign(od, shifts, scales):
        c = (np.array(od.shape[2:]) - 1) / 2.0
        out = np.empty(od.shape, np.float64)
        for e in range(od.shape[0]):  # a simulation-only reference, a few thousand frames
            for a in range(od.shape[1]):
                offset = c - (c + shifts[e, a]) / scales[e]
                out[e, a] = ndimage.affine_transform(od[e, a].astype(np.float64),
                                                     np.full(2, 1 / scales[e]), offset=offset,
                                                     order=order, mode=mode)
        return out
    return misalign


def _imperfections(case: str):
    """The simulator's imperfections for ``case`` (the sample's mild ones by default)."""
    from dataclasses import asdict, replace

    from spectrotomo.simulate import MILD_IMPERFECTIONS, Imperfections

    if case == "perfect":
        return Imperfections()
    if case.startswith("only:") or case == "fourier-shift":
        keys = ["energy_shift_px"] if case == "fourier-shift" else case[5:].split(",")
        return Imperfections(**{k: v for k, v in asdict(MILD_IMPERFECTIONS).items() if k in keys})
    if case.startswith("without:"):
        return replace(MILD_IMPERFECTIONS, **{case[8:]: 0.0})
    if case not in ("meta", "nometa", "default", "oracle"):
        raise ValueError(f"unknown case {case!r}")
    return MILD_IMPERFECTIONS


def _simulate_input(cfg, imperfections) -> None:
    """Write the simulated input groups into the store (the acquire step then skips)."""
    from spectrotomo import io
    from spectrotomo.simulate import sample

    tree = sample("small", seed=cfg.input.seed, imperfections=imperfections,
                  pixel_size_metadata=cfg.input.pixel_size_metadata)
    groups = {"truth": "truth", "xanes": "raw_xanes", "references": "references",
              "tilt_series": "raw"}  # raw last: it marks the acquire step complete
    for child, group in groups.items():
        io.write(cfg.output.store, group, tree[child].to_dataset(inherit=False), overwrite=True)


def run_case(out: str, case: str) -> dict:
    import spectrotomo.simulate._forward as fwd
    from spectrotomo.pipeline import Config, run_pipeline
    from spectrotomo.pipeline.steps import preprocess as _preprocess

    saved = (_preprocess._registration, fwd._misalign)
    name = case.replace(":", "-").replace("@", "-seed")
    case, _, seed = case.partition("@")
    resample = next((k for k in ("spline", "bilinear") if case.endswith("+" + k)), None)
    case = case.removesuffix(f"+{resample}") if resample else case
    cfg = Config()
    cfg.input.seed = int(seed or 0)
    cfg.input.path = "simulate:small"
    cfg.output.store = f"{out}/{name}.zarr"
    cfg.output.figures = False
    cfg.preprocess.align = case == "default"
    cfg.input.pixel_size_metadata = case not in ("nometa", "default")
    imperfections = _imperfections(case)
    try:
        if case == "oracle":
            _preprocess._registration = _oracle_register(cfg.output.store)
        if case == "fourier-shift":
            fwd._misalign = _fourier_misalign
        if resample:
            fwd._misalign = _spline_misalign(5 if resample == "spline" else 1)
        t0 = time.time()
        _simulate_input(cfg, imperfections)
        res = run_pipeline(cfg, report_dir=f"{out}/{name}-report", log=lambda m: None)
    finally:
        _preprocess._registration, fwd._misalign = saved
    err = res["summary"]["errors_vs_truth"]
    if case == "oracle":  # scales relative to the truth geometry, not to a reference energy
        err["magnification_error_pct"] = 0.0
    return {"case": case + (f"+{resample}" if resample else ""), "seed": cfg.input.seed,
            "wall_s": round(time.time() - t0, 1),
            **{k: err.get(k) for k in ERRORS}}


if __name__ == "__main__":
    for c in sys.argv[2:]:
        print(json.dumps(run_case(sys.argv[1], c)), flush=True)
