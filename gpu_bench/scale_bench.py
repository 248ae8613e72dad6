"""Scale benchmark of the segment and profile steps: time, CPU and peak memory vs size.

For each size (64^3 ``small``, 128^3 ``demo``, 256^3 ``large`` simulator presets; other
sizes, or every size with ``--same-voxel``, ``large`` resized at its 10 nm voxels: ``_grown``) an attenuation volume (Mn L3 above-edge, 3 % noise) and
element amounts (truth x 5 % noise) are written once to a zarr cache; then, each in a
fresh process (so that the peak RSS is the step's own):

* ``whole``  -- the whole-volume stage functions, as the pipeline ran them before;
* ``blocks`` -- ``segment_volume`` block by block (``--chunk``), inputs read lazily;
* ``profile`` -- the 6 tables of TM/O and the amounts by shell/depth/class in one
  ``profile_tables_blocks`` call, as the profile step (``--profile-apart``: one
  ``profile_table_blocks`` call each); of the whole run's segmentation (without a whole
  run, of the blocks run's).

Each child sets its allocator up as the pipeline sets up its processes and workers
(``pipeline._compute.limit_malloc_arenas``: one glibc arena); ``--glibc-default`` leaves
glibc's per-thread arenas.

Printed: wall s, CPU s, CPU s / wall s, peak RSS above the process's RSS after imports and
opening the inputs (MiB), whether every block-wise output equals the whole-volume one;
per pair of consecutive sizes the growth exponent (CPU s ~ voxels^k), the peak ratio and
the projected CPU hours for 2048^3 (8 energies x 131 angles x 2048^2 gives one 2048^3
volume) and hours on 2 and 16 cores if the blocks kept every core busy.

With ``--store demo-out/sample.zarr`` the reconstructed demo (its energy-mean attenuation
and its amounts) is one more row.

``--workers N`` runs the blocks on N threads (default: ``OMP_NUM_THREADS`` or the
CPUs; 1 = serial); the outputs are the same bits whatever N.

Usage: python gpu_bench/scale_bench.py [--sizes 64 128 256 384] [--chunk 64] [--cache DIR]
                                       [--store STORE] [--workers N] [--glibc-default]
                                       [--same-voxel] [--profile-apart]
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


def _grown(size: int) -> dict:
    """``large`` (256^3 x 10 nm) resized to ``size``^3 at the same 10 nm voxels: particle
    radius with the edge, grains, voids and cracks with the volume. For sizes beyond the
    presets (384^3) and for a series at one voxel size (``--same-voxel``: the presets'
    voxels differ, 12 nm at 128^3, and the smoothing halo in voxels with them)."""
    f = size / 256
    return {"shape": (size,) * 3, "radius_nm": 1000.0 * f, "n_grains": round(600 * f ** 3),
            "n_voids": max(1, round(40 * f ** 3)), "n_cracks": max(1, round(20 * f ** 3))}


def _name(size: int, same_voxel: bool) -> str:
    if size in PRESET and not (same_voxel and size != 256):
        return PRESET[size]
    return f"large{size}"


ELEMENTS = ["Mn", "Co", "Ni", "O"]


def _build(size: int, cache: Path, same_voxel: bool = False) -> Path:
    import zarr

    from spectrotomo import simulate
    from spectrotomo.spectra import EDGES

    name = _name(size, same_voxel)
    out = cache / f"{name}.zarr"
    if (out / "done").exists():
        return out
    preset = name in PRESET.values()
    truth = simulate.particle(name if preset else "large", seed=0,
                              **({} if preset else _grown(size)))
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


def _child(mode: str, path: str, chunk: int, workers=None, glibc_default=False,
           apart=False) -> dict:
    """One measurement in this (fresh) process, its allocator set up as the pipeline sets
    up its own processes and workers (one glibc arena) unless ``glibc_default``."""
    import psutil
    import xarray as xr
    import zarr

    from spectrotomo import segmentation as seg
    from spectrotomo.pipeline._compute import limit_malloc_arenas

    arenas = None if glibc_default else limit_malloc_arenas()

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
        have_ref = (out_dir / "mask").exists()
        out = None if have_ref else zarr.open_group(str(out_dir), mode="w")
        for k, v in res.arrays.items():  # after the timing: whole arrays only to compare
            got = np.asarray(v[(slice(None),) * 3])
            if out is not None:  # no whole-volume run (too large): the profile's input
                out.create_array(k, data=got, chunks=(64,) * 3)
                continue
            ref = zarr.open_array(str(out_dir / k), mode="r")[...]
            same[k] = bool(np.array_equal(got, ref, equal_nan=got.dtype.kind == "f"))
        res.close()
        return {"wall": wall, "cpu": cpu, "peak": peak - base, "same": same, "arenas": arenas}
    else:  # profile, block by block, from the whole run's segmentation
        lab = {k: zarr.open_array(str(out_dir / k), mode="r")
               for k in ("mask", "shell", "depth", "composition_class", "tm_o_ratio_smoothed")}
        import dask.array as da

        values = xr.DataArray(da.from_array(amount, chunks=amount.chunks), dims=("element", "z", "y", "x"),
                              coords={"element": ELEMENTS}, attrs={"units": "1/nm^3"})
        # as the profile step: every table in one call (the inputs shared), or one call per
        # table (--profile-apart, the bench's form before session 5)
        jobs = [dict(values=v, regions=reg, by=by, mask=lab["mask"], **kw)
                for by, reg, kw in (("shell", lab["shell"], {}),
                                    ("class", lab["composition_class"], {}),
                                    ("depth", lab["depth"], {"bins": [0, 30, 100, 200, 400, 800]}))
                for v in (values, lab["tm_o_ratio_smoothed"])]
        if apart:
            for job in jobs:
                seg.profile_table_blocks(chunk=chunk, workers=workers, **job)
        else:
            seg.profile_tables_blocks(jobs, chunk=chunk, workers=workers)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    peak = _hwm()
    return {"wall": wall, "cpu": cpu, "peak": peak - base, "arenas": arenas, **info}


def _run(mode, path, chunk, workers=None, glibc_default=False, apart=False) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(path), "--chunk", str(chunk)]
    cmd += [] if workers is None else ["--workers", str(workers)]
    cmd += ["--glibc-default"] if glibc_default else []
    cmd += ["--profile-apart"] if apart else []
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
    parser.add_argument("--same-voxel", action="store_true",
                        help="every size at large's 10 nm voxels (see _grown)")
    parser.add_argument("--glibc-default", action="store_true",
                        help="glibc's own arenas, not the pipeline's one (limit_malloc_arenas)")
    parser.add_argument("--profile-apart", action="store_true",
                        help="profile: one profile_table_blocks call per table (default: all "
                             "tables in one profile_tables_blocks call, as the profile step)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1], args.chunk, args.workers,
                                args.glibc_default, args.profile_apart)))
        return
    if args.peers:
        return _peers()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    rows = {}
    arenas = "glibc default" if args.glibc_default else (
        f"MALLOC_ARENA_MAX={os.environ['MALLOC_ARENA_MAX']} (environment)"
        if "MALLOC_ARENA_MAX" in os.environ else "the pipeline's (limit_malloc_arenas)")
    print(f"cores {os.cpu_count()}, chunk {args.chunk}, block threads {args.workers or 'all'}, "
          f"load {os.getloadavg()[0]:.1f}, malloc arenas {arenas}; "
          "wall s | CPU s | cpu/wall | peak MiB above base")
    inputs = [(n, _build(n, cache, args.same_voxel)) for n in args.sizes]
    if args.store:
        inputs.append(("store", _from_store(args.store, cache)))
    for n, path in inputs:
        for mode in args.modes:
            r = _run(mode, path, args.chunk, args.workers, args.glibc_default,
                     args.profile_apart)
            rows[(n, mode)] = r
            same = "" if "same" not in r else "no whole-volume reference" if not r["same"] else (
                "all outputs identical" if all(r["same"].values()) else f"DIFFER {r['same']}")
            print(f"{n:>5}{'^3' if n != 'store' else '  '} {mode:8s} {r['wall']:8.2f} s | "
                  f"{r['cpu']:7.1f} | {r['cpu'] / r['wall']:4.2f} | {r['peak'] / 2**20:8.1f} MiB  "
                  f"{same}", flush=True)
    sizes = sorted(args.sizes)
    for a, b in zip(sizes, sizes[1:]):
        for mode in args.modes:
            # CPU seconds, not wall: under load the wall time is the other processes'
            ca, cb = rows[(a, mode)]["cpu"], rows[(b, mode)]["cpu"]
            k = np.log(cb / ca) / np.log((b / a) ** 3)
            cpu2048 = cb * (2048 / b) ** (3 * k)
            pa, pb = rows[(a, mode)]["peak"], rows[(b, mode)]["peak"]
            print(f"{a}->{b} {mode:8s} CPU ~ voxels^{k:4.2f}; peak {b}^3 / {a}^3 = "
                  f"{pb / max(pa, 1):4.2f}; 2048^3 projected {cpu2048 / 3600:6.1f} CPU h = "
                  f"{cpu2048 / 2 / 3600:6.1f} h on 2 cores, {cpu2048 / 16 / 3600:5.1f} h on 16 "
                  "(if the blocks kept every core busy)")


if __name__ == "__main__":
    main()
