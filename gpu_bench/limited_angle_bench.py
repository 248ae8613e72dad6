"""Limited-angle (-65..+65 deg) quantitative reconstruction: reconstruct_joint vs FBP vs ASTRA.

Parts (CPU; with ``--gpu`` part 1 also on the cupy device; numbers printed as tables):
1. ``simulate`` samples "small" and "demo" (seeds 31 / 41: no test or tuning uses
   them), 8 energies (O, Mn, Co, Ni pairs), 2e4 photons, normalized to optical
   density: per-element amount bias (``spectra.element_maps`` vs the truth's
   density over interior voxels, as the pipeline report's ``amount_relative_bias``),
   the smear one voxel beyond y- / x-facing surfaces (``face_smear``),
   particle-mask IoU and extent error per axis (``segmentation.particle_mask`` of the
   energy-mean volume vs the hole-filled truth), interior edge-jump RMS error, and
   time vs FBP of the same data in the same run (min of ``--repeats``; wall and CPU).
2. ASTRA CPU SIRT (100 iterations, MinConstraint 0, linear projector) on a 2-D
   stack of slices of the small sample, one energy: RMSE vs truth and time, against
   reconstruct_joint on the same stack.
3. Automatic weight: 3 held-out 2-D phantoms x 2 noise levels, RMSE of
   ``weight="auto"`` vs the best of a weight grid.

    PYTHONPATH=src python gpu_bench/limited_angle_bench.py [--quick] [--repeats 3]
        [--parts samples,astra,weight] [--presets small:31,demo:41] [--no-independent]
        [--no-support] [--gpu]

``--gpu`` adds rows with the data on the cupy device (time incl. transfers; the x FBP
ratios stay against the CPU FBP) and one ``GPU limited-angle ...`` line per sample.

The ASTRA peer is ``tests/recon/recon_helpers.astra_2d`` (one copy, imported from there).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from spectrotomo import segmentation as seg
from spectrotomo import simulate
from spectrotomo._model import volume
from spectrotomo.recon import AUTO_WEIGHT, reconstruct, reconstruct_joint
from spectrotomo.recon.prep import normalize
from spectrotomo.spectra import element_maps

# the ASTRA peer is the tests' (one copy; CI runs it there)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "recon"))
from recon_helpers import astra_2d  # noqa: E402

RANGES = {"O": (520.0, 560.0), "Mn": (630.0, 670.0), "Co": (770.0, 810.0),
          "Ni": (845.0, 885.0)}  # as pipeline EDGE_RANGES_EV
ENERGIES = np.array([525.0, 555.0, 635.0, 665.0, 775.0, 805.0, 848.0, 880.0])
ANGLES = np.arange(-65.0, 65.5, 1.0)


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))


def timed(fn, repeats: int):
    best = (np.inf, np.inf)
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, (time.perf_counter() - t, time.process_time() - c))
    return out, best


def sample(preset: str, seed: int):
    truth = simulate.particle(preset, seed=seed)
    ts = simulate.tilt_series(truth, energies=ENERGIES, angles=ANGLES, seed=seed + 1)
    p, f, d = ts["projections"].values, ts["flats"].values, ts["darks"].values
    od = np.stack([normalize(p[e], f[e], d[e])[0] for e in range(len(ENERGIES))])
    mu = simulate.attenuation(truth, ENERGIES).values * truth.attrs["pixel_size"]
    return truth, od.astype(np.float32), mu


def pairs():
    return {el: (ENERGIES[(ENERGIES >= lo) & (ENERGIES <= hi)].min(),
                 ENERGIES[(ENERGIES >= lo) & (ENERGIES <= hi)].max())
            for el, (lo, hi) in RANGES.items()}


def interior(truth):
    px = float(truth.attrs["pixel_size"])
    return ((truth["depth"].values > 3 * px) & (truth["occupancy"].values > 0.99)
            & ~truth["void"].values & ~truth["crack"].values)


def face_smear(x, truth):
    """Level (/ interior solid level) one voxel further out than the outside surface
    voxels (true occupancy 0.05-0.5) whose surface normal is mostly along y, resp. x:
    the missing wedge's smear (y) vs the measured direction (x); the truth is ~0 there."""
    occ = truth["occupancy"].values
    grad = np.gradient(occ)
    mag = [np.abs(g) for g in grad]
    xm = x.mean(0)
    solid = xm[interior(truth)].mean()
    band = (occ > 0.05) & (occ < 0.5)
    out = []
    for ax in (1, 2):
        o1, o2 = (mag[k] for k in range(3) if k != ax)
        face = band & (mag[ax] > 2 * o1) & (mag[ax] > 2 * o2)
        idx = list(np.nonzero(face))
        step = -np.sign(grad[ax][face]).astype(int)  # outwards
        idx[ax] = np.clip(idx[ax] + step, 0, occ.shape[ax] - 1)
        out.append(float(xm[tuple(idx)].mean() / solid))
    return out


def scores(x, truth, mu):
    """Amount bias per element, IoU, extent error per axis (z, y, x), jump error."""
    px = float(truth.attrs["pixel_size"])
    chem = element_maps(volume(x / px, energies=ENERGIES, voxel_size=px, units="1/nm",
                               name="mu"), pairs=pairs(), threshold=-np.inf)
    inner = interior(truth)
    bias, jump = {}, {}
    for k, (el, (lo, hi)) in enumerate(pairs().items()):
        est = chem["amount"].sel(element=el).values[inner]
        bias[el] = float(np.nanmean(est) / truth["density"].sel(element=el).values[inner].mean()
                         - 1)
        ib, ia = int(np.flatnonzero(ENERGIES == lo)[0]), int(np.flatnonzero(ENERGIES == hi)[0])
        true_jump = (mu[ia] - mu[ib])[inner]
        jump[el] = rmse((x[ia] - x[ib])[inner], true_jump) / float(np.abs(true_jump).mean())
    m = seg.particle_mask(x.mean(0))
    t = ndimage.binary_fill_holes(truth["particle"].values)
    ext = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        pm, pt = np.flatnonzero(m.any(axis=other)), np.flatnonzero(t.any(axis=other))
        ext.append(int((pm[-1] - pm[0]) - (pt[-1] - pt[0])))
    return bias, float((m & t).sum() / (m | t).sum()), ext, jump


def gpu_runs(od, repeats, tf):
    """FBP and the default joint solve with the data on the current cupy device (the
    transfer in and the result back included, synchronised), or [] without a device."""
    from spectrotomo._backend import cupy_available
    if not cupy_available():
        print("no CUDA device: GPU rows skipped", flush=True)
        return []
    import cupy

    def on_gpu(fn):
        def run():
            out = fn(cupy.asarray(od))
            cupy.cuda.Device().synchronize()
            return cupy.asnumpy(out)
        return run

    on_gpu(lambda d: reconstruct_joint(d[:, :, :2], ANGLES))()  # plans, kernels: warm-up
    fbp, tg = timed(on_gpu(lambda d: cupy.stack([reconstruct(o, ANGLES) for o in d])), repeats)
    x, tj = timed(on_gpu(lambda d: reconstruct_joint(d, ANGLES)), repeats)
    print(f"GPU limited-angle {od.shape[-1]}^2 x {od.shape[2]} rows x {od.shape[0]} energies: "
          f"FBP {tg[0]:.3f} s, joint {tj[0]:.3f} s ({tj[0] / tg[0]:.1f}x GPU FBP, "
          f"{tf[0] / tj[0]:.2f}x faster than CPU FBP)", flush=True)
    return [("fbp (cupy)", fbp, tg), ("joint (cupy, default)", x, tj)]


def part_samples(presets, repeats, independent=True, no_support=False, gpu=False):
    print("\n## -65..+65 deg, 8 energies, 2e4 photons: FBP vs reconstruct_joint (defaults)\n")
    print("| sample | method | time wall s (x FBP) | CPU s (x FBP) | RMSE/voxel | amount bias O, Mn,"
          " Co, Ni (%) | mask IoU | extent err z,y,x (vox) | smear y, x (x solid) | jump err O, Mn,"
          " Co, Ni |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for preset, seed in presets:
        truth, od, mu = sample(preset, seed)
        fbp, tf = timed(lambda: np.stack([reconstruct(o, ANGLES) for o in od]), repeats)
        runs = [("fbp", fbp, tf)]
        x, tj = timed(lambda: reconstruct_joint(od, ANGLES), repeats)
        runs.append(("joint (default)", x, tj))
        if gpu:
            runs += gpu_runs(od, repeats, tf)
        if no_support:  # the default before the shrink-wrap support (2026-12-03, session 4)
            xn, tn = timed(lambda: reconstruct_joint(od, ANGLES, support_fraction=None), repeats)
            runs.append(("joint, support_fraction=None", xn, tn))
        if independent:
            xi, ti = timed(lambda: reconstruct_joint(od, ANGLES, joint=False), 1)
            runs.append(("independent TV, same solver", xi, ti))
        for name, v, t in runs:
            b, iou, ext, jump = scores(v, truth, mu)
            print(f"| {preset} s{seed} {mu.shape[1]}^3 | {name} | {t[0]:.2f} ({t[0] / tf[0]:.1f}x) | "
                  f"{t[1]:.2f} ({t[1] / tf[1]:.1f}x) | {rmse(v, mu):.2e} | "
                  + ", ".join(f"{100 * b[e]:+.1f}" for e in RANGES) + f" | {iou:.3f} | "
                  + ",".join(f"{e:+d}" for e in ext) + " | "
                  + ", ".join(f"{v:.3f}" for v in face_smear(v, truth)) + " | "
                  + ", ".join(f"{jump[e]:.2f}" for e in RANGES) + " |", flush=True)


def astra_sirt(sino, iterations=100):
    """ASTRA 2-D CPU SIRT (linear projector, x >= 0) of one sinogram (n_angles, n)."""
    return astra_2d(sino, ANGLES, algorithm="SIRT", iterations=iterations,
                    options={"MinConstraint": 0.0})


def part_astra(repeats, n_rows=16):
    print(f"\n## 2-D slice stack ({n_rows} central rows of small s31, 665 eV): ASTRA CPU SIRT "
          "(100 it, x >= 0) vs reconstruct_joint\n")
    truth, od, mu = sample("small", 31)
    r0 = od.shape[2] // 2 - n_rows // 2
    e = 3  # Mn above the edge
    stack = np.ascontiguousarray(od[e:e + 1, :, r0:r0 + n_rows])
    true = mu[e, r0:r0 + n_rows]
    a, ta = timed(lambda: np.stack([astra_sirt(stack[0, :, r]) for r in range(n_rows)]), 1)
    j, tj = timed(lambda: reconstruct_joint(stack, ANGLES)[0], repeats)
    jall, tall = timed(lambda: reconstruct_joint(np.ascontiguousarray(od[:, :, r0:r0 + n_rows]),
                                                 ANGLES)[e], repeats)
    f, tf = timed(lambda: reconstruct(stack[0], ANGLES), repeats)
    print("| method | wall s | RMSE/voxel | time vs ASTRA SIRT |\n|---|---|---|---|")
    for name, v, t in [("ASTRA SIRT 100 it, min 0", a, ta), ("fbp", f, tf),
                       ("reconstruct_joint, this energy alone", j, tj),
                       ("reconstruct_joint, all 8 energies (time / 8)", jall,
                        (tall[0] / 8, tall[1] / 8))]:
        print(f"| {name} | {t[0]:.3f} | {rmse(v, true):.2e} | {ta[0] / t[0]:.1f}x faster |")


def phantoms(n=96):
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    shepp = resize(shepp_logan_phantom(), (n, n), anti_aliasing=True)
    rng = np.random.default_rng(7)
    balls = np.zeros((n, n))
    for _ in range(6):
        cy, cx, r = rng.uniform(-0.3 * n, 0.3 * n, 2).tolist() + [rng.uniform(0.06, 0.14) * n]
        balls += 0.5 * (((yy - cy) ** 2 + (xx - cx) ** 2) < r ** 2)
    part = simulate.particle("small", seed=23)
    mu = simulate.attenuation(part, [665.0]).values[0] * part.attrs["pixel_size"]
    sl = mu[mu.shape[0] // 2]
    sl = np.pad(sl, ((n - sl.shape[0]) // 2,) * 2)[:n, :n]
    return {"shepp-logan": shepp * 0.05, "balls": balls * 0.05, "particle s23": sl / sl.max() * 0.05}


def part_weight(weights=(0.03, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)):
    print("\n## Automatic weight: RMSE of weight='auto' vs the best of a grid "
          f"{list(weights)} (x image noise), 2-D, -65..+65 deg\n")
    print("| phantom | noise (% of max OD) | auto RMSE | best weight | best RMSE | auto / best |"
          " worst of grid |")
    print("|---|---|---|---|---|---|---|")
    from spectrotomo.simulate import project

    for name, img in phantoms().items():
        od_clean = project(img[None].repeat(4, 0).astype(np.float32), ANGLES)
        for level in (0.01, 0.03):
            noise = np.random.default_rng(5).normal(size=od_clean.shape)
            od = (od_clean + level * od_clean.max() * noise).astype(np.float32)[None]
            res = {w: rmse(reconstruct_joint(od, ANGLES, weight=w)[0], img[None].repeat(4, 0))
                   for w in weights}
            auto = rmse(reconstruct_joint(od, ANGLES)[0], img[None].repeat(4, 0))
            best = min(res, key=res.get)
            print(f"| {name} | {100 * level:.0f} | {auto:.2e} | {best} | {res[best]:.2e} | "
                  f"{auto / res[best]:.3f} | {max(res.values()):.2e} |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sample only")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parts", default="samples,astra,weight")
    ap.add_argument("--presets", default="small:31,demo:41",
                    help="preset:seed,... of part samples (--quick: small:31 only)")
    ap.add_argument("--no-independent", action="store_true",
                    help="part samples: skip the independent-TV comparison")
    ap.add_argument("--no-support", action="store_true",
                    help="part samples: also the joint solve without its support constraint")
    ap.add_argument("--gpu", action="store_true",
                    help="part samples: also FBP and the joint solve on the cupy device")
    args = ap.parse_args()
    print(f"AUTO_WEIGHT = {AUTO_WEIGHT}")
    parts = args.parts.split(",")
    if "samples" in parts:
        presets = [(p.split(":")[0], int(p.split(":")[1])) for p in args.presets.split(",")]
        part_samples(presets[:1] if args.quick else presets, args.repeats,
                     independent=not args.no_independent, no_support=args.no_support,
                     gpu=args.gpu)
    if "astra" in parts:
        part_astra(args.repeats)
    if "weight" in parts:
        part_weight()


if __name__ == "__main__":
    main()
