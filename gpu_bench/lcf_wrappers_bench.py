"""Benchmark: overhead of spectrotomo.spectra's wrappers over plain lcf.

Same spectra (3 references x 100 energies, float32, nonneg + sum_to_one) as
  * lcf on a (N, n) array (spectra-major, contiguous),
  * lcf_xarray on an (energy, z, y, x) volume (read in place, energy-first),
  * lcf on a dask array chunked over spectra (map_blocks).
Prints wall-clock spectra/s and spectra per CPU-second (best of --repeats).

    PYTHONPATH=src python gpu_bench/lcf_wrappers_bench.py --shape 40 64 64
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from lcf_bench import _references, _spectra  # noqa: E402


def _rate(fn, n, repeats):
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return n / min(walls), n / min(cpus)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs=3, default=[40, 64, 64], help="z y x voxels")
    p.add_argument("--energies", type=int, default=100)
    p.add_argument("--dask-chunk", type=int, default=65536, help="spectra per dask chunk")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    import dask.array as da

    from spectrotomo import volume
    from spectrotomo.spectra import lcf, lcf_xarray, references

    rng = np.random.default_rng(0)
    n = args.energies
    refs = _references(3, n, rng)
    z, y, x = args.shape
    flat = _spectra(refs, z * y * x, rng, np.float32)
    energies = np.linspace(630.0, 660.0, n)
    vol = volume(np.ascontiguousarray(np.moveaxis(flat.reshape(z, y, x, n), -1, 0)),
                 energies=energies, voxel_size=15.0, units="1")
    ref_da = references(refs, energies, names=["a", "b", "c"], valences=[2, 3, 4])
    lazy = da.from_array(flat, chunks=(args.dask_chunk, n))
    cases = {
        "lcf (N, n) array": lambda: lcf(flat, refs, sum_to_one=True, dtype=np.float32),
        "lcf_xarray (energy, z, y, x)": lambda: lcf_xarray(vol, ref_da, sum_to_one=True,
                                                           dtype=np.float32),
        "lcf dask, compute fractions": lambda: lcf(lazy, refs, sum_to_one=True,
                                                   dtype=np.float32).fractions.compute(),
    }
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, "
          f"spectra: {flat.shape[0]} x {n} energies")
    for name, fn in cases.items():
        fn()  # warm-up
        wall, cpu = _rate(fn, flat.shape[0], args.repeats)
        print(f"{name:32s} {wall:10.3g} spectra/s  [{cpu:.3g} per CPU-second]")


if __name__ == "__main__":
    main()
