"""Peak memory of the preprocess step against the plan, at growing fields (issue #19).

A synthetic raw series (balls: a particle with voids, confined in the field; jitter,
an energy shift, stripes in the gain; Gaussian counting noise, uint16) of
``(energies, angles, N, N)`` is written once per size as a ``raw`` group; the step
then runs alone in a fresh interpreter (``--child``) and reports its peak RSS
(``ru_maxrss``: the whole process, interpreter and imports included), wall and CPU
seconds, beside the plan's ``preprocess`` row for the same shape and limit.

    python gpu_bench/prep_memory_bench.py --sizes 256 512 1024 [--energies 2]
        [--angles 131] [--limit 16] [--dir /tmp/prepmem] [--no-align]

Prints one ``prep-memory`` line per size. Memory of the generator itself: a few
chunks of frames plus the uint16 raw series (2 x 131 x 2048^2: 2.1 GiB).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

_GIB = 2.0**30
#: balls (x, y, z as fractions of the field about its centre, radius fraction,
#: attenuation per px at the two ends of the energy range): a particle and its voids
_BALLS = [(0.0, 0.0, 0.0, 0.30, 0.010, 0.016), (0.08, -0.05, 0.02, 0.06, -0.010, -0.016),
          (-0.10, 0.06, -0.08, 0.04, -0.010, -0.016), (0.02, 0.12, 0.10, 0.05, 0.004, 0.009),
          (-0.05, -0.12, 0.05, 0.03, -0.010, -0.016)]


def _frames(n: int, angles: np.ndarray, jitter: np.ndarray, frac: float) -> np.ndarray:
    """Optical density (k, n, n) float32 of the balls at ``angles`` (deg), jittered by
    ``jitter`` (k, 2) px; ``frac`` in [0, 1] picks the energy's attenuation."""
    c = (n - 1) / 2.0
    th = np.deg2rad(angles)[:, None, None]
    rows = np.arange(n, dtype=np.float32)[None, :, None]
    cols = np.arange(n, dtype=np.float32)[None, None, :]
    od = np.zeros((angles.size, n, n), np.float32)
    for x, y, z, r, mu0, mu1 in _BALLS:  # a handful of balls, each batched over frames
        u = (c + n * (x * np.cos(th) + y * np.sin(th)) + jitter[:, None, None, 1]).astype(np.float32)
        v = np.float32(c + n * z) + jitter[:, None, None, 0].astype(np.float32)
        d2 = (cols - u) ** 2 + (rows - v) ** 2
        chord = 2.0 * np.sqrt(np.maximum(np.float32((r * n) ** 2) - d2, 0.0))
        od += np.float32(mu0 + frac * (mu1 - mu0)) * chord * np.float32(128.0 / n)
    return od


def make_store(store: Path, n: int, n_e: int, n_a: int, seed: int = 0) -> None:
    import xarray as xr

    from spectrotomo import io

    rng = np.random.default_rng(seed)
    angles = np.linspace(-65.0, 65.0, n_a)
    jitter = rng.normal(0.0, 0.5, (n_a, 2))
    gain = (1.0 + 0.01 * rng.standard_normal(n)).astype(np.float32)[None, None, :]
    photons, dark = 2.0e4, 100.0
    proj = np.empty((n_e, n_a, n, n), np.uint16)
    step = 8
    for e in range(n_e):  # energies x chunks of 8 frames: bounded generator memory
        shift = np.array([0.3 * e, -0.2 * e])
        for a in range(0, n_a, step):
            od = _frames(n, angles[a:a + step], jitter[a:a + step] + shift, e / max(1, n_e - 1))
            counts = photons * gain * np.exp(-od)
            counts += np.sqrt(counts) * rng.standard_normal(counts.shape, dtype=np.float32)
            proj[e, a:a + step] = np.clip(counts + dark, 0, 65535).astype(np.uint16)
    flats = np.clip(photons + dark + np.sqrt(photons) * rng.standard_normal((n_e, 3, n, n)),
                    0, 65535).astype(np.uint16)
    darks = np.full((n_e, 2, n, n), dark, np.uint16)
    px = 10.0 * 2048 / n
    ds = xr.Dataset(
        {"projections": (("energy", "angle", "y", "x"), proj),
         "flats": (("energy", "flat", "y", "x"), flats),
         "darks": (("energy", "dark", "y", "x"), darks)},
        coords={"energy": ("energy", np.linspace(640.0, 660.0, n_e), {"units": "eV"}),
                "angle": ("angle", angles, {"units": "deg"}),
                "y": ("y", np.arange(n) * px, {"units": "nm"}),
                "x": ("x", np.arange(n) * px, {"units": "nm"})},
        attrs={"pixel_size": px, "pixel_size_units": "nm"})
    chunks = (1, step, n, n)
    io.write(store, "raw", ds, encoding={"projections": {"chunks": chunks},
                                         "flats": {"chunks": (1, 1, n, n)},
                                         "darks": {"chunks": (1, 1, n, n)}})


_PASSES = ("_pass_normalize", "_registration", "_pass_warp", "_center", "_jitter",
           "_pass_unjitter")


def _rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / _GIB


def _sample_passes(peaks: dict, done, period: float = 0.1) -> None:
    """Largest RSS (GiB) seen in each pass of the step: the main thread's innermost
    frame among ``_PASSES`` names the pass (a sampling thread, ``period`` s)."""
    import threading

    main = threading.main_thread().ident
    while not done.wait(period):
        frame, name = sys._current_frames().get(main), "other"
        while frame is not None:
            if frame.f_code.co_name in _PASSES:
                name = frame.f_code.co_name
                break
            frame = frame.f_back
        peaks[name] = max(peaks.get(name, 0.0), _rss_gib())


def child(store: Path, limit: float, align: bool) -> None:
    """Run the preprocess step on ``store`` and print one JSON line."""
    from spectrotomo.pipeline._config import config_from_dict

    cfg = config_from_dict({"output": {"store": str(store)}, "compute": {"memory_limit_gb": limit},
                            "preprocess": {"align": align}})
    measured_step(cfg, store)


def measured_step(cfg, store: Path) -> None:
    """Run the preprocess step of ``cfg`` on ``store``, sampling the RSS per pass; print
    one JSON line (peak, wall, CPU, the passes' peaks)."""
    import threading

    from spectrotomo.pipeline._context import RunContext
    from spectrotomo.pipeline.steps.preprocess import preprocess

    peaks, done = {"start": _rss_gib()}, threading.Event()
    sampler = threading.Thread(target=_sample_passes, args=(peaks, done), daemon=True)
    sampler.start()
    t, c = time.perf_counter(), time.process_time()
    preprocess(RunContext(config=cfg, store=store, report_dir=store.parent, log=lambda m: None))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    done.set()
    sampler.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / _GIB
    print(json.dumps({"peak_gib": peak, "wall_s": wall, "cpu_s": cpu, "passes": peaks}))


def run_child(script, store: Path, limit: float, no_align: bool) -> dict:
    """``script --child store``'s JSON line (:func:`measured_step`), in a fresh process."""
    cmd = [sys.executable, str(script), "--child", str(store), "--limit", str(limit)]
    out = subprocess.run(cmd + (["--no-align"] if no_align else []), check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def plan_gib(n_e: int, n_a: int, n: int, limit: float) -> tuple[float, int]:
    from spectrotomo._backend import host_threads
    from spectrotomo.pipeline._plan import plan_run, preprocess_in_flight

    k = preprocess_in_flight(n_energies=n_e, n_angles=n_a, ny=n, nx=n, threads=host_threads(),
                             memory_limit_gb=limit)
    row = plan_run(n_energies=n_e, n_angles=n_a, ny=n, nx=n, chunk_rows=16, prep_energies=k)[0]
    return row.peak_bytes / _GIB, k


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--energies", type=int, default=2)
    ap.add_argument("--angles", type=int, default=131)
    ap.add_argument("--limit", type=float, default=16.0)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/prepmem"))
    ap.add_argument("--no-align", action="store_true")
    ap.add_argument("--child", type=Path)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.limit, not args.no_align)
    for n in args.sizes:
        store = args.dir / f"raw_{args.energies}x{args.angles}x{n}.zarr"
        if not (store / "raw").exists():
            make_store(store, n, args.energies, args.angles)
        got = run_child(__file__, store, args.limit, args.no_align)
        plan, k = plan_gib(args.energies, args.angles, n, args.limit)
        print(f"prep-memory {args.energies}x{args.angles}x{n}^2 align={not args.no_align}: "
              f"peak RSS {got['peak_gib']:.2f} GiB, plan {plan:.2f} GiB ({k} energies in flight), "
              f"wall {got['wall_s']:.1f} s, CPU {got['cpu_s']:.1f} s; sampled RSS by pass (GiB): "
              + ", ".join(f"{k} {v:.2f}" for k, v in got["passes"].items()), flush=True)


if __name__ == "__main__":
    main()
