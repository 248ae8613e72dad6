"""The joint limited-angle solver on the host CPU vs its thread count (issue #19).

On the device's 16-core host the demo solve took 7.40 s wall and 27.96 CPU s, against
4.15 s and 7.22 CPU s on a 2-core VM (gpu_bench/RESULTS.recon.md, 2026-12-04): this
times the same solve (demo seed 41, -65..+65 deg, 8 energies) in a fresh process per
setting: ``OMP_NUM_THREADS`` = 1, 2, 4, 8, 16 (host_threads, finufft, the row-block
pool) and 16 with ``OMP_WAIT_POLICY=passive`` (OpenMP threads sleep instead of
spinning). Prints ``CPU joint threads=N ...: X s wall, Y CPU s`` lines.

    python gpu_bench/device/joint_threads.py [--threads 1 2 4 8 16] [--preset demo]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

CHILD = """
import sys, time
sys.path.insert(0, {bench!r})
import limited_angle_bench as L
from spectrotomo.recon import reconstruct_joint
truth, od, mu = L.sample({preset!r}, 41)
reconstruct_joint(od[:, :, :8], L.ANGLES)  # plans, imports: warm-up
best = (1e9, 1e9)
for _ in range(2):
    t, c = time.perf_counter(), time.process_time()
    reconstruct_joint(od, L.ANGLES)
    best = min(best, (time.perf_counter() - t, time.process_time() - c))
print(f"{{best[0]:.2f}} {{best[1]:.2f}}")
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--preset", default="demo")
    args = ap.parse_args()
    bench = str(Path(__file__).resolve().parents[1])
    code = CHILD.format(bench=bench, preset=args.preset)
    settings = [(n, {}) for n in args.threads]
    settings.append((max(args.threads), {"OMP_WAIT_POLICY": "passive"}))
    for n, extra in settings:
        env = {**os.environ, "OMP_NUM_THREADS": str(n), **extra}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=300)
        if out.returncode:
            print(f"CPU joint threads={n} {extra}: failed: {out.stderr.strip()[-300:]}")
            continue
        wall, cpu = (float(v) for v in out.stdout.split()[-2:])
        print(f"CPU joint threads={n} {' '.join(f'{k}={v}' for k, v in extra.items())}: "
              f"{wall:.2f} s wall, {cpu:.2f} CPU s (cpu/wall {cpu / wall:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
