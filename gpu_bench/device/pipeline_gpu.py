"""The demo pipeline end to end with reconstruction on the GPU, vs the same on the CPU.

For the device machine (``run_checks.sh``), issues #16 and #19: one ``simulate:<preset>``
run with ``[compute] device = "gpu"`` (the default ``auto`` algorithm: the joint
limited-angle solver on cupy) and, unless ``--gpu-only``, the same config with
``device = "cpu"`` in the same process; per step wall/CPU seconds side by side, the
errors against the truth of both, and the GPU memory: the peak of cupy's pool during
the reconstruct step (a counting allocator around the default pool) against the
plan's ``GPU/task`` row (``pipeline._run.plan_for``).

    python gpu_bench/device/pipeline_gpu.py [--preset demo] [--seed 7] [--out DIR]
        [--gpu-only]

Prints ``GPU pipeline ...`` lines (summary.txt picks them up). Exit 0 without a device
(says so): the script is also run by ``DRY_RUN=1 run_checks.sh`` on a CPU machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from spectrotomo._backend import cupy_available
from spectrotomo.pipeline import ALL_STEPS, Config, run_pipeline
from spectrotomo.pipeline._run import _input_shape, plan_for

_GIB = 2.0**30


class PeakPool:
    """cupy allocator counting the default pool's peak of bytes in use."""

    def __init__(self, cupy):
        self.cupy = cupy
        self.pool = cupy.get_default_memory_pool()
        self.peak = 0

    def malloc(self, size):
        mem = self.pool.malloc(size)
        self.peak = max(self.peak, self.pool.used_bytes())
        return mem

    def reset(self):
        self.peak = self.pool.used_bytes()


def config_for(preset: str, seed: int, out: Path, device: str) -> Config:
    cfg = Config()
    cfg.input.path = f"simulate:{preset}"
    cfg.input.seed = seed
    cfg.output.store = str(out / f"{device}.zarr")
    cfg.output.overwrite = False  # a fresh directory; one step per call, resumed
    cfg.compute.device = device
    return cfg


def run_one(cfg: Config, out: Path, device: str, pool: PeakPool | None) -> dict:
    records, peaks, summary = {}, {}, {}
    t = time.perf_counter()
    for step in ALL_STEPS:
        if pool is not None:
            pool.reset()
        res = run_pipeline(cfg, steps=[step], report_dir=out / f"{device}-report",
                           log=lambda m: None)
        for rec in res.get("records", []):
            records[rec.name] = rec
        if pool is not None:
            peaks[step] = pool.peak
        if step == "report":
            summary = res.get("summary", {})
    return {"records": records, "peaks": peaks, "wall": time.perf_counter() - t,
            "errors": summary.get("errors_vs_truth", {})}


def flat(errors: dict) -> dict:
    out = {}
    for k, v in errors.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items() if isinstance(vv, (int, float))})
        elif isinstance(v, (int, float)):
            out[k] = v
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--gpu-only", action="store_true")
    args = ap.parse_args()
    if not cupy_available():
        print("no CUDA device: GPU pipeline skipped")
        return 0
    import cupy

    out = args.out or Path(tempfile.mkdtemp(prefix="spectrotomo-gpu-pipeline-"))
    pool = PeakPool(cupy)
    cupy.cuda.set_allocator(pool.malloc)
    runs = {"gpu": run_one(config_for(args.preset, args.seed, out, "gpu"), out, "gpu", pool)}
    if not args.gpu_only:
        runs["cpu"] = run_one(config_for(args.preset, args.seed, out, "cpu"), out, "cpu", None)

    print(f"\n{args.preset} seed {args.seed}: step | " + " | ".join(
        f"{d} wall s, CPU s" for d in runs))
    for step in runs["gpu"]["records"]:
        cells = []
        for d in runs:
            r = runs[d]["records"].get(step)
            cells.append("-" if r is None else f"{r.seconds:.2f}, {r.cpu_seconds or 0:.2f}")
        print(f"  {step:<12} | " + " | ".join(cells))
    for d in runs:
        steps = sum(r.seconds for r in runs[d]["records"].values())
        print(f"GPU pipeline {args.preset} s{args.seed} device={d}: steps {steps:.1f} s "
              f"(run {runs[d]['wall']:.1f} s), reconstruct "
              f"{runs[d]['records']['reconstruct'].seconds:.2f} s")

    cfg = config_for(args.preset, args.seed, out, "gpu")
    shape, n_xanes = _input_shape(cfg, Path(cfg.output.store))
    plan = {row.step: row for row in plan_for(cfg, shape, n_xanes)}
    planned = plan["reconstruct"].gpu_bytes
    peak = runs["gpu"]["peaks"]["reconstruct"]
    print(f"GPU pipeline memory: reconstruct peak {peak / _GIB:.3f} GiB (cupy pool in use) vs "
          f"plan GPU/task {planned / _GIB:.3f} GiB ({peak / planned:.2f} of plan); "
          "other steps' peaks " + ", ".join(
              f"{s} {b / _GIB:.3f}" for s, b in runs["gpu"]["peaks"].items() if s != "reconstruct"))

    errs = {d: flat(runs[d]["errors"]) for d in runs}
    keys = [k for k in errs["gpu"] if "_truth." not in k]
    print("\nerrors vs truth: key | " + " | ".join(runs))
    for k in keys:
        print(f"  {k:<40} | " + " | ".join(
            f"{errs[d].get(k, float('nan')):.4g}" for d in runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
