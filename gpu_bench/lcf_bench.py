"""Benchmark: exact batched LCF (spectrotomo.spectra.lcf) vs per-spectrum peers.

Same run, same spectra: for 3 and 5 references x 30 and 100 energies, prints
spectra/s of
  * spectrotomo lcf (nonneg, and nonneg + sum_to_one), float64 and float32,
    numpy (1 or more block threads, --workers); cupy with --gpu;
  * a scipy.optimize.nnls loop (nonneg; its agreement with ours is checked);
  * xraylarch's lincombo_fit (nonneg + sum_to_one) when larch is installed;
and the ratios. Rates of the per-spectrum peers are measured on a subset.

    PYTHONPATH=src python gpu_bench/lcf_bench.py --n-spectra 500000 --n-peer 2000 --workers 1 2
    PYTHONPATH=src python gpu_bench/lcf_bench.py --gpu-only --n-spectra 16777216 --refs 3 --energies 100
"""

from __future__ import annotations

import numpy as np

import harness


def synthetic_references(k: int, n: int, rng) -> np.ndarray:
    """XANES-like references: arctan edge + white line shifted per state."""
    e = np.linspace(0.0, 30.0, n)[None, :]
    shift = np.arange(k)[:, None] * 1.2
    return (0.5 + np.arctan((e - 10 - shift) / 0.8) / np.pi
            + 2.0 * np.exp(-0.5 * ((e - 11 - shift) / 0.7) ** 2)
            + 0.05 * rng.random((k, 1)))


def synthetic_spectra(refs, n_spec, rng, dtype):
    """``n_spec`` Dirichlet mixtures of ``refs`` plus 2 % noise: (n_spec, n)."""
    k, n = refs.shape
    f = rng.dirichlet(np.ones(k), size=n_spec)
    out = f @ refs
    out += rng.normal(scale=0.02, size=out.shape)
    return out.astype(dtype)


def bench_ours(spectra, refs, *, sum_to_one, dtype, repeats, xp=np, workers=1, all_rates=False):
    """Best wall-clock spectra/s (``all_rates``: best, median, best per CPU-second: on a
    shared machine the last shows the cost of the work itself)."""
    from spectrotomo.spectra import lcf

    data = xp.asarray(spectra)
    t = harness.timeit(lambda: lcf(data, refs, nonneg=True, sum_to_one=sum_to_one, dtype=dtype,
                                   workers=workers),
                       repeat=repeats, sync=harness.cuda_sync if xp is not np else None)
    n = spectra.shape[0]
    return (t.rate(n), n / t.median, n / t.cpu_best) if all_rates else t.rate(n)


def bench_scipy(spectra, refs, repeats=1):
    """Best-of-``repeats`` rate of a scipy.optimize.nnls loop and its answers."""
    from scipy.optimize import nnls

    a = refs.T.astype(np.float64)
    s = spectra.astype(np.float64)
    t = harness.timeit(lambda: np.array([nnls(a, row)[0] for row in s]), repeat=repeats,
                       warmup=0)
    return t.rate(s.shape[0]), t.out


def bench_larch(spectra, refs, energies):
    """xraylarch lincombo_fit (lmfit, bounds 0..1, sum_to_one): (rate, fractions)."""
    try:
        from larch import Group
        from larch.math.lincombo_fitting import lincombo_fit
    except ImportError:
        return None, None
    k = refs.shape[0]
    groups = [Group(energy=energies, norm=r, filename=f"ref{i}", groupname=f"ref{i}")
              for i, r in enumerate(refs)]

    def fit_all():
        return np.array([list(lincombo_fit(Group(energy=energies, norm=s.astype(np.float64)),
                                           groups, minvals=[0.0] * k, maxvals=[1.0] * k,
                                           sum_to_one=True).weights.values()) for s in spectra])

    t = harness.timeit(fit_all, repeat=1, warmup=0)
    return t.rate(spectra.shape[0]), t.out


def main(argv=None):
    p = harness.parser(__doc__, quick={"n_spectra": 20000, "n_peer": 200, "n_larch": 5,
                                       "repeats": 1, "refs": [3], "energies": [30]})
    p.add_argument("--n-spectra", type=int, default=1_000_000)
    p.add_argument("--n-peer", type=int, default=2000, help="spectra for the per-spectrum peers")
    p.add_argument("--n-larch", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--refs", type=int, nargs="+", default=[3, 5])
    p.add_argument("--energies", type=int, nargs="+", default=[30, 100])
    p.add_argument("--workers", type=int, nargs="+", default=[1],
                   help="block threads of the numpy path (one float32 column each)")
    p.add_argument("--gpu", action="store_true", help="also time the cupy path")
    p.add_argument("--gpu-only", action="store_true",
                   help="only the cupy path, spectra drawn on the device (--n-spectra of them)")
    args = p.parse_args(argv)
    harness.start("lcf_bench: exact batched LCF vs per-spectrum peers, spectra/s")
    if args.gpu_only:
        return gpu_only(args)
    from spectrotomo.spectra import lcf

    rng = np.random.default_rng(0)
    print(f"spectra: {args.n_spectra}, repeats: {args.repeats}, peers on {args.n_peer}; "
          "ours f32 wN: best / median wall-clock spectra/s with N block threads, and "
          "[best per CPU-second]; ratio = best f32 / scipy (best of the same repeats)")
    head = ["k", "n", "mode", "ours f64"] + [f"ours f32 w{w}" for w in args.workers]
    head += ["scipy nnls", "larch", "ratio"] + (["cupy f32"] if args.gpu else [])
    rows, notes = [], []
    for k in args.refs:
        for n in args.energies:
            refs = synthetic_references(k, n, rng)
            spectra = synthetic_spectra(refs, args.n_spectra, rng, np.float32)
            peer = spectra[: args.n_peer]
            scipy_rate, x_scipy = bench_scipy(peer, refs, repeats=args.repeats)
            ours_peer = lcf(peer.astype(np.float64), refs).fractions
            notes.append(f"k={k} n={n}: max |ours - scipy nnls| (float64) on {args.n_peer} "
                         f"spectra: {np.abs(ours_peer - x_scipy).max():.2e}")
            larch_rate, x_larch = bench_larch(spectra[: args.n_larch], refs, np.linspace(0, 30, n))
            if x_larch is not None:
                ours_l = lcf(spectra[: args.n_larch].astype(np.float64), refs, sum_to_one=True)
                # objective comparison: ours is the exact optimum, never worse
                res_l = np.linalg.norm(x_larch @ refs - spectra[: args.n_larch], axis=1)
                worse = np.mean(res_l > ours_l.residual * (1 + 1e-9) + 1e-12)
                diff = np.abs(ours_l.fractions - x_larch).max()
                notes.append(f"k={k} n={n}: max |ours - larch lincombo_fit| (nonneg+sum1) on "
                             f"{args.n_larch} spectra: {diff:.2e}; larch residual larger than "
                             f"ours on {100 * worse:.0f} %")
            for sum_to_one in (False, True):
                row = [k, n, "nonneg+sum1" if sum_to_one else "nonneg",
                       bench_ours(spectra, refs, sum_to_one=sum_to_one, dtype=np.float64,
                                  repeats=args.repeats, workers=max(args.workers))]
                best32 = 0.0
                for w in args.workers:
                    b, med, cpu = bench_ours(spectra, refs, sum_to_one=sum_to_one,
                                             dtype=np.float32, repeats=args.repeats,
                                             workers=w, all_rates=True)
                    best32 = max(best32, b)
                    row.append(f"{b:.3g} / {med:.3g} [{cpu:.3g}]")
                row += [scipy_rate, f"{larch_rate:.0f}" if (larch_rate and sum_to_one) else "-",
                        harness.ratio(best32, scipy_rate)]
                if args.gpu:
                    import cupy

                    row.append(bench_ours(spectra, refs, sum_to_one=sum_to_one,
                                          dtype=np.float32, repeats=args.repeats, xp=cupy))
                rows.append(row)
    harness.print_table(head, rows)
    print("\n".join(notes))


def gpu_only(args):
    """cupy rates on spectra drawn on the device (no host copy of the data), with
    the answers of the first --n-peer spectra checked against the numpy path."""
    if not harness.gpu_available():
        print("--gpu-only: no CUDA device; skipped")
        return
    import cupy as cp

    from spectrotomo.spectra import lcf

    rng = np.random.default_rng(0)
    n_spec = args.n_spectra
    print(f"GPU only: {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}, "
          f"{n_spec} spectra, best of {args.repeats} (after one warm-up); target >= 1e8/s")
    for k in args.refs:
        for n in args.energies:
            refs = synthetic_references(k, n, rng)
            f = -cp.log(cp.random.random((n_spec, k), dtype=cp.float32) + 1e-12)
            f /= f.sum(axis=1, keepdims=True)  # Dirichlet(1, ..., 1)
            data = f @ cp.asarray(refs, dtype=cp.float32)
            data += cp.random.standard_normal(data.shape, dtype=cp.float32) * 0.02
            del f
            host = cp.asnumpy(data[: args.n_peer])
            for sum_to_one in (False, True):
                mode = "nonneg+sum1" if sum_to_one else "nonneg"
                best, med, _ = bench_ours(data, refs, sum_to_one=sum_to_one, dtype=np.float32,
                                          repeats=args.repeats, xp=cp, all_rates=True)
                got = lcf(data[: args.n_peer], refs, sum_to_one=sum_to_one, dtype=np.float32)
                ref = lcf(host.astype(np.float64), refs, sum_to_one=sum_to_one)
                err = float(np.abs(cp.asnumpy(got.fractions) - ref.fractions).max())
                print(f"{k:>2} refs {n:>4} energies {mode:<12} cupy f32 best {best:.3g} / "
                      f"median {med:.3g} spectra/s; max |cupy f32 - numpy f64| on "
                      f"{args.n_peer}: {err:.1e}", flush=True)
            del data
            cp.get_default_memory_pool().free_all_blocks()


if __name__ == "__main__":
    main()
