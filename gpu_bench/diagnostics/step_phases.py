"""Where a segment / profile step's time and peak memory go, phase by phase.

Usage: PYTHONPATH=src python gpu_bench/diagnostics/step_phases.py STORE PRESET STEP
(STORE: a COPY of a complete store; its output group is deleted first). Runs the step
in this process with a sampler thread (RSS every 5 ms, the process CPU and the threads'
runnable time from /proc/self/task/*/schedstat every 20 ms) and the block-wise stages
wrapped; prints per stage: start, wall, CPU, cpu/wall, runnable threads, RSS at its start
and its highest RSS (MiB), then a 0.5 s timeline. ``run`` (runnable threads: running or
waiting for a core) says what parallelism the code offers whatever the machine's load.
Env: DIAG_WRAP="module:function,..." wraps more; TRIM=1 trims the heap after each
stage; NOTRIM=1 disables the block loops' trim; SEED (default 0).
"""
import sys, os, time, threading, shutil, importlib
store, preset, step = sys.argv[1:4]
group = {"segment": "segmentation", "profile": "profiles"}[step]
shutil.rmtree(os.path.join(store, group), ignore_errors=True)
PAGE = 4096; HZ = os.sysconf("SC_CLK_TCK")
def rss():
    with open("/proc/self/statm") as fh: return int(fh.read().split()[1]) * PAGE
def cpu():
    with open("/proc/self/stat") as fh: f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / HZ
samples = []; stop = False
seen = {}; acc = [0]; first = [True]
def sched():
    init = first[0]; first[0] = False
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as fh: r, w = fh.read().split()[:2]
        except OSError: continue
        if int(tid) == me: continue
        v = int(r) + int(w); acc[0] += v - seen.get(tid, v if init else 0); seen[tid] = v
    return acc[0] * 1e-9
me = None
def sampler():
    global me
    me = threading.get_native_id(); k = 0; last = sched()
    while not stop:
        if k % 4 == 0: last = sched()
        samples.append((time.perf_counter(), rss(), cpu(), last)); time.sleep(0.005); k += 1
phases = []
import ctypes; libc = ctypes.CDLL('libc.so.6'); TRIM = os.environ.get('TRIM') == '1'
def wrap(modname, name):
    m = importlib.import_module(modname); fn = getattr(m, name)
    def w(*a, **k):
        t = time.perf_counter()
        try: return fn(*a, **k)
        finally:
            if TRIM: libc.malloc_trim(0)
            phases.append((f"{modname.split('.')[-1]}.{name}", t, time.perf_counter()))
    setattr(m, name, w)
S = "spectrotomo.segmentation."
for mod, names in {S+"_segment": ["particle_mask_blocks", "_stored", "depth_blocks", "shells_blocks", "levels_blocks", "pore_masks_blocks", "label_blocks", "find_cracks_blocks", "_classes"],
                   S+"_blockseg": ["masked_smooth_blocks", "exact_distance", "label_blocks", "_fill_holes", "feature_distance", "select_kth"],
                   "spectrotomo.pipeline.steps.segment": ["_write_segmentation"],
                   }.items():
    for n in names:
        try: wrap(mod, n)
        except (AttributeError, ImportError) as e: print("skip", mod, n, e)
extra = os.environ.get("DIAG_WRAP", "")
for item in filter(None, extra.split(",")):
    mod, n = item.rsplit(":", 1); wrap(mod, n)
from spectrotomo.pipeline import Config, run_pipeline
if os.environ.get('NOTRIM') == '1':
    import spectrotomo.segmentation._blocks as _b; _b.release_free_memory = lambda: None
cfg = Config(); cfg.input.path = f"simulate:{preset}"; cfg.input.seed = int(os.environ.get("SEED", 0))
cfg.output.store = store; cfg.output.overwrite = False
base = rss(); th = threading.Thread(target=sampler, daemon=True); th.start()
t0, c0 = time.perf_counter(), cpu()
res = run_pipeline(cfg, steps=[step], report_dir=store + ".report", log=lambda m: None)
stop = True; th.join()
import numpy as np
s = np.array(samples)
r = res["records"][0]
w_all = s[-1,0]-s[0,0]; print(f"runnable/wall {(s[-1,3]-s[0,3])/w_all:.2f}")
print(f"{step} {store}: wall {time.perf_counter()-t0:.1f} cpu {cpu()-c0:.1f} base {base/2**30:.3f} GiB peak {s[:,1].max()/2**30:.3f} GiB record {r.peak_rss_gib:.3f}")
print(f"{'phase':34s} {'start':>6s} {'wall':>6s} {'cpu':>6s} {'c/w':>5s} {'run':>5s} {'rssIn':>6s} {'peak':>6s} MiB")
for name, a, b in sorted(phases, key=lambda p: p[1]):
    sel = (s[:,0] >= a) & (s[:,0] <= b)
    if sel.sum() < 2: continue
    ss = s[sel]; w = ss[-1,0]-ss[0,0]; c = ss[-1,2]-ss[0,2]; rn = ss[-1,3]-ss[0,3]
    print(f"{name:34s} {a-t0:6.2f} {b-a:6.2f} {c:6.2f} {c/max(w,1e-9):5.2f} {rn/max(w,1e-9):5.2f} {ss[0,1]/2**20:6.0f} {ss[:,1].max()/2**20:6.0f}")
# timeline: 0.5 s buckets
print("timeline (t, cpu/wall, rss MiB, active phases)")
T = s[-1,0]; b = s[0,0]
while b < T:
    sel = (s[:,0] >= b) & (s[:,0] < b+0.5)
    if sel.sum() > 1:
        ss = s[sel]; cw = (ss[-1,2]-ss[0,2])/max(ss[-1,0]-ss[0,0],1e-9); rn = (ss[-1,3]-ss[0,3])/max(ss[-1,0]-ss[0,0],1e-9)
        act = [n.split(".")[-1] for n, a, e in phases if a < b+0.5 and e > b]
        print(f"{b-t0:6.1f} {cw:4.2f} {rn:4.2f} {ss[:,1].max()/2**20:6.0f} {' '.join(act)}")
    b += 0.5
