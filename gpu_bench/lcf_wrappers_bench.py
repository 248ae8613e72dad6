"""Benchmark: overhead of spectrotomo.spectra's wrappers over plain lcf.

Same spectra (3 references x 100 energies, float32, nonneg + sum_to_one) as
  * lcf on a (N, n) array (spectra-major, contiguous),
  * lcf_xarray on an (energy, z, y, x) volume (read in place, energy-first),
  * lcf on a dask array chunked over spectra (map_blocks).
Prints wall-clock spectra/s and spectra per CPU-second (best of --repeats).

    PYTHONPATH=src python gpu_bench/lcf_wrappers_bench.py --shape 40 64 64
"""

from __future__ import annotations

import numpy as np

import harness
from lcf_bench import synthetic_references, synthetic_spectra


def main(argv=None):
    p = harness.parser(__doc__, quick={"shape": [8, 32, 32], "energies": 30, "repeats": 1})
    p.add_argument("--shape", type=int, nargs=3, default=[40, 64, 64], help="z y x voxels")
    p.add_argument("--energies", type=int, default=100)
    p.add_argument("--dask-chunk", type=int, default=65536, help="spectra per dask chunk")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    harness.start("lcf_wrappers_bench: lcf_xarray and dask wrappers vs plain lcf, spectra/s")
    import dask.array as da

    from spectrotomo import volume
    from spectrotomo.spectra import lcf, lcf_xarray, references

    rng = np.random.default_rng(0)
    n = args.energies
    refs = synthetic_references(3, n, rng)
    z, y, x = args.shape
    flat = synthetic_spectra(refs, z * y * x, rng, np.float32)
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
    print(f"spectra: {flat.shape[0]} x {n} energies, best of {args.repeats}")
    times = {name: harness.timeit(fn, repeat=args.repeats) for name, fn in cases.items()}
    plain = times["lcf (N, n) array"].best
    harness.print_table(["case", "spectra/s", "per CPU-second", "time / plain lcf"],
                        [[name, t.rate(flat.shape[0]), flat.shape[0] / t.cpu_best,
                          harness.ratio(t.best, plain)] for name, t in times.items()])


if __name__ == "__main__":
    main()
