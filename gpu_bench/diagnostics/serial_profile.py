"""Where a step's serial work is: every DT s, the CPU time of intervals with fewer than 1.5
threads wanting a core (kernel schedstat, as quiet_estimate.py) is charged to the Python
stack of the thread that ran most (innermost spectrotomo frame | leaf function), counted
only while a pipeline step runs (StepMonitor). Linux only.

Usage (reruns STEP on a copy of the store with GROUPS deleted; WARM=1 runs it once first)::

    PYTHONPATH=src python gpu_bench/diagnostics/serial_profile.py acquire \
        raw,raw_xanes,truth,references /tmp/s4/demo0/sample.zarr 0
"""
import collections, os, shutil, sys, threading, time, traceback
from spectrotomo.pipeline import Config, run_pipeline
DT = 0.01
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quiet_estimate import sample as _sample  # noqa: E402  (per-thread schedstat)
def sample():
    return {int(tid): v for tid, v in _sample().items()}
def where(frame):
    st = traceback.extract_stack(frame)
    sp = [f for f in st if "/spectrotomo/" in f.filename]
    leaf = st[-1]
    a = f"{sp[-1].filename.split('/spectrotomo/')[-1]}:{sp[-1].name}" if sp else "?"
    return f"{a} | {leaf.filename.split('/')[-1]}:{leaf.name}"
C = collections.Counter(); ALL = collections.Counter()
stop = threading.Event()
ACTIVE = [False]
from spectrotomo.pipeline import _monitor
_enter, _exit = _monitor.StepMonitor.__enter__, _monitor.StepMonitor.__exit__
def en(self):
    ACTIVE[0] = True; return _enter(self)
def ex(self, *a):
    ACTIVE[0] = False; return _exit(self, *a)
_monitor.StepMonitor.__enter__, _monitor.StepMonitor.__exit__ = en, ex
def loop():
    me = threading.get_native_id()
    prev = sample(); tp = time.perf_counter()
    while not stop.wait(DT):
        cur = sample(); tc = time.perf_counter(); dt = tc - tp
        d = {k: (cur[k][0] - prev.get(k, (0, 0))[0], cur[k][0] + cur[k][1] - sum(prev.get(k, (0, 0)))) for k in cur if k != me}
        r = sum(v[1] for v in d.values()) * 1e-9 / dt
        run = sum(v[0] for v in d.values()) * 1e-9
        if d and ACTIVE[0]:
            top = max(d, key=lambda k: d[k][0])
            ident = next((t.ident for t in threading.enumerate() if t.native_id == top), None)
            fr = sys._current_frames().get(ident)
            key = where(fr) if fr is not None else f"tid {top} (not Python)"
            ALL[key] += run
            if r < 1.5: C[key] += run
        prev, tp = cur, tc
step, groups = sys.argv[1], sys.argv[2].split(",")
src = sys.argv[3] if len(sys.argv) > 3 else "/tmp/s4/demo0/sample.zarr"
for i in range(1 + int(sys.argv[4]) if len(sys.argv) > 4 else 1):
    C.clear(); ALL.clear()
    dst = f"/tmp/serial-profile-{os.getpid()}.zarr"; shutil.rmtree(dst, ignore_errors=True); shutil.copytree(src, dst)
    for g in groups: shutil.rmtree(f"{dst}/{g}", ignore_errors=True)
    cfg = Config(); cfg.input.path = "simulate:demo"; cfg.output.store = dst
    stop.clear(); t = threading.Thread(target=loop, daemon=True); t.start()
    res = run_pipeline(cfg, steps=[step], log=lambda m: None, report_dir=dst + "-report")
    stop.set(); t.join()
print(res["records"][0].line())
print("serial work total", round(sum(C.values()), 2), "of", round(sum(ALL.values()), 2))
for k, v in C.most_common(25): print(f"{v:6.3f}  {k}")
