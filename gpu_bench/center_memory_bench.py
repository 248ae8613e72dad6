"""Work memory of the centre search methods on the mean optical density (issue #19).

tracemalloc peak of ``find_center(mean, angles, method=M)`` beyond its input, for the
methods the pipeline's "auto" picks besides "com": "opposite" (360 deg scans: every
angle has its partner), "vo" (180 deg without the end point), "halves" (limited
angle, the object leaving the field of view). A synthetic mean (balls with voids,
``n_rows`` x ``n`` frames, the object cut by the field of view for "halves").

    python gpu_bench/center_memory_bench.py --method opposite --cols 512 1024 --angles 360 720
    python gpu_bench/center_memory_bench.py --method vo --cols 256 512 --angles 180 360
    python gpu_bench/center_memory_bench.py --method halves --cols 128 256 --angles 131
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np


def _mean(method: str, n_a: int, rows: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean od (angle, rows, n) float32, angles deg) of a particle with voids."""
    if method == "opposite":
        angles = np.linspace(0.0, 360.0, n_a, endpoint=False)
    elif method == "vo":
        angles = np.linspace(0.0, 180.0, n_a, endpoint=False)
    else:
        angles = np.linspace(-65.0, 65.0, n_a)
    radius = 0.3 * n if method != "halves" else 0.6 * n  # halves: leaves the field
    c = (n - 1) / 2.0 + 3.3  # the axis 3.3 px off the detector centre
    th = np.deg2rad(angles)[:, None, None]
    cols = np.arange(n, dtype=np.float32)[None, None, :]
    rr = np.arange(rows, dtype=np.float32)[None, :, None] - rows / 2.0
    od = np.zeros((n_a, rows, n), np.float32)
    rng = np.random.default_rng(0)
    balls = [(0.0, 0.0, radius, 0.01)] + [
        (x, y, r, -0.01) for x, y, r in zip(rng.uniform(-0.2, 0.2, 12) * n,
                                            rng.uniform(-0.2, 0.2, 12) * n,
                                            rng.uniform(0.01, 0.03, 12) * n)]
    for x, y, r, mu in balls:  # a dozen balls, each batched over angles and rows
        u = c + x * np.cos(th) + y * np.sin(th)
        d2 = (cols - u) ** 2 + rr ** 2
        od += np.float32(mu) * 2.0 * np.sqrt(np.maximum(r * r - d2, 0.0)).astype(np.float32)
    return od, angles


def main() -> None:
    from spectrotomo.recon.prep import find_center

    ap = argparse.ArgumentParser()
    ap.add_argument("--method", required=True)
    ap.add_argument("--cols", type=int, nargs="+", default=[256])
    ap.add_argument("--angles", type=int, nargs="+", default=[180])
    ap.add_argument("--rows", type=int, default=32)
    args = ap.parse_args()
    for n in args.cols:
        for n_a in args.angles:
            mean, angles = _mean(args.method, n_a, args.rows, n)
            tracemalloc.start()
            t = time.process_time()
            center = find_center(mean, angles, method=args.method)
            cpu = time.process_time() - t
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"center-work {args.method} {n_a} angles x {args.rows} rows x {n} cols: "
                  f"mean {mean.nbytes / 2**20:.1f} MiB, work peak {peak / 2**20:.0f} MiB "
                  f"({peak / mean.nbytes:.2f}x the mean), centre {center:.3f}, CPU {cpu:.1f} s",
                  flush=True)


if __name__ == "__main__":
    main()
