"""Why energy shifts and a rotation-centre offset together bias the surface TM/O.

A mini-pipeline on ``simulate.particle("small")`` without the store: simulate the
dual-energy tilt series with chosen imperfections, register the energies, find the
centre, FBP every energy, quantify, smooth TM and O over the solid as
``pipeline.segment`` does, and report against the truth:

- class-fraction error (max and sum over the 3 classes, pp) and voxel agreement;
- TM/O bias of the smoothed ratio per depth layer of the truth solid (1 = outermost
  voxel layer, 2, 3, and the interior);
- per energy, the centre ``find_center`` gives on that energy's registered od,
  and the rotation axis of the registered od (the column where the ideal axis
  lands after the simulator's and the registration's transforms), px.

Options per case (``KEY=VALUE`` after the case name, comma separated):
``shift`` (energy shift std px, 0.5), ``offset`` (centre offset px, 0.7),
``photons`` (2e4, ``none`` = noise-free), ``register`` (``pipeline``: the
pipeline's ``_preprocess._register``, scale estimated unless the true scales differ;
``oracle``: true relative scale and shift onto the reference energy, the
pipeline's cubic ``warp``; ``oracle-sinc``: the same, band-limited resampling),
``center`` (``find`` | ``true``: the registered axis), ``rings`` (stripe removal
before registration as ``[preprocess] rings``: ``blind``, the default since
2026-12-01 (later) | ``offset``, the default before it | ``sorting``, the default
before that | ``fourier-wavelet`` | ``none``),
``gain`` (detector gain error ``ring_strength``, 0), ``seed`` (0).

Usage: ``PYTHONPATH=src python gpu_bench/diagnostics/shift_center_diag.py CASE [CASE ...]``,
e.g. ``both:photons=none,register=oracle``; one JSON line per case.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

DEFAULTS = {"shift": 0.5, "offset": 0.7, "photons": 2e4, "register": "pipeline",
            "center": "find", "rings": "blind", "gain": 0.0, "seed": 0}


def parse(case: str) -> dict:
    """``NAME[:k=v,...]`` -> options (NAME is a label; ``none``/``shift``/``offset``/``both``
    set the two imperfections, the options override them)."""
    name, _, rest = case.partition(":")
    opts = dict(DEFAULTS, name=name)
    opts.update({"none": {"shift": 0.0, "offset": 0.0}, "shift": {"offset": 0.0},
                 "offset": {"shift": 0.0}}.get(name, {}))
    for kv in filter(None, rest.split(",")):
        k, v = kv.split("=")
        opts[k] = v if k in ("register", "center", "rings") else None if v == "none" else float(v)
    opts["seed"] = int(opts["seed"])
    return opts


def simulate(opts):
    from spectrotomo.simulate import Imperfections, particle, tilt_series
    from spectrotomo.simulate._sample import dual_energies

    truth = particle("small", seed=opts["seed"])
    ts = tilt_series(truth, energies=dual_energies(), angles=np.arange(-65.0, 65.5),
                     photons=opts["photons"],
                     imperfections=Imperfections(energy_shift_px=opts["shift"],
                                                 center_offset_px=opts["offset"],
                                                 ring_strength=opts["gain"]),
                     seed=opts["seed"] + 1)
    return truth, ts


def optical_density(ts, rings):
    """od (energy, angle, y, x) float64 as the pipeline's preprocess normalizes it."""
    from spectrotomo.pipeline import Config
    from spectrotomo.pipeline.steps.preprocess import _normalize_all

    if ts.attrs["photons"] == 0:
        return ts["true_od"].values.astype(np.float64)
    cfg = Config()
    cfg.preprocess.rings = rings
    return _normalize_all(ts, cfg)[0].astype(np.float64)


def register(od, ts, mode):
    """Registered od, reference index, relative scales and shifts."""
    from spectrotomo.pipeline.steps import preprocess as _preprocess
    from spectrotomo.recon.prep._register import warp

    s_true, d_true = ts["true_scale"].values, ts["true_energy_shift"].values
    ref = od.shape[0] // 2
    if mode == "pipeline":
        od, reg = _preprocess._register(od, ts["angle"].values,
                                        pixel_sizes=ts.attrs["pixel_size"] / s_true
                                   if np.ptp(s_true) else None)
        return od, reg.reference, reg.scales, reg.shifts
    scales = s_true / s_true[ref]
    shifts = d_true - scales[:, None] * d_true[ref]
    n_a = od.shape[1]
    for e in range(od.shape[0]):  # 8 energies
        if mode == "oracle-sinc":
            od[e] = _sinc_warp(od[e], scales[e], shifts[e])
        else:
            od[e] = warp(od[e], np.repeat(scales[e], n_a), np.repeat(shifts[e][None], n_a, axis=0))
    return od, ref, scales, shifts


def _sinc_warp(images, s, d):
    """images (A, ny, nx) resampled at c + s (q - c) + d, band-limited (sinc)."""
    from spectrotomo.simulate._forward import _sinc_weights

    ny, nx = images.shape[1:]
    w = [_sinc_weights((n - 1) / 2 + s * (np.arange(n) - (n - 1) / 2) + d[k], n)
         for k, n in enumerate((ny, nx))]
    return w[0] @ images @ w[1].T


def registered_axis(ts, ref):
    """Column of the rotation axis in the reference energy's geometry, px."""
    c = (ts.sizes["x"] - 1) / 2
    s, d = ts["true_scale"].values[ref], ts["true_energy_shift"].values[ref, 1]
    return c + s * (ts.attrs["true_center"] - c) + d


def reconstruct(od, angles, center, px):
    from spectrotomo.recon import reconstruct as fbp

    return np.stack([fbp(od[e].astype(np.float32), angles, center=center, pixel_size=px)
                     for e in range(od.shape[0])])  # 8 energies


def classify(mu, energies, truth, px):
    """Smoothed TM/O and classes as pipeline.segment computes them."""
    from spectrotomo import segmentation as seg
    from spectrotomo._model import volume
    from spectrotomo.pipeline import Config
    from spectrotomo.pipeline.steps.quantify import _element_maps
    from spectrotomo.spectra import edge_pairs
    from spectrotomo.pipeline.steps.segment import class_ratio as _class_ratio

    cfg = Config()
    vol = volume(mu.astype(np.float32), energies=energies, voxel_size=px, units="1/nm", name="mu")
    chem = _element_maps(vol, edge_pairs(energies, cfg.spectra.elements))
    mean_mu = mu.mean(0)
    mask = seg.particle_mask(mean_mu)
    pores = seg.find_pores(mean_mu, mask, spacing=px)
    cracks = seg.find_cracks(mean_mu, mask, spacing=px)
    ratio, solid = _class_ratio(chem, mask & (pores == 0) & (cracks == 0), px, cfg.segmentation,
                                depth=np.asarray(seg.depth(mask, spacing=px)))
    classes = seg.composition_classes(ratio, float(truth.attrs["target_tm_o"]),
                                      cfg.segmentation.tolerance, mask=solid)
    return ratio, classes


def class_errors(classes, truth):
    true = truth["composition_class"].values
    frac = [np.mean(c[c > 0][:, None] == np.arange(1, 4)[None], axis=0) for c in (classes, true)]
    diff = np.abs(frac[0] - frac[1]) * 100
    both = (classes > 0) & (true > 0)
    return {"class_max_pp": round(float(diff.max()), 2),
            "class_sum_pp": round(float(diff.sum()), 2),
            "voxel_agreement": round(float((classes[both] == true[both]).mean()), 4)}


def layer_bias(ratio, truth, px):
    """Mean smoothed-TM/O minus true TM/O per truth depth layer (voxels); the
    volume is compared as reconstructed (the reference energy's sub-pixel dy kept)."""
    true_ratio = truth["tm_o_ratio"].values
    layer = np.ceil(truth["depth"].values / px - 1e-6)
    ok = np.isfinite(ratio) & (truth["composition_class"].values > 0)
    out = {}
    layers = (("L1", layer == 1), ("L2", layer == 2), ("L3", layer == 3), ("in", layer > 3))
    for name, sel in layers:
        m = ok & sel
        out[name] = round(float(np.mean(ratio[m] - true_ratio[m])), 4) if m.any() else None
    return out


def per_energy_centers(od, angles):
    from spectrotomo.recon.prep import find_center

    return [round(float(find_center(od[e], angles)), 3) for e in range(od.shape[0])]


def run_case(case: str) -> dict:
    from spectrotomo.recon.prep import find_center

    opts = parse(case)
    t0 = time.time()
    truth, ts = simulate(opts)
    angles, px = ts["angle"].values, float(ts.attrs["pixel_size"])
    od, ref, _, _ = register(optical_density(ts, opts["rings"]), ts, opts["register"])
    axis = registered_axis(ts, ref)
    center = axis if opts["center"] == "true" else float(find_center(od.mean(0), angles))
    px_reg = px / float(ts["true_scale"].values[ref])
    mu = reconstruct(od, angles, center, px_reg)
    ratio, classes = classify(mu, ts["energy"].values, truth, px_reg)
    return {"case": case, **class_errors(classes, truth),
            "tm_o_bias_by_layer": layer_bias(ratio, truth, px),
            "center": round(center, 3), "registered_axis": round(axis, 3),
            "per_energy_center": per_energy_centers(od, angles),
            "ref_shift_px": [round(float(v), 3) for v in ts["true_energy_shift"].values[ref]],
            "wall_s": round(time.time() - t0, 1)}


if __name__ == "__main__":
    for c in sys.argv[1:]:
        print(json.dumps(run_case(c)), flush=True)
