"""Rotation-axis search: error (px) and time per ``find_center`` method, limited angle.

Data: ``simulate.tilt_series`` of the small (64 px) or demo (128 px) particle,
-65..+65 deg in 1 deg steps, Mn L3 post-edge, 2e4 photons, normalized to
optical density; axis offsets +2.4 and -3.7 px from the detector centre.
Cases: (a) untruncated; (b) columns cut on one side (the particle's caps stay
inside the field of view); (c) truncated in every row: only the middle rows
kept and columns cut on one side, or (c2) on both sides (a field narrower
than the particle); (d) a smooth ball (no internal structure), untruncated
and cut; (e) a 0..179 deg scan as a sanity check, with algotom's
``find_center_vo`` as a peer where algotom imports. No peer implements a
limited-angle axis search, so the limited-angle rows compare this package's
methods only. ``n/a``: the method refused the data (ValidationError). Prints
a markdown table.

    python gpu_bench/center_bench.py --preset small
    python gpu_bench/center_bench.py --preset demo
    python gpu_bench/center_bench.py --sweep    # other particles and angle sets, small

``--sweep``: particle seeds 1-3 (the tables use seed 0), each with four angle
sets (+-65 deg at 1 and 2 deg steps, +-45 at 1, +-60 at 3) and a random axis
offset in +-5 px, truncated in every row as case (c2); then "halves" against
``n_rows`` with all rows present and columns 8-56 kept.
"""

from __future__ import annotations

import numpy as np

import harness

METHODS = ("auto", "com", "halves", "consistency", "sharpness")
LIMITED = np.arange(-65.0, 66.0)


def particle_od(truth, angles, offset, seed=1):
    """(od (A, rows, cols) float32, true axis column) of the particle at Mn L3 post-edge."""
    from spectrotomo.recon.prep import normalize
    from spectrotomo.simulate import Imperfections, tilt_series
    from spectrotomo.spectra import EDGES

    ts = tilt_series(truth, energies=[EDGES["Mn"]["above"]], angles=angles,
                     imperfections=Imperfections(center_offset_px=offset), photons=2e4, seed=seed)
    od, _ = normalize(ts.projections.values[0], ts.flats.values[0], ts.darks.values[0])
    return od, float(ts.attrs["true_center"])


def ball_od(n, angles, offset, seed=1):
    """A smooth ball of radius 0.37 n, 16 rows, 1 % noise, axis offset by ``offset``."""
    from spectrotomo.simulate import ball, project

    shape = (16, n, n)
    vol = 0.03 * ball(shape, 0.37 * n, center=(7.5, (n - 1) / 2 + 3, (n - 1) / 2 - 2))
    true = (n - 1) / 2 + offset
    od = project(vol.astype(np.float32), angles, center=true)
    od = od + 0.01 * float(od.max()) * np.random.default_rng(seed).standard_normal(od.shape)
    return od.astype(np.float32), true


def cut(od, true, cols=None, rows=None):
    """Crop columns ``cols = (start, stop)`` and rows; the axis column moves with the crop."""
    c0, c1 = cols if cols is not None else (0, od.shape[-1])
    r0, r1 = rows if rows is not None else (0, od.shape[1])
    return od[:, r0:r1, c0:c1], true - c0


def confined_rows(od, edge=2, frac=0.02, min_mass=0.1) -> int:
    """Rows whose slice stays inside the field at every angle, by the rule of find_center's
    "com" (angle-mean profile ~0 at both detector edges, >= 10 % of the heaviest row's
    mass): the column that says how truncated a case is."""
    mean = np.abs(od).mean(axis=0)
    border = np.maximum(mean[:, :edge].max(axis=1), mean[:, -edge:].max(axis=1))
    mass = mean.sum(axis=1)
    return int(((border <= frac * mean.max()) & (mass >= min_mass * mass.max())).sum())


def run(method, od, angles):
    """(centre or None when refused, seconds, method used; "!" marks auto's warned fallback)."""
    import warnings

    from spectrotomo import ValidationError
    from spectrotomo.recon.prep import find_center

    def attempt():
        try:
            return find_center(od, angles, method=method, return_metric=True)
        except ValidationError:
            return None, None

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = harness.once(attempt)
    c, scores = t.out
    return c, t.best, "-" if c is None else scores.method + ("!" if caught else "")


def sweep():
    """Case (c2) of the small preset over particle seeds and angle sets."""
    from spectrotomo.simulate import particle

    rng = np.random.default_rng(7)
    print("\n| particle seed | angles (deg) | offset (px) | confined | auto | halves |")
    print("|---:|---|---:|---:|---:|---:|")
    for seed in (1, 2, 3):
        truth = particle("small", seed=seed)
        for span, step in ((65, 1.0), (65, 2.0), (45, 1.0), (60, 3.0)):
            angles = np.arange(-span, span + 0.1, step)
            off = rng.uniform(-5, 5)
            od, true = cut(*particle_od(truth, angles, off, seed=seed + 10), cols=(8, 56),
                           rows=(20, 44))
            cells = []
            for m in ("auto", "halves"):
                c, t, used = run(m, od, angles)
                cells.append(("n/a" if c is None else f"{c - true:+.2f}") + f" ({t:.1f} s)"
                             + (f" [{used}]" if m == "auto" else ""))
            print(f"| {seed} | {-span:.0f}..{span:.0f} step {step:.0f} | {off:+.2f} | "
                  f"{confined_rows(od)} | " + " | ".join(cells) + " |", flush=True)
    rows_sweep(rng)


def rows_sweep(rng):
    """"halves" error against n_rows: all 64 rows present, columns 8-56 (middle rows cut)."""
    from spectrotomo import ValidationError
    from spectrotomo.recon.prep import find_center
    from spectrotomo.simulate import particle

    counts = (8, 16, 24, 48)
    print("\n| particle seed | angles (deg) | offset (px) | "
          + " | ".join(f"halves, n_rows={k}" for k in counts) + " |")
    print("|---:|---|---:|" + "---:|" * len(counts))
    for seed in (1, 2, 3):
        truth = particle("small", seed=seed)
        for step in (1.0, 2.0):
            angles = np.arange(-65.0, 65.1, step)
            off = rng.uniform(-5, 5)
            od, true = cut(*particle_od(truth, angles, off, seed=seed + 10), cols=(8, 56))
            cells = []
            for k in counts:
                try:
                    cells.append(f"{find_center(od, angles, method='halves', n_rows=k) - true:+.2f}")
                except ValidationError:
                    cells.append("n/a")
            print(f"| {seed} | -65..65 step {step:.0f} | {off:+.2f} | " + " | ".join(cells) + " |",
                  flush=True)


def main():
    from spectrotomo.simulate import particle

    ap = harness.parser(__doc__, quick={"offsets": [2.4], "methods": ["auto", "com"]})
    ap.add_argument("--preset", default="small", choices=["small", "demo"])
    ap.add_argument("--sweep", action="store_true", help="other particle seeds and angle sets")
    ap.add_argument("--offsets", type=float, nargs="+", default=[2.4, -3.7],
                    help="axis offsets from the detector centre, px")
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    args = ap.parse_args()
    harness.start(f"center_bench: find_center error and time, {args.preset}"
                  + (" sweep" if args.sweep else ""))
    if args.sweep:
        return sweep()
    n = 64 if args.preset == "small" else 128
    k = n // 8  # columns cut: 8 of 64, 16 of 128
    mid = (n * 5 // 16, n * 11 // 16)  # middle rows: every slice wider than the field
    truth = particle(args.preset, seed=0)
    cases = []
    for off in args.offsets:
        od, true = particle_od(truth, LIMITED, off)
        cases += [(f"(a) untruncated, {off:+.1f}", *cut(od, true)),
                  (f"(b) {k} cols cut, {off:+.1f}", *cut(od, true, cols=(k, n))),
                  (f"(c) rows {mid[0]}-{mid[1]}, {k} cols cut, {off:+.1f}",
                   *cut(od, true, cols=(k, n), rows=mid)),
                  (f"(c2) rows {mid[0]}-{mid[1]}, cols {k}-{n - k}, {off:+.1f}",
                   *cut(od, true, cols=(k, n - k), rows=mid))]
    for off in args.offsets:
        od, true = ball_od(n, LIMITED, off)
        cases += [(f"(d) smooth ball, {off:+.1f}", *cut(od, true)),
                  (f"(d) ball, rows 4-12, {k} cols cut, {off:+.1f}",
                   *cut(od, true, cols=(k, n), rows=(4, 12)))]
    print(f"preset {args.preset}: error px (found - true), s per call; [auto's choice], "
          "! = with the fallback warning; confined = rows whose slice stays inside the field")
    rows = []
    for name, od, true in cases:
        row = [name, confined_rows(od)]
        for m in args.methods:
            c, t, used = run(m, od, LIMITED)
            cell = ("n/a" if c is None else f"{c - true:+.2f}") + f" ({t:.1f} s)"
            row.append(cell + (f" [{used}]" if m == "auto" else ""))
        rows.append(row)
    harness.print_table(["case", "confined", *args.methods], rows)
    full = np.arange(0.0, 180.0)
    od, true = particle_od(truth, full, 2.4)
    c, t, used = run("auto", od, full)
    line = f"(e) 0..179 deg, +2.4: auto [{used}] {c - true:+.2f} ({t:.1f} s)"
    try:
        from algotom.prep.calculation import find_center_vo

        vo = harness.once(lambda: find_center_vo(od[:, n // 2], start=n / 4, stop=3 * n / 4 - 1,
                                                 step=0.25, ncore=1))
        line += f"; algotom find_center_vo {vo.out - true:+.2f} ({vo.best:.1f} s)"
    except ImportError:
        line += "; algotom not importable"
    c, t, _ = run("halves", od, full)
    print("\n" + line + f"; halves {'n/a (span >= 180 deg)' if c is None else f'{c - true:+.2f}'}")


if __name__ == "__main__":
    main()
