"""Estimate a step's wall and cpu/wall on two idle cores from a run on a loaded machine.

Every thread's schedstat (run ns, run-queue wait ns) is sampled every DT s; per interval,
work w = run delta and threads wanting a core r = (run + wait delta) / dt; on idle cores
the interval would take w / min(cores, max(r, 1)). Crude under heavy load: unfair
scheduling lets one of two equal halves finish early, which reads as serial work (the
estimate is then pessimistic). Linux only.

Usage (reruns STEP on a copy of the store with GROUPS deleted; TAG names the copy)::

    PYTHONPATH=src python gpu_bench/diagnostics/quiet_estimate.py preprocess od 2 \
        /tmp/s4/demo0/sample.zarr TAG
"""
import os, shutil, sys, threading, time
from spectrotomo.pipeline import Config, run_pipeline
CORES, DT = 2, 0.02
def sample():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as fh: run, wait = map(int, fh.read().split()[:2])
        except OSError: continue
        out[tid] = (run, wait)
    return out
class Quiet:
    def __enter__(self):
        self.stop = threading.Event(); self.rows = []; self.me = None
        self.t = threading.Thread(target=self.loop, daemon=True); self.t.start(); return self
    def loop(self):
        self.me = str(threading.get_native_id())
        prev, tp = sample(), time.perf_counter()
        while not self.stop.wait(DT):
            cur, tc = sample(), time.perf_counter()
            dt = tc - tp
            run = sum(cur[k][0] - prev.get(k, (0, 0))[0] for k in cur if k != self.me) * 1e-9
            rw = sum(cur[k][0] + cur[k][1] - sum(prev.get(k, (0, 0))) for k in cur if k != self.me) * 1e-9
            self.rows.append((dt, run, rw / dt)); prev, tp = cur, tc
    def __exit__(self, *a):
        self.stop.set(); self.t.join()
        work = sum(r[1] for r in self.rows)
        quiet = sum(r[1] / min(CORES, max(r[2], 1.0)) for r in self.rows)
        serial = sum(r[1] for r in self.rows if r[2] < 1.5)
        self.summary = f"work {work:5.2f} CPU s  est. quiet wall {quiet:5.2f} s  cpu/wall {work / max(quiet, 1e-9):4.2f}  work with <1.5 threads wanting a core {serial:4.2f} s"
def main():
    step, groups = sys.argv[1], sys.argv[2].split(",")
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    src = sys.argv[4] if len(sys.argv) > 4 else "/tmp/s4/demo0/sample.zarr"
    tag = sys.argv[5] if len(sys.argv) > 5 else str(os.getpid())
    for i in range(n):
        dst = f"/tmp/quiet-estimate-{tag}.zarr"; shutil.rmtree(dst, ignore_errors=True); shutil.copytree(src, dst)
        for g in groups: shutil.rmtree(f"{dst}/{g}", ignore_errors=True)
        cfg = Config(); cfg.input.path = "simulate:demo"; cfg.output.store = dst
        with Quiet() as q:
            res = run_pipeline(cfg, steps=[step], log=lambda m: None, report_dir=dst + "-report")
        print(res["records"][0].line(), "|", q.summary, flush=True)


if __name__ == "__main__":
    main()
