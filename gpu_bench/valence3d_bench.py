"""3D valence of a XANES tomography: joint limited-angle solver vs per-energy FBP, both
followed by the per-voxel LCF of the valence3d step, in the same run.

For each seed, ``simulate:xanes3d`` (the small particle, 64^3 voxels of 20 nm; 25
energies across Mn L3/L2 at each of 131 angles, -65..+65 deg; 2e4 photons; the
simulator's mild imperfections) is acquired and preprocessed once with the template's
defaults; the store is copied, and each copy runs reconstruct -> valence3d ->
segment -> profile -> report, one with ``[reconstruct] algorithm = "auto"`` (the joint
solver at this range, in ``[reconstruct] xanes_components`` spectral components, with
``XANES_SOLVER_OPTIONS``), one with ``"fbp"`` (the baseline: per-energy FBP + per-voxel
LCF). Printed per seed and method: the interior Mn valence MAE (``errors_vs_truth``:
voxels > 3 voxels deep, fully solid, no pore or crack, that the quality mask trusts;
the truth moved into the registered frame), the same MAE with the reconstruction moved
into the truth's frame instead and refitted (``_registered_mae``, a check: the reference
energy's simulated drift along the rotation axis removed, up to ~1 voxel),
the trusted fraction of those interior voxels, the mean signed error, the fitted minus
true energy offset of the references (the simulator's scans are offset +0.3 eV and
broadened 0.2 eV from the builtin references: no inverse crime), the particle-mask IoU
and the reconstruct / valence3d step times (s, noisy on a shared machine).
Target (issue 16): joint MAE <= 0.04 at 2e4 photons.

Seeds 91, 113, 149, 211 and 307: held out (no test or other benchmark uses them, nor any
tuning). ``XANES_SOLVER_OPTIONS`` were tuned on xanes3d seeds 0, 1, 23 and 57 (tests:
xanes3d-tiny seed 0).

Example::

    PYTHONPATH=src python gpu_bench/valence3d_bench.py            # 3 held-out seeds, ~8 min idle
    PYTHONPATH=src python gpu_bench/valence3d_bench.py --quick    # xanes3d-tiny, 1 seed
    PYTHONPATH=src python gpu_bench/valence3d_bench.py --methods auto,full,fbp
        # full: the joint solve in all 25 energies' components (before fit-then-reconstruct)
    PYTHONPATH=src python gpu_bench/valence3d_bench.py --methods auto,nosupport,fbp
        # nosupport: the joint solve without the coarse-level support (support_fraction None)
"""

from __future__ import annotations

import shutil
import tempfile
from unittest import mock
from pathlib import Path

import numpy as np

import harness

TARGET_MAE = 0.04
STEPS = ("reconstruct", "valence3d", "segment", "profile", "report")


def _config(store: Path, preset: str, seed: int, algorithm: str,
            xanes_components: int | None = None):
    from spectrotomo.pipeline import Config

    cfg = Config()
    cfg.input.path = f"simulate:{preset}"
    cfg.input.seed = seed
    cfg.output.store = str(store)
    cfg.output.figures = False
    cfg.reconstruct.algorithm = algorithm
    if xanes_components is not None:
        cfg.reconstruct.xanes_components = xanes_components
    return cfg


def _mn_deviation(fit, truth) -> np.ndarray:
    """Estimated - true Mn valence over the interior voxels (> 3 voxels deep, fully
    solid, no pore or crack) that ``fit``'s quality mask trusts: the report's rule."""
    px = float(truth.attrs["pixel_size"])
    inner = ((truth["depth"].values > 3 * px) & (truth["occupancy"].values > 0.99)
             & ~truth["void"].values & ~truth["crack"].values)
    est = fit["valence"].sel(element="Mn").values
    ok = inner & fit["quality_mask"].sel(element="Mn").values & np.isfinite(est)
    return est[ok] - truth["valence"].sel(element="Mn").values[ok]


def _signed_error(store: Path) -> float:
    """Mean estimated - true Mn valence over the same voxels as the MAE."""
    from spectrotomo import io

    truth = io.read_group(store, "truth").load()
    return float(_mn_deviation(io.read_group(store, "valence3d").load(), truth).mean())


def _registered_mae(store: Path) -> float:
    """Interior Mn valence MAE with the reconstruction moved into the truth's frame.

    The energies are registered onto one reference energy, so the volume sits where
    that energy's (simulated, per-energy) drift put it: along the rotation axis (rows,
    z) nothing in the data fixes it, and the simulator draws up to ~1 voxel. The
    report's MAE counts that global offset as error; here ``recon/mu`` is moved back
    by the reference energy's true row shift (cubic spline) and refitted with the
    step's fitted energy offset (same interior and quality rule as the report)."""
    from scipy import ndimage

    from spectrotomo import io, spectra

    od, raw = io.read_group(store, "od"), io.read_group(store, "raw")
    dy = float(raw["true_energy_shift"].values[int(od.attrs["registration_reference"]), 0])
    mu = io.read_group(store, "recon")["mu"].load()
    mu = mu.copy(data=ndimage.shift(mu.values, (0, -dy, 0, 0), order=3, mode="nearest"))
    v3d = io.read_group(store, "valence3d")
    offset = float(v3d.attrs["energy_offset_ev"][list(v3d["element"].values).index("Mn")])
    fit = spectra.valence_maps(mu, spectra.builtin_references(None, normalized=False),
                               elements=["Mn"], energy_offset=offset)
    truth = io.read_group(store, "truth").load()
    return float(np.abs(_mn_deviation(fit, truth)).mean())


METHODS = {  # name: (algorithm, [reconstruct] xanes_components (None: default), label,
    #               XANES_SOLVER_OPTIONS overrides for this run (a diagnostic A/B))
    "auto": ("auto", None, "joint solver + LCF", {}),
    "full": ("auto", 10**6, "joint solver, all energies' components + LCF", {}),
    "nosupport": ("auto", None, "joint solver, no support + LCF", {"support_fraction": None}),
    "fbp": ("fbp", None, "per-energy FBP + LCF", {}),
}


def run_seed(root: Path, preset: str, seed: int, methods=("auto", "fbp"),
             prep_dir: Path | None = None) -> list[list]:
    """Rows of the table for one seed; ``prep_dir``: reuse (or keep) its acquired and
    preprocessed store ``s<seed>-prep.zarr`` (the two steps do not depend on the
    reconstruct options compared here)."""
    from spectrotomo.pipeline import run_pipeline
    from spectrotomo.pipeline.steps.reconstruct import XANES_SOLVER_OPTIONS

    quiet = lambda m: None  # noqa: E731
    base = (prep_dir or root) / f"s{seed}-prep.zarr"
    if not base.exists():
        run_pipeline(_config(base, preset, seed, "auto"), steps=["acquire", "preprocess"],
                     log=quiet)
    rows = []
    for method in methods:
        algorithm, components, label, overrides = METHODS[method]
        store = root / f"s{seed}-{method}.zarr"
        shutil.copytree(base, store)
        # in-process run: the override reaches joint_options() and is undone after
        with mock.patch.dict(XANES_SOLVER_OPTIONS, overrides):
            result = run_pipeline(_config(store, preset, seed, algorithm, components),
                                  steps=list(STEPS),
                                  report_dir=root / f"s{seed}-{method}-report", log=quiet)
        errors = result["summary"]["errors_vs_truth"]
        seconds = {r.name: r.seconds for r in result["records"]}
        rows.append([seed, label, errors["mn_valence3d_mae"], _registered_mae(store),
                     errors["mn_valence3d_coverage"],
                     _signed_error(store), errors.get("valence3d_energy_offset_error_ev"),
                     errors["mask_iou"], seconds["reconstruct"], seconds["valence3d"]])
    return rows


def main() -> None:
    ap = harness.parser(__doc__, quick={"preset": "xanes3d-tiny", "seeds": [23]})
    ap.add_argument("--preset", default="xanes3d", help="simulate:PRESET (xanes3d*)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[91, 113, 211])
    ap.add_argument("--methods", default="auto,fbp",
                    help=f"comma-separated, of {', '.join(METHODS)} (full: the joint solve in "
                         "every energy's component, no fit-then-reconstruct truncation)")
    ap.add_argument("--prep-dir", type=Path, default=None,
                    help="keep / reuse each seed's preprocessed store here")
    args = ap.parse_args()
    harness.start(f"valence3d: joint solver vs per-energy FBP, simulate:{args.preset}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="valence3d-bench-") as tmp:
        for seed in args.seeds:
            rows += run_seed(Path(tmp), args.preset, seed, args.methods.split(","),
                             prep_dir=args.prep_dir)
    harness.print_table(["seed", "method", "Mn valence MAE", "MAE in truth frame",
                         "interior trusted",
                         "mean error", "offset error eV", "mask IoU", "reconstruct s",
                         "valence3d s"], rows,
                        fmt=".3g", title="interior Mn valence vs truth")
    joint = [r[2] for r in rows if r[1] == METHODS["auto"][2]]  # the default
    fbp = [r[2] for r in rows if r[1] == METHODS["fbp"][2]]
    framed = [r[3] for r in rows if r[1] == METHODS["auto"][2]]
    if not joint:
        return
    print(f"\njoint MAE per seed {[round(v, 4) for v in joint]}, FBP baseline "
          f"{[round(v, 4) for v in fbp]}; ratio FBP/joint "
          f"{[harness.ratio(f, j) for f, j in zip(fbp, joint)]}")
    print(f"target joint MAE <= {TARGET_MAE}: "
          f"{'met' if max(joint) <= TARGET_MAE else 'unmet'} (worst {max(joint):.4f}); in the "
          f"truth's frame {'met' if max(framed) <= TARGET_MAE else 'unmet'} "
          f"(worst {max(framed):.4f})")


if __name__ == "__main__":
    main()
