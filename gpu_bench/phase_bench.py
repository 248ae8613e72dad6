"""Projections/s of Paganin and CTF retrieval against nabu's CPU Paganin, same data, same run.

    PYTHONPATH=src python gpu_bench/phase_bench.py --n-proj 64 --size 256 [--gpu]
"""

import argparse
import time

import numpy as np


def _timeit(fn, repeat):
    fn()  # warm-up (plans, caches)
    t = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - t) / repeat, out


def gpu_part(data, zs, db, z, kw, repeat, t_pag, t_ctf):
    """cupy Paganin and CTF on the same data; ratios against our CPU times."""
    from spectrotomo._backend import cupy_available

    if not cupy_available():
        print("--gpu: no CUDA device; skipped")
        return
    import cupy

    from spectrotomo import recon

    n = data.shape[1]
    g = cupy.asarray(data)

    def gpu_pag():
        out = recon.phase.paganin(g[0], distance_m=z, delta_beta=db, **kw)
        cupy.cuda.Device().synchronize()
        return out

    def gpu_ctf():
        out = recon.phase.ctf_retrieval(g, distances_m=zs, delta_beta=db, **kw)
        cupy.cuda.Device().synchronize()
        return out

    t_gp, got = _timeit(gpu_pag, repeat)
    t_gc, _ = _timeit(gpu_ctf, repeat)
    ref = recon.phase.paganin(data[0], distance_m=z, delta_beta=db, **kw)
    err = float(np.abs(cupy.asnumpy(got) - ref).max())
    print(f"spectrotomo paganin (cupy): {n / t_gp:9.1f} proj/s, {t_pag / t_gp:.1f}x our CPU; "
          f"max |cupy - numpy| {err:.1e} rad", flush=True)
    print(f"spectrotomo ctf (cupy):     {n / t_gc:9.1f} proj/s, {t_ctf / t_gc:.1f}x our CPU",
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-proj", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--distances", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--gpu", action="store_true", help="also time the cupy path")
    args = ap.parse_args()

    from spectrotomo import recon

    rng = np.random.default_rng(0)
    n, m = args.n_proj, args.size
    e_ev, p, z, db = 17000.0, 20e-9, 1e-3, 56.0
    data = (1 + 0.05 * rng.standard_normal((args.distances, n, m, m))).astype(np.float32)
    zs = [1e-3, 1.5e-3, 2.3e-3, 3.4e-3][:args.distances]
    kw = dict(energy_ev=e_ev, pixel_size_m=p)

    t_pag, ours = _timeit(lambda: recon.phase.paganin(data[0], distance_m=z, delta_beta=db, **kw),
                          args.repeat)
    t_ctf, _ = _timeit(lambda: recon.phase.ctf_retrieval(data, distances_m=zs, delta_beta=db, **kw),
                       args.repeat)
    print(f"data: {n} projections of {m}x{m} float32, {args.distances} distances for CTF")
    print(f"spectrotomo paganin (numpy/scipy.fft): {n / t_pag:9.1f} proj/s")
    print(f"spectrotomo ctf, {args.distances} distances:        {n / t_ctf:9.1f} proj/s "
          f"(per retrieved projection)")
    if args.gpu:
        gpu_part(data, zs, db, z, kw, args.repeat, t_pag, t_ctf)
    try:
        from nabu.preproc.phase import PaganinPhaseRetrieval
    except ImportError:
        print("nabu not installed: pip install nabu")
        return
    pag = PaganinPhaseRetrieval((m, m), distance=z, energy=e_ev / 1e3, delta_beta=db,
                                pixel_size=p, padding="edge")

    def nabu_run():
        # nabu filters one radio per call; the log is part of the retrieval.
        return np.stack([db / 2 * np.log(pag.apply_filter(img)) for img in data[0]])

    t_nabu, theirs = _timeit(nabu_run, args.repeat)
    ours_same = recon.phase.paganin(data[0], distance_m=z, delta_beta=db, padded_shape=pag.shape_padded,
                              **kw)
    print(f"nabu PaganinPhaseRetrieval (CPU):      {n / t_nabu:9.1f} proj/s")
    print(f"ratio paganin spectrotomo / nabu: {t_nabu / t_pag:.2f}x  (padded shapes: ours "
          f"{recon.phase._paganin.default_padded_shape((m, m), 'edge')}, nabu {pag.shape_padded})")
    print(f"max |difference| vs nabu on its padded shape: "
          f"{np.abs(ours_same - theirs).max():.2e} rad")
    from nabu.preproc.ctf import CTFPhaseRetrieval, GeoPars

    ctf_nabu = CTFPhaseRetrieval((m, m), GeoPars(z2=z, pix_size_det=p,
                                                 wavelength=recon.phase.wavelength_m(e_ev)),
                                 delta_beta=db, lim1=1e-5, lim2=0.2)
    t_nc, _ = _timeit(lambda: np.stack([ctf_nabu.retrieve_phase(i) for i in data[0]]),
                      args.repeat)
    t_c1, _ = _timeit(lambda: recon.phase.ctf_retrieval(data[:1], distances_m=zs[:1], delta_beta=db,
                                                  **kw), args.repeat)
    print(f"nabu CTFPhaseRetrieval, 1 distance:    {n / t_nc:9.1f} proj/s")
    print(f"spectrotomo ctf, 1 distance:           {n / t_c1:9.1f} proj/s "
          f"({t_nc / t_c1:.2f}x nabu)")


if __name__ == "__main__":
    main()
