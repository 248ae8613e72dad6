"""Reader throughput: spectrotomo.io.read (eager and lazy) vs plain h5py on one
Data Exchange file, plus the cost of opening lazily (metadata only).

    PYTHONPATH=src python gpu_bench/readers_bench.py --angles 181 --ny 768 --nx 1024
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import numpy as np


def _write(path, n, ny, nx):
    import h5py

    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as fh:
        d = fh.create_dataset("exchange/data", (n, ny, nx), "u2", chunks=(1, ny, nx))
        for i in range(0, n, 16):  # write in blocks: bounded memory
            k = min(16, n - i)
            d[i:i + k] = rng.integers(0, 60000, (k, ny, nx), dtype="u2")
        fh["exchange/data_white"] = np.full((4, ny, nx), 50000, "u2")
        fh["exchange/data_dark"] = np.full((2, ny, nx), 100, "u2")
        fh["exchange/theta"] = np.linspace(0, 180, n)
        e = fh.create_dataset("measurement/instrument/monochromator/energy", data=17.0)
        e.attrs["units"] = "keV"
        p = fh.create_dataset("measurement/instrument/detector/actual_pixel_size_x", data=0.65)
        p.attrs["units"] = "um"


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--angles", type=int, default=181)
    ap.add_argument("--ny", type=int, default=768)
    ap.add_argument("--nx", type=int, default=1024)
    args = ap.parse_args()
    import h5py

    import spectrotomo.io as sio

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "scan.h5")
        _write(path, args.angles, args.ny, args.nx)
        mb = os.path.getsize(path) / 2**20
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        _, t_first = _timed(lambda: sio.read(path))  # includes first-use imports
        lazy, t_open = _timed(lambda: sio.read(path))
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"file {mb:.0f} MiB; read() auto -> {type(lazy['projections'].data).__name__} "
              f"chunks {lazy['projections'].data.chunksize}; open {t_open * 1e3:.1f} ms "
              f"(first call {t_first * 1e3:.0f} ms, imports included); "
              f"peak RSS grew {rss1 - rss0:.0f} MiB")
        _, t_lazy = _timed(lambda: lazy["projections"].values)
        _, t_lazy_mean = _timed(lambda: lazy["projections"].mean("angle").values)
        ref, t_h5 = _timed(lambda: h5py.File(path, "r")["exchange/data"][()])
        _, t_h5_mean = _timed(lambda: h5py.File(path, "r")["exchange/data"][()].mean(0))
        eager, t_eager = _timed(lambda: sio.read(path, lazy=False))
        assert np.array_equal(eager["projections"].values[0], ref)
        print(f"h5py full read            {t_h5:.2f} s ({mb / t_h5:.0f} MiB/s)")
        print(f"read(lazy=False)          {t_eager:.2f} s  ratio vs h5py {t_eager / t_h5:.2f}")
        print(f"read() lazy, .values      {t_lazy:.2f} s  ratio vs h5py {t_lazy / t_h5:.2f}")
        print(f"mean over angle: lazy dask {t_lazy_mean:.2f} s, h5py+numpy {t_h5_mean:.2f} s, "
              f"ratio {t_lazy_mean / t_h5_mean:.2f}")


if __name__ == "__main__":
    main()
