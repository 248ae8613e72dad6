"""Benchmark of the ground-truth simulator (CPU).

Times ``simulate.sample(preset)`` end to end, and the Joseph sparse projector
against the ray-sampling projector and ASTRA's CPU 2-D forward projector
(``linear``, one slice at a time) on the same volume in the same run; reports
the maximum optical density of the simulated sample.

    PYTHONPATH=src python gpu_bench/simulate_bench.py --preset demo --nz 32 --n 64
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _timed(fn, *args, **kw):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0, time.process_time() - c0


def _astra_project(vol, angles_deg):
    import astra

    nz, ny, nx = vol.shape
    vg = astra.create_vol_geom(ny, nx)
    # ASTRA's angle convention differs from ours; timing only, not compared.
    pg = astra.create_proj_geom("parallel", 1.0, nx, np.deg2rad(angles_deg))
    pid = astra.create_projector("linear", pg, vg)
    out = np.empty((nz, len(angles_deg), nx), np.float32)
    for k in range(nz):  # ASTRA CPU is 2-D only
        sid, out[k] = astra.create_sino(vol[k], pid)
        astra.data2d.delete(sid)
    astra.projector.delete(pid)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--nz", type=int, default=32)
    ap.add_argument("--n", type=int, default=64)
    args = ap.parse_args()

    import spectrotomo.simulate as sim
    from spectrotomo.simulate._project import _cached_matrix

    angles = np.arange(-65, 66.0)
    vol = np.random.default_rng(0).random((args.nz, args.n, args.n)).astype(np.float32)
    _, t_first, _ = _timed(sim.project, vol, angles)
    _, t_fast, c_fast = _timed(sim.project, vol, angles)
    _, t_slow, c_slow = _timed(sim.project, vol, angles, method="sampled")
    print(f"project {args.nz}x{args.n}x{args.n} x {angles.size} angles: joseph {t_fast:.2f} s "
          f"(cpu {c_fast:.2f} s; first call incl. matrix {t_first:.2f} s), sampled {t_slow:.2f} s "
          f"(cpu {c_slow:.2f} s): speed-up x{t_slow / t_fast:.1f}")
    try:
        _, t_astra, c_astra = _timed(_astra_project, vol, angles)
        print(f"  ASTRA CPU linear FP, slice loop: {t_astra:.2f} s (cpu {c_astra:.2f} s): "
              f"joseph / astra = {t_fast / t_astra:.2f}")
    except ImportError:
        print("  ASTRA not installed")
    _cached_matrix.cache_clear()

    tree, t_sample, c_sample = _timed(sim.sample, args.preset)
    ts = tree["tilt_series"].to_dataset()
    xanes = tree["xanes"].to_dataset()
    truth = tree["truth"].to_dataset()
    print(f"sample({args.preset!r}): {t_sample:.1f} s wall, {c_sample:.1f} s cpu; "
          f"volume {tuple(truth.sizes[d] for d in 'zyx')} at {truth.attrs['pixel_size']} nm; "
          f"series {dict(ts['projections'].sizes)}; xanes {dict(xanes['projections'].sizes)}")
    print(f"  max OD: tilt series {float(ts['true_od'].max()):.2f}, "
          f"xanes (Mn L white lines) {float(xanes['true_od'].max()):.2f}")
    cls = truth["composition_class"].values
    frac = np.bincount(cls[cls > 0], minlength=4)[1:] / (cls > 0).sum()
    print(f"  class fractions target/O-poor/O-rich: {np.round(frac, 3).tolist()}")


if __name__ == "__main__":
    main()
