"""Class accuracy of the limited-angle default path (issue #16): FBP / old default (joint
solver without the Bregman refinement) / new default, one pipeline run each, and where the
new default's class errors lie (depth below the surface, surface facing the missing wedge).

Usage: ``PYTHONPATH=src python gpu_bench/diagnostics/class_accuracy.py OUT_DIR small:11 demo:0 ...``
(one markdown table row per run, then the breakdown lines). The new default runs every step;
the other two reuse its store's input and preprocess groups (copied) and rerun reconstruct,
quantify, segment and report. Step times come from each run's log: noisy on a shared machine.

``... class_accuracy.py where STORE [STORE ...]`` reruns nothing: for finished pipeline stores of
simulated samples it prints where the class errors sit (:func:`where`) and what bounds them
(:func:`ceilings`).
"""

from __future__ import annotations

import functools
import shutil
import sys

import numpy as np


def _run(store: str, preset: str, seed: int, *, algorithm="auto", steps=None, joint_kw=None):
    import spectrotomo.recon as recon
    from spectrotomo.pipeline import Config, run_pipeline

    cfg = Config()
    cfg.input.path, cfg.input.seed = f"simulate:{preset}", seed
    cfg.output.store, cfg.output.figures, cfg.output.overwrite = store, False, bool(steps)
    cfg.reconstruct.algorithm = algorithm
    saved = recon.reconstruct_joint
    if joint_kw:  # the step imports the solver from spectrotomo.recon at call time
        recon.reconstruct_joint = functools.partial(saved, **joint_kw)
    try:
        res = run_pipeline(cfg, steps=steps, report_dir=store.replace(".zarr", "-report"),
                           log=lambda m: None)
    finally:
        recon.reconstruct_joint = saved
    times = {r.name: r.seconds for r in res["records"]}
    return res["summary"]["errors_vs_truth"], times.get("reconstruct", float("nan"))


def _row(case: str, name: str, e: dict, seconds: float) -> str:
    b, x = e["amount_relative_bias"], e["extent_error_vox"]
    bias = " / ".join(f"{100 * b[k]:+.1f}" for k in ("O", "Mn", "Co", "Ni"))
    return (f"| {case} | {name} | {e['class_fraction_error_sum_pp']:.2f} | "
            f"{e['class_voxel_agreement']:.3f} | {bias} | {e['mask_iou']:.3f} | "
            f"{x['z']:+d},{x['y']:+d},{x['x']:+d} | {e['mn_valence_mae']:.3f} | {seconds:.1f} |")


def breakdown(store: str) -> str:
    """Class voxel agreement by true depth (voxels) and, in the reduced skin, by how much
    the surface faces y (the missing-wedge direction)."""
    from spectrotomo import io

    truth = io.read_group(store, "truth").load()
    est = io.read_group(store, "segmentation")["composition_class"].values
    px = float(truth.attrs["pixel_size"])
    depth = truth["depth"].values / px
    true = truth["composition_class"].values
    both = (true > 0) & (est > 0)
    out = []
    for lo, hi in ((0, 2), (2, 4), (4, 8), (8, np.inf)):
        sel = both & (depth >= lo) & (depth < hi)
        out.append(f"depth {lo}-{hi} vox {(est[sel] == true[sel]).mean():.3f} (n={sel.sum()})")
    g = np.gradient(depth)
    facing_y = np.abs(g[1]) / (np.sqrt(sum(a ** 2 for a in g)) + 1e-9)
    skin = both & (depth < 30.0 / px)  # the simulator's reduced skin (surface_layer_nm 30)
    for lo, hi in ((0, 0.42), (0.42, 0.9), (0.9, 1.01)):
        sel = skin & (facing_y >= lo) & (facing_y < hi)
        out.append(f"skin |n_y| {lo}-{hi}: {(est[sel] == true[sel]).mean():.3f} (n={sel.sum()})")
    return "; ".join(out)


def _load(store: str) -> dict:
    """Estimated classes, the truth in the registered frame and the step's solid/depth."""
    from spectrotomo import io
    from spectrotomo.pipeline._truth_frame import registered_z_shift, truth_in_frame

    truth = io.read_group(store, "truth").load()
    frame = truth_in_frame(truth, registered_z_shift(io.read_group(store, "raw"),
                                                     io.read_group(store, "od")))
    seg = io.read_group(store, "segmentation").load()
    solid = seg["mask"].values & (seg["pores"].values == 0) & (seg["cracks"].values == 0)
    return {"truth": truth, "frame": frame, "est": seg["composition_class"].values,
            "true": frame["composition_class"].values, "solid": solid,
            "depth": seg["depth"].values, "px": float(truth.attrs["pixel_size"]),
            "chem": io.read_group(store, "chemistry").load()}


def _fractions(classes) -> np.ndarray:
    c = classes[classes > 0]
    return np.array([(c == k).mean() for k in (1, 2, 3)]) if c.size else np.zeros(3)


def _score(est, true) -> tuple[float, float]:
    """(class-fraction error sum in pp, voxel agreement), as the report's errors_vs_truth."""
    both = (est > 0) & (true > 0)
    return (100 * float(np.abs(_fractions(est) - _fractions(true)).sum()),
            float((est[both] == true[both]).mean()))


def _edge_distance(true) -> np.ndarray:
    """Distance (voxels) from each classified voxel to the nearest voxel of another class."""
    from scipy import ndimage

    out = np.full(true.shape, np.inf, np.float32)
    for k in (1, 2, 3):
        other = (true > 0) & (true != k)
        if other.any():
            out = np.where(true == k, ndimage.distance_transform_edt(~other), out)
    return out


def where(store: str) -> str:
    """Where a finished run's class errors sit: signed fraction error per class, the
    confusion, agreement and share of the errors by true depth and by distance to the
    nearest voxel of another true class, and the mask's extra/missing voxels."""
    d = _load(store)
    est, true = d["est"], d["true"]
    both = (est > 0) & (true > 0)
    wrong = both & (est != true)
    signed = 100 * (_fractions(est) - _fractions(true))
    conf = np.zeros((4, 4), np.int64)
    np.add.at(conf, (true[both], est[both]), 1)
    lines = ["signed fraction error pp (target, O-poor, O-rich): "
             + " ".join(f"{v:+.2f}" for v in signed),
             "confusion, % of compared voxels (rows true, columns estimated: target, O-poor, "
             "O-rich): " + " | ".join(" ".join(f"{100 * conf[i, j] / both.sum():.2f}"
                                               for j in (1, 2, 3)) for i in (1, 2, 3))]
    depth = d["frame"]["depth"].values / d["px"]
    edge = _edge_distance(true)
    # depth bins [lo, hi); distances (lo, hi] (1 = the voxels touching another class)
    for name, bin_of in (("true depth (vox)", np.digitize(depth, (1, 1.5, 2.5, 4))),
                         ("distance to another class (vox)",
                          np.digitize(edge, (1, 2, 3), right=True))):
        bins = (0, 1, 1.5, 2.5, 4, np.inf) if name.startswith("true") else (0, 1, 2, 3, np.inf)
        parts = []
        for i, (lo, hi) in enumerate(zip(bins[:-1], bins[1:])):
            sel = bin_of == i
            n = int((both & sel).sum())
            parts.append(f"{lo}-{hi}: {(est[both & sel] == true[both & sel]).mean():.3f} "
                         f"(n={n}, {(wrong & sel).sum() / max(wrong.sum(), 1):.0%} of errors)")
        lines.append(f"agreement by {name}: " + "; ".join(parts))
    extra, missing = (est > 0) & (true == 0), (true > 0) & (est == 0)
    lines.append(f"classified outside the true solid: {extra.sum()} voxels (classes "
                 f"{np.bincount(est[extra], minlength=4)[1:].tolist()}); true solid "
                 f"unclassified: {missing.sum()} ({np.bincount(true[missing], minlength=4)[1:].tolist()})")
    return "\n".join(lines)


def ceilings(store: str) -> str:
    """What bounds the agreement: the step's classifier (``class_ratio``, the run's
    ``[segmentation]`` defaults) on the TRUE amounts over the run's own solid and depth
    (smoothing as configured, and none), and how many true labels change when the truth
    moves by one voxel along z (the sub-voxel truth frame's label ambiguity)."""
    from dataclasses import replace

    import xarray as xr
    from scipy import ndimage

    from spectrotomo.pipeline import Config
    from spectrotomo.pipeline.steps.segment import class_ratio
    from spectrotomo.segmentation import composition_classes

    d = _load(store)
    cfg = Config().segmentation
    target = float(d["truth"].attrs["target_tm_o"])
    tol = float(d["truth"].attrs.get("tolerance", cfg.tolerance))
    true_chem = xr.Dataset({"amount": d["frame"]["density"]})
    out = []
    for name, c in (("true amounts, classifier as configured", cfg),
                    ("true amounts, no smoothing", replace(cfg, smoothing_nm=0.0,
                                                           layer_pooling=0.0))):
        ratio, defined = class_ratio(true_chem, d["solid"], d["px"], c, depth=d["depth"])
        cls = np.asarray(composition_classes(ratio, target, tol, mask=defined))
        out.append("{}: {:.2f} pp / {:.3f}".format(name, *_score(cls, d["true"])))
    labels = d["truth"]["composition_class"].values
    up = ndimage.shift(labels, (1, 0, 0), order=0, mode="nearest")
    both = (labels > 0) & (up > 0)
    out.append(f"true labels changed by a 1-voxel z shift: {(labels[both] != up[both]).mean():.3f}")
    return "; ".join(out)


def run_case(out: str, case: str) -> list[str]:
    preset, _, seed = case.partition(":")
    new = f"{out}/{preset}{seed}-new.zarr"
    rows = [_row(case, "new default", *_run(new, preset, int(seed)))]
    later = ["reconstruct", "quantify", "segment", "report"]
    for name, kw in (("old default", dict(joint_kw={"debias_iterations": 0})),
                     ("FBP", dict(algorithm="fbp"))):
        store = f"{out}/{preset}{seed}-{name.split()[0].lower()}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        shutil.copytree(new, store)
        rows.append(_row(case, name, *_run(store, preset, int(seed), steps=later, **kw)))
    return rows + [f"{case} new default: {breakdown(new)}"]


if __name__ == "__main__":
    if sys.argv[1] == "where":
        for store in sys.argv[2:]:
            print(f"## {store}\n{where(store)}\nceilings: {ceilings(store)}", flush=True)
        sys.exit(0)
    print("| case | path | class-fraction error sum (pp) | class voxel agreement | amount bias "
          "O / Mn / Co / Ni (%) | mask IoU | extent z,y,x (vox) | Mn 2D valence MAE | "
          "reconstruct step (s) |\n|---|---|---|---|---|---|---|---|---|", flush=True)
    for c in sys.argv[2:]:
        for line in run_case(sys.argv[1], c):
            print(line, flush=True)
