"""Class accuracy of the limited-angle default path (issue #16): FBP / old default (joint
solver without the Bregman refinement) / new default, one pipeline run each, and where the
new default's class errors lie (depth below the surface, surface facing the missing wedge).

Usage: ``PYTHONPATH=src python gpu_bench/diagnostics/class_accuracy.py OUT_DIR small:11 demo:0 ...``
(one markdown table row per run, then the breakdown lines). The new default runs every step;
the other two reuse its store's input and preprocess groups (copied) and rerun reconstruct,
quantify, segment and report. Step times come from each run's log: noisy on a shared machine.
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
    print("| case | path | class-fraction error sum (pp) | class voxel agreement | amount bias "
          "O / Mn / Co / Ni (%) | mask IoU | extent z,y,x (vox) | Mn 2D valence MAE | "
          "reconstruct step (s) |\n|---|---|---|---|---|---|---|---|---|", flush=True)
    for c in sys.argv[2:]:
        for line in run_case(sys.argv[1], c):
            print(line, flush=True)
