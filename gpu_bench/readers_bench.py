"""Reader throughput: spectrotomo.io.read (eager and lazy) vs plain h5py on one
Data Exchange file, plus the cost of opening lazily (metadata only).

    PYTHONPATH=src python gpu_bench/readers_bench.py --angles 181 --ny 768 --nx 1024
"""

from __future__ import annotations

import os
import resource
import tempfile

import numpy as np

import harness


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


def main():
    ap = harness.parser(__doc__, quick={"angles": 16, "ny": 64, "nx": 64})
    ap.add_argument("--angles", type=int, default=181)
    ap.add_argument("--ny", type=int, default=768)
    ap.add_argument("--nx", type=int, default=1024)
    args = ap.parse_args()
    harness.start("readers_bench: io.read vs h5py, one Data Exchange file")
    import h5py

    import spectrotomo.io as sio

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "scan.h5")
        _write(path, args.angles, args.ny, args.nx)
        mb = os.path.getsize(path) / 2**20
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t_first = harness.once(lambda: sio.read(path)).best  # includes first-use imports
        opened = harness.once(lambda: sio.read(path))
        lazy, t_open = opened.out, opened.best
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        data = lazy["projections"].data  # lazy (dask) above 256 MiB, else in memory
        print(f"file {mb:.0f} MiB; read() auto -> {type(data).__name__} "
              f"chunks {getattr(data, 'chunksize', '-')}; open {t_open * 1e3:.1f} ms "
              f"(first call {t_first * 1e3:.0f} ms, imports included); "
              f"peak RSS grew {rss1 - rss0:.0f} MiB")
        t_lazy = harness.once(lambda: lazy["projections"].values).best
        t_lazy_mean = harness.once(lambda: lazy["projections"].mean("angle").values).best
        h5 = harness.once(lambda: h5py.File(path, "r")["exchange/data"][()])
        t_h5 = h5.best
        t_h5_mean = harness.once(lambda: h5py.File(path, "r")["exchange/data"][()].mean(0)).best
        eager = harness.once(lambda: sio.read(path, lazy=False))
        t_eager = eager.best
        assert np.array_equal(eager.out["projections"].values[0], h5.out)
        harness.print_table(
            ["read", "s", "MiB/s", "ratio vs h5py"],
            [["h5py full read", t_h5, mb / t_h5, "1.00x"],
             ["read(lazy=False)", t_eager, mb / t_eager, harness.ratio(t_eager, t_h5)],
             ["read() lazy, .values", t_lazy, mb / t_lazy, harness.ratio(t_lazy, t_h5)],
             ["mean over angle: h5py + numpy", t_h5_mean, mb / t_h5_mean, "-"],
             ["mean over angle: lazy dask", t_lazy_mean, mb / t_lazy_mean,
              harness.ratio(t_lazy_mean, t_h5_mean)]])

if __name__ == "__main__":
    main()
