"""Segmentation benchmark: spectrotomo.segmentation vs scipy.ndimage peers, same data.

Peers: ``scipy.ndimage.mean / standard_deviation / median`` over labels (the
per-region statistics), ``scipy.ndimage.distance_transform_edt`` (one plain
transform, the core of depth), ``skimage.measure.regionprops`` (defect sizes).
Usage: python gpu_bench/seg_bench.py --size 128
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _time(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    from scipy import ndimage
    from skimage.measure import regionprops

    from spectrotomo.segmentation import (composition_classes, defect_sizes, depth, region_stats,
                                          shells)

    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.size
    rng = np.random.default_rng(0)
    grid = np.indices((n,) * 3) - (n - 1) / 2
    mask = np.sqrt((grid ** 2).sum(axis=0)) <= 0.42 * n
    values = rng.normal(3.5, 0.2, mask.shape)
    print(f"volume {n}^3, particle {mask.sum()} voxels")

    t_ours, d = _time(lambda: depth(mask, 10.0), args.repeat)
    t_peer, _ = _time(lambda: ndimage.distance_transform_edt(mask, sampling=10.0), args.repeat)
    print(f"depth (2 EDTs, padded)        {t_ours:8.3f} s | scipy one EDT {t_peer:8.3f} s"
          f" | ratio {t_ours / t_peer:5.2f}")

    t_sh, s = _time(lambda: shells(mask, 5, 10.0, depth_map=d), args.repeat)
    print(f"shells (ranking, given depth) {t_sh:8.3f} s")

    t_ours, st = _time(lambda: region_stats(values, s), args.repeat)
    idx = np.arange(1, 6)

    def peer():
        return (ndimage.mean(values, s, idx), ndimage.standard_deviation(values, s, idx),
                ndimage.median(values, s, idx))

    t_peer, ref = _time(peer, args.repeat)
    np.testing.assert_allclose(st["mean"][0], ref[0])
    np.testing.assert_allclose(st["std"][0], ref[1])
    np.testing.assert_allclose(st["median"][0], ref[2])
    print(f"region_stats mean/std/median  {t_ours:8.3f} s | scipy.ndimage  {t_peer:8.3f} s"
          f" | speed-up {t_peer / t_ours:5.2f}x (results equal)")

    ratio = 0.4 * rng.uniform(0.8, 1.2, mask.shape)
    t_cls, _ = _time(lambda: composition_classes(ratio, 0.4, mask=mask), args.repeat)
    print(f"composition_classes           {t_cls:8.3f} s ({mask.size / t_cls / 1e6:.0f} Mvox/s)")

    pores = ndimage.label(rng.random(mask.shape) < 0.002)[0]
    t_ours, sz = _time(lambda: defect_sizes(pores, spacing=10.0), args.repeat)
    t_peer, props = _time(lambda: [(p.area, p.axis_major_length) for p in regionprops(pores)],
                          args.repeat)
    np.testing.assert_array_equal(sz["voxels"].values, [p[0] for p in props])
    print(f"defect_sizes ({pores.max()} defects)     {t_ours:8.3f} s | skimage regionprops "
          f"{t_peer:8.3f} s | speed-up {t_peer / t_ours:5.2f}x")


if __name__ == "__main__":
    main()
