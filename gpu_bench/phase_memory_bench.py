"""Memory of the phase (holotomography) branch of preprocess, by chunks of angles (issue #19).

Two measurements:

``--work``: the tracemalloc peak of one :func:`~spectrotomo.recon.phase.retrieve_phase`
call on one chunk of the streamed branch (``_phase_stream.phase_parts``: ~CHUNK_BYTES
of float32 I/I0 at every distance) per byte of that chunk: the work factor the plan
uses. CTF with 4 distances (divergent beam: the magnification correction runs, and the
distance registration) and Paganin with 1 distance, at fields of N^2.

``--step``: the preprocess step alone in a fresh interpreter (``--child``) on a raw
holotomography group of (1 energy, D distances, A angles, N^2) uint16 counts with
flats and darks (a ball with voids, Fresnel-like fringes are not needed for memory);
peak RSS (``ru_maxrss``), CPU seconds, the sampled RSS by pass, beside the plan's
``preprocess`` row.

    python gpu_bench/phase_memory_bench.py --work --sizes 512 1024 2048
    python gpu_bench/phase_memory_bench.py --step --sizes 256 512 1024 --distances 4 \
        --angles 64 [--no-align]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

_GIB = 2.0**30
_Z = [1e-3, 1.6e-3, 2.5e-3, 3.3e-3]


def _intensity(n_d: int, n_a: int, n: int, seed: int = 0) -> np.ndarray:
    """I/I0 (n_d, n_a, n, n) float32 of a weakly absorbing ball with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n].astype(np.float32) - (n - 1) / 2.0
    chord = 2.0 * np.sqrt(np.maximum((0.3 * n) ** 2 - yy ** 2 - xx ** 2, 0.0)) / n
    base = np.exp(-0.05 * chord).astype(np.float32)
    out = np.empty((n_d, n_a, n, n), np.float32)
    out[:] = base
    out += 0.01 * rng.standard_normal(out.shape, dtype=np.float32)
    return out


def work(sizes) -> None:
    from spectrotomo.pipeline.steps._phase_stream import phase_parts
    from spectrotomo.recon.phase import retrieve_phase

    for n in sizes:
        for method, n_d in (("ctf", 4), ("paganin", 1)):
            part = phase_parts(slice(0, 10**6), n_d, n, n)[0]
            n_a = part.stop - part.start
            inten = _intensity(n_d, n_a, n)
            mag = (0.1 + np.asarray(_Z[:n_d])) / 0.1 if n_d > 1 else None
            tracemalloc.start()
            t = time.process_time()
            retrieve_phase(inten, energy_ev=17000.0, distances_m=_Z[:n_d], pixel_size_m=20e-9,
                           delta_beta=56.0, magnifications=mag, method=method)
            cpu = time.process_time() - t
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"phase-work {method} {n_d} distance(s) x {n_a} angle(s) x {n}^2: chunk "
                  f"{inten.nbytes / 2**20:.0f} MiB, tracemalloc peak {peak / 2**20:.0f} MiB = "
                  f"{peak / inten.nbytes:.2f}x the chunk, CPU {cpu:.1f} s", flush=True)
            del inten


def make_store(store: Path, n: int, n_d: int, n_a: int, seed: int = 0) -> None:
    import xarray as xr

    from spectrotomo import io

    rng = np.random.default_rng(seed)
    photons, dark = 2.0e4, 100.0
    proj = np.empty((1, n_d, n_a, n, n), np.uint16)
    for d in range(n_d):  # distances x chunks of 8 frames: bounded generator memory
        for a in range(0, n_a, 8):
            k = min(8, n_a - a)
            counts = photons * _intensity(1, k, n, seed + d * n_a + a)[0] + dark
            proj[0, d, a:a + k] = np.clip(counts, 0, 65535).astype(np.uint16)
    flats = np.clip(photons + dark + np.sqrt(photons) * rng.standard_normal((1, n_d, 3, n, n)),
                    0, 65535).astype(np.uint16)
    darks = np.full((1, n_d, 2, n, n), dark, np.uint16)
    px = 20.0
    ds = xr.Dataset(
        {"projections": (("energy", "distance", "angle", "y", "x"), proj),
         "flats": (("energy", "distance", "flat", "y", "x"), flats),
         "darks": (("energy", "distance", "dark", "y", "x"), darks)},
        coords={"energy": ("energy", [17000.0], {"units": "eV"}),
                "distance": ("distance", _Z[:n_d], {"units": "m"}),
                "angle": ("angle", np.linspace(0.0, 180.0, n_a), {"units": "deg"}),
                "y": ("y", np.arange(n) * px, {"units": "nm"}),
                "x": ("x", np.arange(n) * px, {"units": "nm"})},
        attrs={"pixel_size": px, "pixel_size_units": "nm"})
    io.write(store, "raw", ds, encoding={"projections": {"chunks": (1, 1, 8, n, n)},
                                         "flats": {"chunks": (1, 1, 1, n, n)},
                                         "darks": {"chunks": (1, 1, 1, n, n)}})


def child(store: Path, limit: float, align: bool) -> None:
    """Run the preprocess step on ``store`` and print one JSON line."""

    sys.path.insert(0, str(Path(__file__).parent))
    from prep_memory_bench import _PASSES, measured_step

    import prep_memory_bench
    from spectrotomo.pipeline._config import config_from_dict

    prep_memory_bench._PASSES = ("_pass_phase",) + _PASSES
    cfg = config_from_dict({"output": {"store": str(store)}, "compute": {"memory_limit_gb": limit},
                            "preprocess": {"align": align},
                            "phase": {"method": "ctf", "delta_beta": 56.0}})
    measured_step(cfg, store)


def plan_gib(n_d: int, n_a: int, n: int, limit: float) -> float:
    from spectrotomo.pipeline._plan import plan_run
    from spectrotomo.pipeline.steps.preprocess import od_chunks

    row = plan_run(n_energies=1, n_angles=n_a, ny=n, nx=n, chunk_rows=16, n_distances=n_d,
                   od_angles=od_chunks((1, n_a, n, n), 16)[1])[0]
    return row.peak_bytes / _GIB


def step(args) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from prep_memory_bench import run_child

    for n in args.sizes:
        store = args.dir / f"holo_{args.distances}x{args.angles}x{n}.zarr"
        if not (store / "raw").exists():
            make_store(store, n, args.distances, args.angles)
        got = run_child(__file__, store, args.limit, args.no_align)
        print(f"phase-step 1x{args.distances}x{args.angles}x{n}^2 align={not args.no_align}: "
              f"peak RSS {got['peak_gib']:.2f} GiB, plan {plan_gib(args.distances, args.angles, n, args.limit):.2f} GiB, "
              f"wall {got['wall_s']:.1f} s, CPU {got['cpu_s']:.1f} s; sampled RSS by pass (GiB): "
              + ", ".join(f"{k} {v:.2f}" for k, v in got["passes"].items()), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", action="store_true")
    ap.add_argument("--step", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--distances", type=int, default=4)
    ap.add_argument("--angles", type=int, default=64)
    ap.add_argument("--limit", type=float, default=16.0)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/phasemem"))
    ap.add_argument("--no-align", action="store_true")
    ap.add_argument("--child", type=Path)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.limit, not args.no_align)
    if args.work:
        work(args.sizes)
    if args.step:
        step(args)


if __name__ == "__main__":
    main()
