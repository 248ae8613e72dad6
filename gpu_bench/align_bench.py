"""Time per projection: normalisation + ring removal + alignment, spectrotomo vs a peer.

The peer is TomoPy when importable (normalize, minus_log, remove_stripe_fw,
align_joint), otherwise algotom (flat_field_correction, remove_stripe_based_sorting
per sinogram, find_shift_based_phase_correlation of each projection against the
previous one, accumulated -- algotom has no re-projection alignment). Same data,
same run. Accuracy of the recovered jitter is printed beside the times.

    python gpu_bench/align_bench.py --size 64 --angles 131
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _rms_error(est, true, angles):
    theta = np.deg2rad(angles)
    d = est - true
    d[:, 0] -= d[:, 0].mean()
    basis = np.stack([np.ones_like(theta), np.cos(theta), np.sin(theta)], axis=1)
    d[:, 1] -= basis @ np.linalg.lstsq(basis, d[:, 1], rcond=None)[0]
    return np.sqrt((d ** 2).mean(axis=0))


def make_data(size: int, n_angles: int, seed: int):
    from spectrotomo.simulate import Imperfections, particle, tilt_series
    from spectrotomo.spectra import EDGES

    truth = particle("small" if size <= 64 else "demo", seed=0)
    angles = np.linspace(-65.0, 65.0, n_angles)
    ts = tilt_series(truth, energies=[EDGES["Mn"]["above"]], angles=angles,
                     imperfections=Imperfections(jitter_px=1.0, ring_strength=0.02), photons=2e4,
                     seed=seed)
    return (ts.projections.values[0].astype(np.float32), ts.flats.values[0], ts.darks.values[0],
            angles, ts.true_shift.values, float(ts.attrs["true_center"]))


def run_ours(proj, flats, darks, angles, center, iterations):
    from spectrotomo.recon import align_projections, normalize, remove_rings

    t = {}
    t0 = time.perf_counter()
    normalize(proj, flats, darks, zinger_threshold=None)
    t["normalise, no zinger search"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    od, _ = normalize(proj, flats, darks)
    t["normalise"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    od = remove_rings(od)  # the default method, as the pipeline runs it
    t["rings"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, shifts = align_projections(od, angles, center=center, iterations=iterations)
    t["align"] = time.perf_counter() - t0
    return t, shifts


def run_algotom(proj, flats, darks):
    from algotom.prep.calculation import find_shift_based_phase_correlation
    from algotom.prep.correction import flat_field_correction
    from algotom.prep.removal import remove_stripe_based_sorting

    t = {}
    t0 = time.perf_counter()
    trans = flat_field_correction(proj, flats.mean(0), darks.mean(0))
    od = -np.log(np.clip(trans, 1e-6, None))
    t["normalise"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    od = np.stack([remove_stripe_based_sorting(od[:, r], size=5) for r in range(od.shape[1])], 1)
    t["rings"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    steps = np.array([find_shift_based_phase_correlation(od[i - 1], od[i])
                      for i in range(1, od.shape[0])])
    t["align"] = time.perf_counter() - t0
    # Accumulate neighbour shifts; both sign conventions returned, the better one is reported.
    return t, [np.vstack([[0.0, 0.0], np.cumsum(sign * steps, axis=0)]) for sign in (1, -1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="64 (small particle) or 128 (demo)")
    ap.add_argument("--angles", type=int, default=131)
    ap.add_argument("--iterations", type=int, default=10, help="re-projection iterations")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    proj, flats, darks, angles, true, center = make_data(args.size, args.angles, args.seed)
    n = proj.shape[0]
    # Warm-up on a few projections: imports and plans are not per-projection costs.
    run_ours(proj[:8], flats, darks, angles[:8], center, 1)
    run_algotom(proj[:8], flats, darks)
    print(f"data: {proj.shape} (angles, rows, cols), -65..+65 deg, 1 px jitter, rings 2 %")
    ours, s_ours = run_ours(proj, flats, darks, angles, center, args.iterations)
    try:
        import tomopy  # noqa: F401
        print("note: tomopy is importable but only the algotom comparison is implemented")
    except ImportError:
        pass
    peer_name = "algotom"
    peer, s_peers = run_algotom(proj, flats, darks)
    peer["normalise, no zinger search"] = peer["normalise"]
    print(f"{'stage':<30} {'spectrotomo ms/proj':>20} {peer_name + ' ms/proj':>18} "
          f"{'peer/ours':>10}")
    for k in ("normalise, no zinger search", "normalise", "rings", "align"):
        a, b = 1e3 * ours[k] / n, 1e3 * peer[k] / n
        print(f"{k:<30} {a:>20.2f} {b:>18.2f} {b / a:>10.2f}")
    keys = ("normalise", "rings", "align")
    a = 1e3 * sum(ours[k] for k in keys) / n
    b = 1e3 * sum(peer[k] for k in keys) / n
    print(f"{'total (normalise+rings+align)':<30} {a:>20.2f} {b:>18.2f} {b / a:>10.2f}")
    e_o = _rms_error(s_ours, true, angles)
    e_p = min((_rms_error(s, true, angles) for s in s_peers), key=lambda e: e.sum())
    print(f"jitter RMS error (dy, dx) px: spectrotomo {e_o.round(3)}, {peer_name} {e_p.round(3)} "
          f"(1 px before alignment)")


if __name__ == "__main__":
    main()
