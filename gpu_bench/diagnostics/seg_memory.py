"""Where the segment / profile peak memory goes: RSS and glibc heap per phase.

Runs ``segment_volume`` (or the profile tables) on a scale_bench input in this process
with a sampler thread (RSS every 5 ms) and the block-wise phases wrapped, and prints per
phase: RSS at its start, the highest RSS while it ran, and glibc's heap at its end
(``mallinfo2``: bytes in use, bytes free but kept in the arenas, mmapped bytes).

Usage: PYTHONPATH=src python gpu_bench/diagnostics/seg_memory.py CACHE/large.zarr
       [--chunk 64] [--workers 2] [--mode segment|profile] [--tracemalloc] [--arena-max N]
Also prints the highest RSS while a block task of each kind (block function) ran.
(inputs: ``gpu_bench/scale_bench.py --cache CACHE`` builds them; profile reads the
``out-<name>`` whole-volume outputs scale_bench writes next to them.)
"""

from __future__ import annotations

import argparse
import ctypes
import threading
import time
from pathlib import Path

import numpy as np

PAGE = 4096


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks",
                                               "keepcost")]


def heap() -> dict:
    """glibc heap figures (MiB): in use, free in arenas, mmapped; {} elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        m = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    return {"used": m.uordblks / 2**20, "free": m.fordblks / 2**20, "mmap": m.hblkhd / 2**20}


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


class Sampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.samples, self.stop = [], False

    def run(self):
        while not self.stop:
            self.samples.append((time.perf_counter(), rss()))
            time.sleep(0.005)


def _wrap(module, name, phases):
    fn = getattr(module, name)

    def wrapped(*args, **kwargs):
        start = time.perf_counter()
        at = rss()
        try:
            return fn(*args, **kwargs)
        finally:
            phases.append((name, start, time.perf_counter(), at, heap()))

    setattr(module, name, wrapped)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", default="segment", choices=["segment", "profile"])
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--arena-max", type=int, help="mallopt(M_ARENA_MAX) in this process")
    args = parser.parse_args()
    libc = ctypes.CDLL("libc.so.6")
    if args.arena_max:
        print("mallopt(M_ARENA_MAX)", libc.mallopt(-8, args.arena_max))
    tasks = []  # (block function, start, end): the RSS while each kind of block task ran
    from spectrotomo.segmentation import _blocks as blocks_module

    prepare = blocks_module._same

    def timed(fn):
        fn = prepare(fn)

        def run(item):
            start = time.perf_counter()
            try:
                return fn(item)
            finally:
                tasks.append((getattr(fn, "__qualname__", "?"), start, time.perf_counter()))
        return run

    blocks_module._same = timed
    import zarr

    from spectrotomo import segmentation as seg
    from spectrotomo.segmentation import _blockseg, _segment

    root = zarr.open_group(args.path, mode="r")
    mu, amount = root["mu"], root["amount"]
    px, target = root.attrs["pixel_size"], root.attrs["target"]
    phases = []
    for name in ("particle_mask_blocks", "depth_blocks", "levels_blocks", "shells_blocks",
                 "pore_masks_blocks", "find_cracks_blocks", "_classes"):
        _wrap(_segment, name, phases)
    _wrap(_blockseg, "masked_smooth_blocks", phases)
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    base = rss()
    sampler = Sampler()
    sampler.start()
    t, c = time.perf_counter(), time.process_time()
    if args.mode == "segment":
        res = seg.segment_volume(mu, spacing=px, chunk=args.chunk, amounts=amount,
                                 elements=["Mn", "Co", "Ni", "O"], target=target,
                                 workers=args.workers)
        res.close()
    else:
        import dask.array as da
        import xarray as xr

        out_dir = Path(args.path).parent / f"out-{Path(args.path).stem}"
        lab = {k: zarr.open_array(str(out_dir / k), mode="r")
               for k in ("mask", "shell", "depth", "composition_class", "tm_o_ratio_smoothed")}
        values = xr.DataArray(da.from_array(amount, chunks=amount.chunks),
                              dims=("element", "z", "y", "x"),
                              coords={"element": ["Mn", "Co", "Ni", "O"]})
        # as the profile step: every table in one call, the inputs shared (read once)
        jobs = [dict(values=v, regions=reg, by=by, mask=lab["mask"], **kw)
                for by, reg, kw in (("shell", lab["shell"], {}),
                                    ("class", lab["composition_class"], {}),
                                    ("depth", lab["depth"], {"bins": [0, 30, 100, 200, 400, 800]}))
                for v in (values, lab["tm_o_ratio_smoothed"])]
        start, at = time.perf_counter(), rss()
        seg.profile_tables_blocks(jobs, chunk=args.chunk, workers=args.workers)
        phases.append(("6 tables", start, time.perf_counter(), at, heap()))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    sampler.stop = True
    sampler.join()
    s = np.array(sampler.samples)
    print(f"{args.path} {args.mode} chunk {args.chunk} workers {args.workers}: wall {wall:.1f} s, "
          f"CPU {cpu:.1f} s, peak above base {(s[:, 1].max() - base) / 2**20:.0f} MiB")
    print(f"{'phase':24s} {'start':>7s} {'peak':>7s} {'(MiB above base)':>17s}  heap at end "
          "(used / free in arenas / mmapped MiB)")
    for name, a, b, at, h in sorted(phases, key=lambda p: p[1]):
        sel = (s[:, 0] >= a) & (s[:, 0] <= b)
        peak = s[sel, 1].max() if sel.any() else at
        hp = " / ".join(f"{h[k]:.0f}" for k in ("used", "free", "mmap")) if h else "-"
        print(f"{name:24s} {(at - base) / 2**20:7.0f} {(peak - base) / 2**20:7.0f}"
              f"{'':17s}  {hp}  ({b - a:.1f} s)")
    by_fn = {}
    for name, a, b in tasks:  # samples are in time order
        lo, hi = np.searchsorted(s[:, 0], [a, b], side="left")
        if hi > lo:
            by_fn[name] = max(by_fn.get(name, 0), s[lo:hi, 1].max())
    print("highest RSS while a block task of each function ran (MiB above base):")
    for name, peak in sorted(by_fn.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {name:60s} {(peak - base) / 2**20:7.0f}")
    if args.tracemalloc:
        import tracemalloc

        cur, peak = tracemalloc.get_traced_memory()
        print(f"tracemalloc: peak {peak / 2**20:.0f} MiB (current {cur / 2**20:.0f})")


if __name__ == "__main__":
    main()
