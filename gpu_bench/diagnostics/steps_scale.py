"""Every pipeline step of simulator presets, each step in a fresh process: wall s, CPU s,
cpu/wall and peak RSS per step, and the peak's ratio between consecutive presets.

This is the "quiet table" of gpu_bench/RESULTS.pipeline.md (issue #19): each step runs as
``run_pipeline(cfg, steps=[step])`` in its own child process on one store per preset, so
a step's peak RSS is its own (imports included) and nothing it leaves behind is counted
for the next. Run it with nothing else on the machine: wall seconds and cpu/wall are only
meaningful quiet. The report step's errors against the simulated truth are printed too.

Usage: python gpu_bench/diagnostics/steps_scale.py OUT [--presets demo large] [--seed 0]
                                                  [--steps acquire preprocess ...]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

_CHILD = r'''
import json
from spectrotomo.pipeline import Config, run_pipeline
cfg = Config(); cfg.input.path = "simulate:{preset}"; cfg.input.seed = {seed}
cfg.output.store = "{store}"; cfg.output.overwrite = False
res = run_pipeline(cfg, steps=["{step}"], report_dir="{report}", log=lambda m: None)
for r in res.get("records", []):
    print("REC", json.dumps({{"s": r.seconds, "cpu": r.cpu_seconds, "gib": r.peak_rss_gib}}))
errors = res.get("summary", {{}}).get("errors_vs_truth")
if errors:
    print("ERR", json.dumps(errors))
'''


def run_step(preset: str, seed: int, out: Path, step: str) -> dict:
    """One step of ``simulate:preset`` in a fresh process: its StepRecord as a dict."""
    code = _CHILD.format(preset=preset, seed=seed, step=step, store=out / "sample.zarr",
                         report=out / "report")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode:
        # the exception lines: zarr's event loop prints pages of "Task was destroyed" after
        raised = [line for line in proc.stderr.splitlines()
                  if re.match(r"^[\w.]+(Error|Exception)\b", line)]
        raise RuntimeError(f"{preset} {step} failed: " + ("\n".join(raised[-3:])
                                                        or proc.stderr[-3000:]))
    rec = {}
    for line in proc.stdout.splitlines():
        if line.startswith("REC "):
            rec.update(json.loads(line[4:]))
        elif line.startswith("ERR "):
            rec["errors"] = json.loads(line[4:])
    return rec


def main(argv=None) -> None:
    from spectrotomo.pipeline import ALL_STEPS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder of one store per preset (made)")
    ap.add_argument("--presets", nargs="+", default=["demo", "large"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", nargs="+", default=list(ALL_STEPS))
    args = ap.parse_args(argv)
    table = {}
    for preset in args.presets:
        out = args.out / preset
        out.mkdir(parents=True, exist_ok=True)
        for step in args.steps:
            rec = run_step(preset, args.seed, out, step)
            table[preset, step] = rec
            print(f"{preset:8s} {step:12s} {rec['s']:8.1f} s {rec['cpu']:8.1f} CPU s "
                  f"{rec['cpu'] / max(rec['s'], 1e-9):5.2f} cpu/wall {rec['gib']:6.3f} GiB",
                  flush=True)
            if "errors" in rec:
                print(f"{preset:8s} errors vs truth: {json.dumps(rec['errors'])[:2000]}")
    print("\n| step | " + " | ".join(f"{p}: s, cpu/wall, GiB" for p in args.presets)
          + "".join(f" | peak {b}/{a}" for a, b in zip(args.presets, args.presets[1:])) + " |")
    print("|---" * (1 + 2 * len(args.presets) - 1) + "|")
    for step in args.steps:
        cells = [table[p, step] for p in args.presets]
        row = [f"{c['s']:.1f}, {c['cpu'] / max(c['s'], 1e-9):.2f}, {c['gib']:.2f}" for c in cells]
        ratios = [f"{b['gib'] / a['gib']:.2f}x" for a, b in zip(cells, cells[1:])]
        print(f"| {step} | " + " | ".join(row + ratios) + " |")
    totals = [sum(table[p, s]["s"] for s in args.steps) for p in args.presets]
    print("| **step time** | " + " | ".join(f"**{t:.1f} s**" for t in totals)
          + " |" * len(args.presets))


if __name__ == "__main__":
    main()
