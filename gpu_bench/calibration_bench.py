"""Energy calibration of the XANES fit: references offset from the scan by +-0.5 eV.

For each seed and true offset the simulator's 2D Mn L XANES scan (``simulate.sample``,
25 energies, Poisson noise, mild imperfections, 0.2 eV extra Gaussian broadening) gets
the references of ``spectra.builtin_references`` moved by ``offset`` eV; the
pipeline's ``valence`` step (normalize_edge_step, register the energies, absolute LCF) then
runs with ``[spectra] energy_offset`` =

- ``aligned``: the true offset (the references moved exactly onto the scan's scale),
- ``ignored``: 0 (the references as they are: what the project did before),
- ``fitted``: ``"fit"`` (``spectra.fit_energy_offset``, +-1.5 eV grid + Brent),

and the report's ``mn_valence_mae`` (2D valence vs the thickness-weighted truth, thick
pixels) and ``energy_offset_ev`` are printed. Targets (issue #16): fitted offset
within 0.05 eV of the truth, MAE(fitted) within 0.01 of MAE(aligned).

Usage: ``PYTHONPATH=src python gpu_bench/calibration_bench.py OUT_DIR [--preset small]
[--seeds 101 102 103] [--offsets -0.5 0.5] [--quick]`` (``--quick``: seed 101, +0.5 eV).
No peer: the comparison is the same fit with the true offset (aligned) in the same run.
"""

from __future__ import annotations

import time

import harness


def _simulate_store(store, preset, seed, offset):
    """The simulated input groups, calibration offset ``offset`` eV, in ``store``."""
    from spectrotomo import io
    from spectrotomo.simulate import SCAN_CALIBRATION, Calibration, sample

    calibration = Calibration(energy_offset_ev=offset,
                              broadening_ev=SCAN_CALIBRATION.broadening_ev)
    tree = sample(preset, seed=seed, calibration=calibration)
    for child, group in (("truth", "truth"), ("xanes", "raw_xanes"),
                         ("references", "references"), ("tilt_series", "raw")):
        io.write(store, group, tree[child].to_dataset(inherit=False), overwrite=True)


def _valence_errors(store, energy_offset) -> dict:
    """The pipeline's valence step, then the report's errors against the truth."""
    from spectrotomo.pipeline import Config, run_pipeline
    from spectrotomo.pipeline.steps.report import truth_errors

    cfg = Config()
    cfg.output.store, cfg.output.figures, cfg.output.overwrite = str(store), False, True
    cfg.spectra.energy_offset = energy_offset
    t0 = time.perf_counter()
    run_pipeline(cfg, steps=["valence"], log=lambda m: None)
    seconds = time.perf_counter() - t0
    err = truth_errors(store)
    return {"mae": err["mn_valence_mae"], "offset": err.get("energy_offset_ev"),
            "seconds": seconds}


def main() -> None:
    ap = harness.parser(__doc__, quick={"seeds": [101], "offsets": [0.5]})
    ap.add_argument("out")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    ap.add_argument("--offsets", type=float, nargs="+", default=[-0.5, 0.5])
    args = ap.parse_args()
    harness.start(f"calibration_bench: energy offset of the references, {args.preset}, "
                  f"seeds {args.seeds}, offsets {args.offsets} eV")
    print("| preset | seed | true offset eV | fitted eV | error eV | MAE aligned | MAE ignored "
          "| MAE fitted | fitted - aligned | valence step s aligned / fitted |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    worst_offset, worst_mae = 0.0, 0.0
    for seed in args.seeds:
        for offset in args.offsets:
            store = f"{args.out}/{args.preset}-{seed}-{offset:+.2f}.zarr"
            _simulate_store(store, args.preset, seed, offset)
            rows = {name: _valence_errors(store, value)
                    for name, value in (("aligned", offset), ("ignored", 0.0), ("fitted", "fit"))}
            fitted = rows["fitted"]["offset"]
            d_mae = rows["fitted"]["mae"] - rows["aligned"]["mae"]
            worst_offset = max(worst_offset, abs(fitted - offset))
            worst_mae = max(worst_mae, abs(d_mae))
            print(f"| {args.preset} | {seed} | {offset:+.2f} | {fitted:+.3f} | "
                  f"{fitted - offset:+.3f} | {rows['aligned']['mae']:.4f} | "
                  f"{rows['ignored']['mae']:.4f} | {rows['fitted']['mae']:.4f} | {d_mae:+.4f} | "
                  f"{rows['aligned']['seconds']:.1f} / {rows['fitted']['seconds']:.1f} |",
                  flush=True)
    print(f"\nworst |fitted - true| = {worst_offset:.3f} eV (target <= 0.05): "
          f"{'met' if worst_offset <= 0.05 else 'UNMET'}")
    print(f"worst |MAE fitted - MAE aligned| = {worst_mae:.4f} (target <= 0.01): "
          f"{'met' if worst_mae <= 0.01 else 'UNMET'}")


if __name__ == "__main__":
    main()
