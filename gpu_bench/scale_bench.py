"""Scale benchmark of the segment and profile steps: time, CPU and peak memory vs size.

For each size (64^3 ``small``, 128^3 ``demo``, 256^3 ``large`` simulator presets) an
attenuation volume (Mn L3 above-edge, 3 % noise) and element amounts (truth x 5 %
noise) are written once to a zarr cache; then, each in a fresh process (so that the
peak RSS is the step's own):

* ``whole``  -- the whole-volume stage functions, as the pipeline ran them before;
* ``blocks`` -- ``segment_volume`` block by block (``--chunk``), inputs read lazily;
* ``profile`` -- ``profile_table_blocks`` of TM/O and the amounts by shell/depth/class.

Printed: wall s, CPU s / wall s, peak RSS above the process's RSS after imports and
opening the inputs (MiB), whether every block-wise output equals the whole-volume one,
the growth exponent per step (time ~ voxels^k between the two largest sizes) and the
projected time for 2048^3 (8 energies x 131 angles x 2048^2 gives one 2048^3 volume).

With ``--store demo-out/sample.zarr`` the reconstructed demo (its energy-mean attenuation
and its amounts) is one more row.

``--workers N`` runs the blocks on N threads (default: ``OMP_NUM_THREADS`` or the
CPUs; 1 = serial); the outputs are the same bits whatever N.

Usage: python gpu_bench/scale_bench.py [--sizes 64 128 256] [--chunk 64] [--cache DIR]
                                       [--store STORE] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PRESET = {32: "tiny", 64: "small", 128: "demo", 256: "large"}
ELEMENTS = ["Mn", "Co", "Ni", "O"]


def _build(size: int, cache: Path) -> Path:
    import zarr

    from spectrotomo import simulate
    from spectrotomo.spectra import EDGES

    out = cache / f"{PRESET[size]}.zarr"
    if (out / "done").exists():
        return out
    truth = simulate.particle(PRESET[size], seed=0)
    mu = simulate.attenuation(truth, [EDGES["Mn"]["above"]]).values[0]
    rng = np.random.default_rng(1)
    mu = (mu + rng.normal(0, 0.03 * mu.max(), mu.shape)).astype(np.float32)
    amounts = truth["density"].sel(element=ELEMENTS).values
    amounts = (amounts * (1 + rng.normal(0, 0.05, amounts.shape))).astype(np.float32)
    root = zarr.open_group(str(out), mode="w")
    root.create_array("mu", data=mu, chunks=(64,) * 3)
    root.create_array("amount", data=amounts, chunks=(4, 64, 64, 64))
    root.attrs.update(pixel_size=float(truth.attrs["pixel_size"]),
                      target=float(truth.attrs["target_tm_o"]))
    (out / "done").touch()
    return out


def _from_store(store: str, cache: Path) -> Path:
    """The energy-mean attenuation and the amounts of a pipeline store (e.g. the demo's)."""
    import zarr

    from spectrotomo import io

    out = cache / "store.zarr"
    mu = io.read_group(store, "recon")["mu"]
    amount = io.read_group(store, "chemistry")["amount"].sel(element=ELEMENTS)
    root = zarr.open_group(str(out), mode="w")
    root.create_array("mu", data=mu.values.mean(axis=0), chunks=(64,) * 3)
    root.create_array("amount", data=amount.values.astype(np.float32), chunks=(4, 64, 64, 64))
    root.attrs.update(pixel_size=float(mu.attrs["pixel_size"]),
                      target=float(io.read_group(store, "truth").attrs["target_tm_o"]))
    return out


def _whole(mu, amount, px, target):
    from spectrotomo import segmentation as seg

    mu, a = mu[...], amount[...]
    mask = seg.particle_mask(mu)
    depth = seg.depth(mask, spacing=px)
    pores = seg.find_pores(mu, mask, spacing=px)
    cracks = seg.find_cracks(mu, mask, spacing=px)
    solid = mask & (pores == 0) & (cracks == 0)
    stack = np.stack([a[:3].sum(axis=0), a[3]])
    tm, o = seg.masked_smooth(stack, solid, sigma_nm=30, spacing=px, surface_nm=40)
    defined = solid & np.isfinite(tm) & np.isfinite(o) & (o > 0)
    ratio = np.where(defined, tm / np.where(defined, o, 1.0), np.nan).astype(np.float32)
    ratio = seg.surface_layer_pooling(ratio, stack[0], stack[1], depth, mask=solid, spacing=px,
                                      surface_nm=40, pooling=0.6)  # segment_volume's default
    defined = np.isfinite(ratio)
    return {"mask": mask, "depth": depth, "shell": seg.shells(mask, 5, px, depth_map=depth),
            "pores": pores, "cracks": cracks, "tm_o_ratio_smoothed": ratio,
            "composition_class": seg.composition_classes(ratio, target, 0.05, mask=defined)}


def _hwm() -> int:
    """Peak RSS of this process (bytes). Not ru_maxrss: Linux carries that over exec from
    the parent (which built the inputs), VmHWM belongs to this process image."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(mode: str, path: str, chunk: int, workers=None) -> dict:
    """One measurement in this (fresh) process."""
    import psutil
    import xarray as xr
    import zarr

    from spectrotomo import segmentation as seg

    root = zarr.open_group(path, mode="r")
    mu, amount = root["mu"], root["amount"]
    px, target = root.attrs["pixel_size"], root.attrs["target"]
    base = psutil.Process().memory_info().rss
    out_dir = Path(path).parent / f"out-{Path(path).stem}"
    t, c = time.perf_counter(), time.process_time()
    info = {}
    if mode == "whole":
        res = _whole(mu, amount, px, target)
        out = zarr.open_group(str(out_dir), mode="w")  # chunked: the profile reads blocks
        for k, v in res.items():
            out.create_array(k, data=np.asarray(v), chunks=(64,) * 3)
    elif mode == "blocks":
        res = seg.segment_volume(mu, spacing=px, chunk=chunk, amounts=amount,
                                 elements=ELEMENTS, target=target, workers=workers)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        peak = _hwm()
        same = {}
        for k, v in res.arrays.items():  # after the timing: whole arrays only to compare
            ref = zarr.open_array(str(out_dir / k), mode="r")[...]
            got = np.asarray(v[(slice(None),) * 3])
            same[k] = bool(np.array_equal(got, ref, equal_nan=got.dtype.kind == "f"))
        res.close()
        return {"wall": wall, "cpu": cpu, "peak": peak - base, "same": same}
    else:  # profile, block by block, from the whole run's segmentation
        lab = {k: zarr.open_array(str(out_dir / k), mode="r")
               for k in ("mask", "shell", "depth", "composition_class", "tm_o_ratio_smoothed")}
        import dask.array as da

        values = xr.DataArray(da.from_array(amount, chunks=amount.chunks), dims=("element", "z", "y", "x"),
                              coords={"element": ELEMENTS}, attrs={"units": "1/nm^3"})
        for by, reg, kw in (("shell", lab["shell"], {}), ("class", lab["composition_class"], {}),
                            ("depth", lab["depth"], {"bins": [0, 30, 100, 200, 400, 800]})):
            for v in (values, lab["tm_o_ratio_smoothed"]):
                seg.profile_table_blocks(v, reg, by=by, mask=lab["mask"], chunk=chunk,
                                         workers=workers, **kw)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    peak = _hwm()
    return {"wall": wall, "cpu": cpu, "peak": peak - base, **info}


def _run(mode, path, chunk, workers=None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(path), "--chunk", str(chunk)]
    cmd += [] if workers is None else ["--workers", str(workers)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _peers(size: int = 160) -> None:
    """The libraries against what they replaced, same data: cc3d vs scipy.ndimage.label
    (6 and 26 neighbours, numbering compared), edt vs scipy distance_transform_edt."""
    import cc3d
    import edt
    from scipy import ndimage

    rng = np.random.default_rng(0)
    blobs = ndimage.gaussian_filter(rng.random((size,) * 3).astype(np.float32), 2) > 0.5
    for conn, structure in ((6, None), (26, np.ones((3, 3, 3)))):
        t = time.perf_counter()
        ref, n = ndimage.label(blobs, structure=structure)
        t_ref = time.perf_counter() - t
        t = time.perf_counter()
        got = cc3d.connected_components(blobs, connectivity=conn)
        t_got = time.perf_counter() - t
        print(f"labels {conn:2d}-conn {size}^3: cc3d {t_got:6.3f} s, scipy {t_ref:6.3f} s "
              f"(x{t_ref / t_got:4.2f}); identical numbering {np.array_equal(got, ref)}")
    grid = np.indices((size,) * 3) - (size - 1) / 2
    ball = np.sqrt((grid ** 2).sum(axis=0)) <= 0.4 * size
    t = time.perf_counter()
    ref = ndimage.distance_transform_edt(ball, sampling=(10.0,) * 3)
    t_ref = time.perf_counter() - t
    t = time.perf_counter()
    got = np.sqrt(edt.edtsq(ball, anisotropy=(10.0,) * 3, parallel=os.cpu_count())
                  .astype(np.float64))  # as _blockedt: float32 squares, float64 root
    t_got = time.perf_counter() - t
    print(f"EDT ball {size}^3: edt {t_got:6.3f} s ({os.cpu_count()} threads), scipy "
          f"{t_ref:6.3f} s (x{t_ref / t_got:4.2f}); equal {np.array_equal(got, ref)}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--cache", default="/tmp/spectrotomo-scale-bench")
    parser.add_argument("--peers", action="store_true", help="cc3d / edt vs scipy only")
    parser.add_argument("--modes", nargs="+", default=["whole", "blocks", "profile"])
    parser.add_argument("--store", help="also a pipeline store's recon + chemistry (demo-out)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"))
    parser.add_argument("--workers", type=int, help="block threads (default: every CPU)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1], args.chunk, args.workers)))
        return
    if args.peers:
        return _peers()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    rows = {}
    print(f"cores {os.cpu_count()}, chunk {args.chunk}, block threads {args.workers or 'all'}, "
          f"load {os.getloadavg()[0]:.1f}; wall s | cpu/wall | peak MiB above base")
    inputs = [(n, _build(n, cache)) for n in args.sizes]
    if args.store:
        inputs.append(("store", _from_store(args.store, cache)))
    for n, path in inputs:
        for mode in args.modes:
            r = _run(mode, path, args.chunk, args.workers)
            rows[(n, mode)] = r
            same = "" if "same" not in r else (
                "all outputs identical" if all(r["same"].values()) else f"DIFFER {r['same']}")
            print(f"{n:>5}{'^3' if n != 'store' else '  '} {mode:8s} {r['wall']:8.2f} s | {r['cpu'] / r['wall']:4.2f} | "
                  f"{r['peak'] / 2**20:8.1f} MiB  {same}", flush=True)
    if len(args.sizes) >= 2:
        a, b = sorted(args.sizes)[-2:]
        for mode in args.modes:
            ta, tb = rows[(a, mode)]["wall"], rows[(b, mode)]["wall"]
            k = np.log(tb / ta) / np.log((b / a) ** 3)
            t2048 = tb * (2048 / b) ** (3 * k)
            pa, pb = rows[(a, mode)]["peak"], rows[(b, mode)]["peak"]
            print(f"{mode:8s} time ~ voxels^{k:4.2f}; 2048^3 projected {t2048 / 3600:7.1f} h "
                  f"on this machine; peak {b}^3 / {a}^3 = {pb / max(pa, 1):4.2f}")


if __name__ == "__main__":
    main()
