"""One segment or profile step on a store copy, in a fresh process, with the code of SRC.

Usage: python gpu_bench/diagnostics/step_ab.py SRC STORE PRESET STEP [SEED]
(SRC: a ``src`` directory, e.g. ``git archive <commit> src | tar -x -C DIR``: DIR/src).
Deletes the step's output group of STORE first (segmentation / profiles: a COPY of a
complete store), runs ``run_pipeline(cfg, steps=[STEP])`` of ``simulate:PRESET`` and
prints the StepRecord (wall s, CPU s, cpu/wall, peak RSS GiB). Alternate two SRCs for
an A/B (gpu_bench/RESULTS.pipeline.md, session 8).
"""
import shutil, subprocess, sys, time, os
src, store, preset, step = sys.argv[1:5]
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
group = {"segment": "segmentation", "profile": "profiles"}[step]
shutil.rmtree(os.path.join(store, group), ignore_errors=True)
CHILD = r'''
import json, sys, resource
from spectrotomo.pipeline import Config, run_pipeline
cfg = Config(); cfg.input.path = "simulate:%s"; cfg.input.seed = %d
cfg.output.store = "%s"; cfg.output.overwrite = False
res = run_pipeline(cfg, steps=["%s"], report_dir="%s.report", log=lambda m: None)
for r in res.get("records", []):
    print("REC", json.dumps({"name": r.name, "s": round(r.seconds, 2), "cpu": round(r.cpu_seconds, 2), "cw": round(r.cpu_seconds / r.seconds, 2), "rss": round(r.peak_rss_gib, 3), "hwm": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/2**20, 3)}))
'''
env = dict(os.environ, PYTHONPATH=src)
t = time.perf_counter()
p = subprocess.run([sys.executable, "-c", CHILD % (preset, seed, store, step, store)], capture_output=True, text=True, env=env)
for line in p.stdout.splitlines():
    if line.startswith("REC"):
        print(src.split("/")[-2], os.path.basename(store), step, f"total {time.perf_counter()-t:.1f}", line[4:], flush=True)
if p.returncode:
    print("FAILED", p.stderr[-3000:], flush=True); sys.exit(1)
