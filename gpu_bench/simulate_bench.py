"""Benchmark of the ground-truth simulator (CPU).

Times ``simulate.sample(preset)`` end to end, and the Joseph sparse projector
against the ray-sampling projector and ASTRA's CPU 2-D forward projector
(``linear``, one slice at a time) on the same volume in the same run; reports
the maximum optical density of the simulated sample.

    PYTHONPATH=src python gpu_bench/simulate_bench.py --preset demo --nz 32 --n 64
"""

from __future__ import annotations

import numpy as np

import harness


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
    ap = harness.parser(__doc__, quick={"preset": "tiny", "nz": 4, "n": 32})
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--nz", type=int, default=32)
    ap.add_argument("--n", type=int, default=64)
    args = ap.parse_args()
    harness.start(f"simulate_bench: sample({args.preset!r}) and the projector vs ASTRA CPU")

    import spectrotomo.simulate as sim

    angles = np.arange(-65, 66.0)
    vol = np.random.default_rng(0).random((args.nz, args.n, args.n)).astype(np.float32)
    first = harness.once(lambda: sim.project(vol, angles))  # builds the cached matrix
    fast = harness.once(lambda: sim.project(vol, angles))
    slow = harness.once(lambda: sim.project(vol, angles, method="sampled"))
    rows = [["joseph, first call (matrix built)", first.best, first.cpu_best, "-"],
            ["joseph (cached matrix)", fast.best, fast.cpu_best, "1.00x"],
            ["ray-sampling (method='sampled')", slow.best, slow.cpu_best,
             harness.ratio(slow.best, fast.best)]]
    try:
        astra = harness.once(lambda: _astra_project(vol, angles))
        rows.append(["ASTRA CPU linear FP, slice loop", astra.best, astra.cpu_best,
                     harness.ratio(astra.best, fast.best)])
    except ImportError:
        print("ASTRA not installed")
    harness.print_table(["project " + f"{args.nz}x{args.n}x{args.n} x {angles.size} angles",
                         "wall s", "cpu s", "time / joseph"], rows, fmt=".2f")

    # With the default sizes the bench volume (and its 131 angles) differs from the preset's
    # geometry, so sample() builds its own projection matrices: its time is a cold one.
    run = harness.once(lambda: sim.sample(args.preset))
    tree, t_sample, c_sample = run.out, run.best, run.cpu_best
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
