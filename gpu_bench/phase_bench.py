"""Projections/s of Paganin and CTF retrieval against nabu's CPU ones, same data, same run.

    PYTHONPATH=src python gpu_bench/phase_bench.py --n-proj 64 --size 256 [--gpu]
"""

import numpy as np

import harness


def gpu_rows(data, zs, db, z, kw, repeat, t_pag, t_ctf):
    """Table rows of cupy Paganin and CTF on the same data; ratios against our CPU times."""
    if not harness.gpu_available():
        print("--gpu: no CUDA device; skipped")
        return []
    import cupy

    from spectrotomo.recon import phase

    n = data.shape[1]
    g = cupy.asarray(data)
    pag = harness.timeit(lambda: phase.paganin(g[0], distance_m=z, delta_beta=db, **kw),
                         repeat=repeat, sync=harness.cuda_sync)
    ctf = harness.timeit(lambda: phase.ctf_retrieval(g, distances_m=zs, delta_beta=db, **kw),
                         repeat=repeat, sync=harness.cuda_sync)
    ref = phase.paganin(data[0], distance_m=z, delta_beta=db, **kw)
    err = float(np.abs(cupy.asnumpy(pag.out) - ref).max())
    print(f"max |cupy - numpy| paganin: {err:.1e} rad")
    return [["spectrotomo paganin (cupy)", pag.rate(n), harness.ratio(t_pag, pag.best)
             + " our CPU"],
            [f"spectrotomo ctf, {len(zs)} distances (cupy)", ctf.rate(n),
             harness.ratio(t_ctf, ctf.best) + " our CPU"]]


def nabu_rows(data, zs, db, z, e_ev, p, kw, repeat, t_pag):
    """Table rows of nabu's Paganin and CTF (one radio per call) and our 1-distance CTF."""
    from spectrotomo.recon import phase

    try:
        from nabu.preproc.ctf import CTFPhaseRetrieval, GeoPars
        from nabu.preproc.phase import PaganinPhaseRetrieval
    except ImportError:
        print("nabu not installed: pip install nabu")
        return []
    n, m = data.shape[1], data.shape[-1]
    pag = PaganinPhaseRetrieval((m, m), distance=z, energy=e_ev / 1e3, delta_beta=db,
                                pixel_size=p, padding="edge")
    # nabu filters one radio per call; the log is part of the retrieval.
    t_nabu = harness.timeit(lambda: np.stack([db / 2 * np.log(pag.apply_filter(img))
                                              for img in data[0]]), repeat=repeat)
    ours_same = phase.paganin(data[0], distance_m=z, delta_beta=db,
                              padded_shape=pag.shape_padded, **kw)
    print(f"max |ours - nabu| paganin on nabu's padded shape {pag.shape_padded}: "
          f"{np.abs(ours_same - t_nabu.out).max():.2e} rad (timings: each its default padding)")
    ctf_nabu = CTFPhaseRetrieval((m, m), GeoPars(z2=z, pix_size_det=p,
                                                 wavelength=phase.wavelength_m(e_ev)),
                                 delta_beta=db, lim1=1e-5, lim2=0.2)
    t_nc = harness.timeit(lambda: np.stack([ctf_nabu.retrieve_phase(i) for i in data[0]]),
                          repeat=repeat)
    t_c1 = harness.timeit(lambda: phase.ctf_retrieval(data[:1], distances_m=zs[:1],
                                                      delta_beta=db, **kw), repeat=repeat)
    return [["nabu PaganinPhaseRetrieval (CPU)", t_nabu.rate(n), "-"],
            ["spectrotomo paganin / nabu", "-", harness.ratio(t_nabu.best, t_pag) + " nabu"],
            ["nabu CTFPhaseRetrieval, 1 distance", t_nc.rate(n), "-"],
            ["spectrotomo ctf, 1 distance", t_c1.rate(n),
             harness.ratio(t_nc.best, t_c1.best) + " nabu"]]


def main():
    ap = harness.parser(__doc__, quick={"n_proj": 4, "size": 64, "distances": 2, "repeat": 1})
    ap.add_argument("--n-proj", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--distances", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--gpu", action="store_true", help="also time the cupy path")
    args = ap.parse_args()
    harness.start("phase_bench: Paganin and CTF retrieval, projections/s")

    from spectrotomo.recon import phase

    rng = np.random.default_rng(0)
    n, m = args.n_proj, args.size
    e_ev, p, z, db = 17000.0, 20e-9, 1e-3, 56.0
    data = (1 + 0.05 * rng.standard_normal((args.distances, n, m, m))).astype(np.float32)
    zs = [1e-3, 1.5e-3, 2.3e-3, 3.4e-3][:args.distances]
    kw = dict(energy_ev=e_ev, pixel_size_m=p)
    print(f"data: {n} projections of {m}x{m} float32, {args.distances} distances for CTF; "
          f"best of {args.repeat} after a warm-up")
    t_pag = harness.timeit(lambda: phase.paganin(data[0], distance_m=z, delta_beta=db, **kw),
                           repeat=args.repeat).best
    t_ctf = harness.timeit(lambda: phase.ctf_retrieval(data, distances_m=zs, delta_beta=db,
                                                       **kw), repeat=args.repeat).best
    rows = [["spectrotomo paganin (numpy/scipy.fft)", n / t_pag, "-"],
            [f"spectrotomo ctf, {args.distances} distances (per projection)", n / t_ctf, "-"]]
    if args.gpu:
        rows += gpu_rows(data, zs, db, z, kw, args.repeat, t_pag, t_ctf)
    rows += nabu_rows(data, zs, db, z, e_ev, p, kw, args.repeat, t_pag)
    harness.print_table(["method", "proj/s", "speed-up"], rows, fmt=".1f")


if __name__ == "__main__":
    main()
