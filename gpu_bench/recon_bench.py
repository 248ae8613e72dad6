"""Benchmark: spectrotomo.recon FBP / SIRT / CGLS / TV against ASTRA, scikit-image, TomoPy.

Same data, same run. CPU part: a 512^2 Shepp-Logan slice projected with the
ground-truth projector (spectrotomo.simulate.project), stacked to --slices
rows (each row scaled slightly so rows differ), 360 angles over 180 deg, and
a -65..+65 deg (1 deg) case. ASTRA CPU is 2-D only and single-threaded: it
runs on --peer-slices rows and its throughput is per slice. GPU part
(--gpu): FBP of 1024^3 and 2048^3 from 1500 angles with cupy + cufinufft,
and ASTRA FBP_CUDA when available; SIRT/CGLS per-iteration time on the GPU
(--gpu-iter-rows rows). --gpu-only skips the CPU part.

    PYTHONPATH=src python gpu_bench/recon_bench.py --size 512 --angles 360 --slices 64
    PYTHONPATH=src python gpu_bench/recon_bench.py --gpu-only --gpu-sizes 1024 2048
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import harness

# the one ASTRA 2-D peer, shared with the tests (which CI runs)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "recon"))
from recon_helpers import astra_2d  # noqa: E402


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))


def tomopy_gridrec(proj, angles_deg, pad):
    """TomoPy gridrec on the same projections, detector edge-padded by ``pad`` px
    each side (its usual setting), cropped back; all cores."""
    import os

    import tomopy

    n = proj.shape[2]
    padded = np.pad(proj, ((0, 0), (0, 0), (pad, pad)), mode="edge")
    rec = tomopy.recon(padded, np.deg2rad(angles_deg), algorithm="gridrec",
                       center=(n - 1) / 2 + pad, sinogram_order=False,
                       ncore=os.cpu_count())
    return rec[:, pad:pad + n, pad:pad + n]


def best_orientation(img, ref):
    """TomoPy's image axes/angle sign may differ from ours: compare in the
    orientation (of flips and transpose) closest to the reference."""
    cands = [img, img[::-1], img[:, ::-1], img[::-1, ::-1]]
    cands += [c.T for c in cands]
    return min(cands, key=lambda c: rmse(c, ref))


def phantom(n):
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    return resize(shepp_logan_phantom(), (n, n), anti_aliasing=True)


def stack_rows(sino, n_rows):
    scale = 1.0 + 0.01 * np.arange(n_rows, dtype=np.float32)
    return (sino[:, None, :] * scale[None, :, None]).astype(np.float32)


def case(label, ph, angles, args):
    from spectrotomo.recon import reconstruct
    from spectrotomo.simulate import project

    print(f"\n== {label}: {ph.shape[0]}^2 x {angles.size} angles x {args.slices} slices ==")
    t = harness.once(lambda: project(ph, angles).astype(np.float32))
    sino = t.out
    print(f"(sinogram by simulate.project in {t.best:.1f} s)")
    proj = stack_rows(sino, args.slices)
    rows = {}
    reconstruct(proj[:, :2], angles)  # warm up (FFTW plans, imports)
    t = harness.timeit(lambda: reconstruct(proj, angles), repeat=args.repeat, warmup=0)
    rec, dt = t.out, t.best
    rows["spectrotomo fbp (finufft, eps 1e-4)"] = (args.slices / dt, rmse(rec[0], ph))
    if args.slices >= 8:
        t = harness.once(lambda: reconstruct(proj[:, :8], angles))
        rec8, dt8 = t.out, t.best
        rows["spectrotomo fbp, 8-slice call"] = (8 / dt8, rmse(rec8[0], ph))
    it = args.iterations
    for alg in () if args.skip_iterative else ("sirt", "cgls"):
        dti = harness.once(lambda: reconstruct(proj[:, :args.iter_slices], angles,
                                               algorithm=alg, iterations=it)).best
        per_it = dti / it / args.iter_slices
        rows[f"spectrotomo {alg} ({it} it, per iteration)"] = (1 / per_it, float("nan"))
        print(f"  {alg}: one iteration = {per_it * args.slices / dt:.2f} x one FBP (per slice)")
    try:
        import astra  # noqa: F401

        k = args.peer_slices
        t = harness.timeit(lambda: [astra_2d(proj[:, r], angles) for r in range(k)],
                           repeat=args.repeat, warmup=0)
        outs, dta = t.out, t.best
        rows["ASTRA CPU FBP (linear)"] = (k / dta, rmse(outs[0], ph))
        if not args.skip_iterative:
            dts = harness.once(lambda: astra_2d(sino, angles, algorithm="SIRT", iterations=it,
                                                options={"MinConstraint": 0.0})).best
            rows[f"ASTRA CPU SIRT ({it} it, per iteration)"] = (it / dts, float("nan"))
    except ImportError:
        print("ASTRA not importable")
    try:
        from skimage.transform import iradon, radon

        own = radon(ph, theta=angles, circle=False)  # its own geometry (centre differs by 1 px)
        t = harness.once(lambda: iradon(own, theta=angles, filter_name="ramp", circle=False,
                                        output_size=ph.shape[0]))
        out, dti = t.out, t.best
        rows["skimage iradon (own radon sinogram)"] = (1 / dti, rmse(out, ph))
    except ImportError:
        print("scikit-image not importable")
    try:
        import tomopy  # noqa: F401

        t = harness.timeit(lambda: tomopy_gridrec(proj, angles, args.tomopy_pad),
                           repeat=args.repeat, warmup=0)
        out, dtt = t.out, t.best
        rows[f"TomoPy gridrec ({args.tomopy_pad} px edge padding)"] = (
            args.slices / dtt, rmse(best_orientation(out[0], ph), ph))
    except ImportError:
        print("TomoPy not importable: gridrec not compared")
    if label.startswith("limited") and not args.skip_iterative:
        k = args.tv_slices
        t = harness.once(lambda: reconstruct(proj[:, :k], angles, algorithm="tv"))
        tvrec, dtv = t.out, t.best
        rows["spectrotomo tv (defaults: 100 it, weight 0.01)"] = (k / dtv, rmse(tvrec[0], ph))
        for alg, n_it in (("sirt", 100), ("cgls", 20)):
            t = harness.once(lambda: reconstruct(proj[:, :k], angles, algorithm=alg,
                                                 iterations=n_it))
            r, dtr = t.out, t.best
            rows[f"spectrotomo {alg} ({n_it} it)"] = (k / dtr, rmse(r[0], ph))
    harness.print_table(["method", "slices/s", "RMSE"],
                        [[name, f"{rate:.2f}", f"{err:.4f}"] for name, (rate, err) in rows.items()])
    ours = rows["spectrotomo fbp (finufft, eps 1e-4)"]
    if "ASTRA CPU FBP (linear)" in rows:
        ast = rows["ASTRA CPU FBP (linear)"]
        print(f"FBP throughput ratio vs ASTRA CPU: {ours[0] / ast[0]:.1f}x (target >= 20x); "
              f"RMSE ratio {ours[1] / ast[1]:.3f} (target <= 1.0)")
    gridrec = [v for name, v in rows.items() if name.startswith("TomoPy")]
    if gridrec:
        print(f"FBP throughput ratio vs TomoPy gridrec: {ours[0] / gridrec[0][0]:.2f}x "
              f"(target >= 1); RMSE ratio {ours[1] / gridrec[0][1]:.3f}")
    return rows


def gpu_part(args):
    if not harness.gpu_available():
        print("\n--gpu: no CUDA device; skipped")
        return
    import cupy as cp

    from spectrotomo.recon import reconstruct

    ours = {}
    for n in args.gpu_sizes:
        angles = np.linspace(0, 180, args.gpu_angles, endpoint=False)
        # projections of one call: --gpu-call-gib of float32 / 6 (the FBP's work arrays); 2 GiB
        # gave 29 rows at 2048 x 1500 angles and 11.7 s on an H200 (RESULTS.gpu.md): larger
        # calls are the first thing to try against the 5 s target
        rows_per_call = max(1, min(n, int(args.gpu_call_gib * 2**30
                                          // (args.gpu_angles * n * 4 * 6))))
        proj = cp.random.random((args.gpu_angles, rows_per_call, n), dtype=cp.float32)
        reconstruct(proj[:, :1], angles)
        harness.cuda_sync()

        def fbp_volume():
            for _ in range(0, n, rows_per_call):  # chunks of rows: device memory bound
                reconstruct(proj, angles)

        dt = ours[n] = harness.once(fbp_volume, sync=harness.cuda_sync).best
        print(f"GPU FBP {n}^3 from {args.gpu_angles} angles: {dt:.2f} s "
              f"({n / dt:.0f} slices/s, {rows_per_call} rows per call; target 2048^3 <= 5 s)",
              flush=True)
        k, it = min(args.gpu_iter_rows, rows_per_call), args.iterations
        for alg in () if args.skip_iterative or k < 1 else ("sirt", "cgls"):
            reconstruct(proj[:, :k], angles, algorithm=alg, iterations=1)  # warm up
            harness.cuda_sync()
            per_slice_it = harness.once(
                lambda: reconstruct(proj[:, :k], angles, algorithm=alg, iterations=it),
                sync=harness.cuda_sync).best / it / k
            print(f"GPU {alg.upper()} {n}^2 x {args.gpu_angles} angles, {k} rows x {it} it: "
                  f"{per_slice_it * 1e3:.2f} ms per slice-iteration = "
                  f"{per_slice_it / (dt / n):.2f} x one FBP slice (target <= 5x); "
                  f"{per_slice_it * n * 100:.1f} s for 100 iterations of {n}^3", flush=True)
        del proj
        cp.get_default_memory_pool().free_all_blocks()
    if harness.astra_cuda_available():
        for n in args.gpu_sizes:  # FBP_CUDA is 2-D: one slice, times n slices
            angles = np.linspace(0, 180, args.gpu_angles, endpoint=False)
            sino = np.random.random((args.gpu_angles, n)).astype(np.float32)
            astra_fbp_cuda(sino, angles)  # warm up (context, kernels)
            dt = harness.timeit(lambda: astra_fbp_cuda(sino, angles), repeat=3, warmup=0).best
            print(f"ASTRA FBP_CUDA {n}^2 slice from {args.gpu_angles} angles: {dt:.3f} s "
                  f"-> {n * dt:.1f} s for {n}^3 (host<->device copies included); "
                  f"spectrotomo {n * dt / ours[n]:.1f}x faster")
    else:
        print("ASTRA CUDA not available: no FBP_CUDA comparison")


def astra_fbp_cuda(sino, angles_deg):
    import astra

    n = sino.shape[1]
    vg = astra.create_vol_geom(n, n)
    pg = astra.create_proj_geom("parallel", 1.0, n, -np.deg2rad(angles_deg))
    sid = astra.data2d.create("-sino", pg, sino)
    rid = astra.data2d.create("-vol", vg, 0)
    cfg = astra.astra_dict("FBP_CUDA")
    cfg.update(ProjectionDataId=sid, ReconstructionDataId=rid)
    aid = astra.algorithm.create(cfg)
    astra.algorithm.run(aid)
    out = astra.data2d.get(rid)
    astra.algorithm.delete(aid)
    astra.data2d.delete([sid, rid])
    return out


def main():
    ap = harness.parser(__doc__, quick={"size": 64, "angles": 60, "slices": 8, "peer_slices": 1,
                                        "iter_slices": 2, "iterations": 2, "tv_slices": 1,
                                        "repeat": 1, "tomopy_pad": 16, "gpu_sizes": [128],
                                        "gpu_angles": 90, "gpu_iter_rows": 2})
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--angles", type=int, default=360)
    ap.add_argument("--slices", type=int, default=64)
    ap.add_argument("--peer-slices", type=int, default=4, help="rows given to ASTRA (2-D)")
    ap.add_argument("--iter-slices", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--tv-slices", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-limited", action="store_true")
    ap.add_argument("--skip-iterative", action="store_true",
                    help="FBP comparison only (no SIRT/CGLS/TV timings)")
    ap.add_argument("--tomopy-pad", type=int, default=128, help="gridrec edge padding, px")
    ap.add_argument("--gpu", action="store_true", help="also run the GPU sizes")
    ap.add_argument("--gpu-sizes", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--gpu-angles", type=int, default=1500)
    ap.add_argument("--gpu-call-gib", type=float, default=2.0,
                    help="GPU FBP: device memory of one reconstruct call's work arrays (GiB)")
    ap.add_argument("--gpu-iter-rows", type=int, default=8,
                    help="rows for the GPU SIRT/CGLS per-iteration timing (0: none)")
    ap.add_argument("--gpu-only", action="store_true", help="only the GPU part (implies --gpu)")
    args = ap.parse_args()
    harness.start("recon_bench: FBP / SIRT / CGLS / TV vs ASTRA, scikit-image, TomoPy")
    if args.gpu_only:
        gpu_part(args)
        return
    ph = phantom(args.size)
    case("full", ph, np.arange(args.angles) * (180.0 / args.angles), args)
    if not args.skip_limited:
        case("limited -65..+65 deg", ph, np.arange(-65.0, 66.0, 1.0), args)
    if args.gpu:
        gpu_part(args)


if __name__ == "__main__":
    main()
