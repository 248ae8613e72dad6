"""Sample-store throughput: spectrotomo.io against plain xarray/zarr on the same data.

Measures the overhead of the store's safety (temporary store + rename,
completion markers, per-chunk done markers, crc32c checksums) over the peer
calls it wraps, the cost of the crc32c codec alone (zstd vs zstd + crc32c,
same zarr calls), and of io.verify_store (full and quick).

    PYTHONPATH=src python gpu_bench/store_bench.py --energies 8 --size 128 --chunk 32
"""

import shutil
import tempfile
from pathlib import Path

import numpy as np

import harness


def _timed(fn, repeat):
    """Best of ``repeat`` calls after a warm-up (the shared harness)."""
    return harness.timeit(fn, repeat=repeat).best


def _crc_section(work: Path, data, chunks, repeat: int) -> None:
    """zstd vs zstd + crc32c on the same zarr array writes and reads; verify_store."""
    import zarr
    from zarr.codecs import Crc32cCodec, ZstdCodec

    from spectrotomo.io import mark_complete, verify_store

    mb = data.nbytes / 2**20
    times = {}
    for label, comps in (("zstd", (ZstdCodec(),)), ("zstd+crc32c", (ZstdCodec(), Crc32cCodec()))):
        path = work / f"crc-{label}.zarr"

        def write():
            arr = zarr.create_array(str(path), name="g/v", shape=data.shape, dtype=data.dtype,
                                    chunks=chunks, compressors=comps, overwrite=True,
                                    zarr_format=3, config={"write_empty_chunks": True})
            arr[:] = data

        def read():
            zarr.open_array(str(path / "g" / "v"), mode="r")[:]

        times[label] = (_timed(write, repeat), _timed(read, repeat))
    import google_crc32c
    import numcodecs

    raw = data.tobytes()
    t_crc = _timed(lambda: google_crc32c.value(raw), repeat)
    t_zstd = _timed(lambda: numcodecs.Zstd(level=0).encode(raw), repeat)
    packed = numcodecs.Zstd(level=0).encode(raw)
    t_unz = _timed(lambda: numcodecs.Zstd(level=0).decode(packed), repeat)
    print(f"codec CPU, one thread, {mb:.0f} MB: crc32c {t_crc:.4f} s ({mb / t_crc:.0f} MB/s), "
          f"zstd encode {t_zstd:.3f} s, decode {t_unz:.3f} s; crc32c / zstd encode "
          f"{t_crc / t_zstd:.3f}, crc32c / zstd decode {t_crc / t_unz:.3f}")
    (w0, r0), (w1, r1) = times["zstd"], times["zstd+crc32c"]
    print(f"crc32c codec, write {mb:.0f} MB: zstd {w0:.3f} s, zstd+crc32c {w1:.3f} s, "
          f"ratio {w1 / w0:.2f}")
    print(f"crc32c codec, read {mb:.0f} MB: zstd {r0:.3f} s, zstd+crc32c {r1:.3f} s, "
          f"ratio {r1 / r0:.2f}")
    store = work / "crc-zstd+crc32c.zarr"
    g = zarr.open_group(str(store / "g"), mode="r+")
    g.attrs["spectrotomo_store"] = {"state": "writing", "regions": []}
    mark_complete(store, "g")
    t_full = _timed(lambda: verify_store(store), repeat)
    t_quick = _timed(lambda: verify_store(store, quick=True), repeat)
    rep = verify_store(store, quick=True)
    print(f"verify_store {mb:.0f} MB ({rep.chunks_total} chunks): full {t_full:.3f} s "
          f"({mb / t_full:.0f} MB/s), quick {t_quick:.3f} s ({rep.chunks_read} chunks read: "
          f"<= 256 MiB groups are read whole); read {r1:.3f} s; full/read {t_full / r1:.2f}")


def main():
    import xarray as xr
    import zarr

    from spectrotomo import volume
    from spectrotomo.io import init_array, mark_complete, read_group, write, write_region

    p = harness.parser(__doc__, quick={"energies": 2, "size": 32, "chunk": 16, "repeat": 1})
    p.add_argument("--energies", type=int, default=8)
    p.add_argument("--size", type=int, default=128, help="volume edge (voxels)")
    p.add_argument("--chunk", type=int, default=32, help="z chunk of region writes (voxels)")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    harness.start("store_bench: spectrotomo.io vs xarray/zarr")
    n, e = args.size, args.energies
    data = np.random.default_rng(0).random((e, n, n, n), dtype=np.float32)
    vol = volume(data, energies=np.linspace(640, 660, e), voxel_size=10.0)
    mb = data.nbytes / 2**20
    chunks = (1, args.chunk, n, n)
    work = Path(tempfile.mkdtemp(prefix="store_bench_"))
    try:
        def ours():
            write(work / "a.zarr", "recon", vol, overwrite=True,
                  encoding={"volume": {"chunks": chunks}})

        def peer():
            vol.to_dataset().to_zarr(work / "b.zarr", group="recon", mode="w", zarr_format=3,
                                     consolidated=False, encoding={"volume": {"chunks": chunks}})

        t_ours, t_peer = _timed(ours, args.repeat), _timed(peer, args.repeat)
        print(f"whole write {mb:.0f} MB: spectrotomo.io.write {t_ours:.3f} s, xarray.to_zarr "
              f"{t_peer:.3f} s, ratio {t_ours / t_peer:.2f}")

        def ours_read():
            read_group(work / "a.zarr", "recon").load()

        def peer_read():
            xr.open_zarr(work / "b.zarr", group="recon", zarr_format=3, chunks={},
                         consolidated=False).load()

        t_ours, t_peer = _timed(ours_read, args.repeat), _timed(peer_read, args.repeat)
        print(f"read {mb:.0f} MB: spectrotomo.io.read_group {t_ours:.3f} s, xarray.open_zarr "
              f"{t_peer:.3f} s, ratio {t_ours / t_peer:.2f}")

        regions = [(i, z) for i in range(e) for z in range(0, n, args.chunk)]

        def ours_regions():
            init_array(work / "c.zarr", "recon", "volume", shape=data.shape, dtype=data.dtype,
                       chunks=chunks, dims=vol.dims, overwrite=True)
            shutil.rmtree(work / "c.zarr" / "recon" / "volume" / ".spectrotomo_done",
                          ignore_errors=True)
            for i, z in regions:
                write_region(work / "c.zarr", "recon", "volume",
                             {"energy": slice(i, i + 1), "z": slice(z, z + args.chunk)},
                             data[i:i + 1, z:z + args.chunk])
            mark_complete(work / "c.zarr", "recon")

        def peer_regions():
            arr = zarr.create_array(str(work / "d.zarr"), shape=data.shape, dtype=data.dtype,
                                    chunks=chunks, overwrite=True, zarr_format=3)
            for i, z in regions:
                arr[i:i + 1, z:z + args.chunk] = data[i:i + 1, z:z + args.chunk]

        t_ours, t_peer = _timed(ours_regions, args.repeat), _timed(peer_regions, args.repeat)
        print(f"{len(regions)} region writes {mb:.0f} MB: spectrotomo.io {t_ours:.3f} s, "
              f"plain zarr {t_peer:.3f} s, ratio {t_ours / t_peer:.2f}")
        _crc_section(work, data, chunks, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
