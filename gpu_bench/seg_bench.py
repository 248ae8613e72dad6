"""Segmentation benchmark: spectrotomo.segmentation vs scipy.ndimage peers, same data.

Peers: ``scipy.ndimage.mean / standard_deviation / median`` over labels (the
per-region statistics), ``scipy.ndimage.distance_transform_edt`` (one plain
transform, the core of depth), ``skimage.measure.regionprops`` (defect sizes).
Usage: PYTHONPATH=src python gpu_bench/seg_bench.py --size 128
"""

from __future__ import annotations

import numpy as np

import harness


def main():
    from scipy import ndimage
    from skimage.measure import regionprops

    from spectrotomo.segmentation import (composition_classes, defect_sizes, depth, region_stats,
                                          shells)

    parser = harness.parser(__doc__, quick={"size": 32, "repeat": 1})
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    harness.start(f"seg_bench: segmentation vs scipy.ndimage / skimage, {args.size}^3")
    n, rep = args.size, args.repeat
    rng = np.random.default_rng(0)
    grid = np.indices((n,) * 3) - (n - 1) / 2
    mask = np.sqrt((grid ** 2).sum(axis=0)) <= 0.42 * n
    values = rng.normal(3.5, 0.2, mask.shape)
    print(f"volume {n}^3, particle {mask.sum()} voxels; best of {rep} after a warm-up")
    rows = []

    ours = harness.timeit(lambda: depth(mask, 10.0), repeat=rep)
    peer = harness.timeit(lambda: ndimage.distance_transform_edt(mask, sampling=10.0), repeat=rep)
    rows.append(["depth (2 EDTs, padded)", ours.best, "scipy one EDT", peer.best,
                 harness.ratio(peer.best, ours.best)])
    d = ours.out
    sh = harness.timeit(lambda: shells(mask, 5, 10.0, depth_map=d), repeat=rep)
    rows.append(["shells (ranking, given depth)", sh.best, "-", None, "-"])
    s = sh.out

    ours = harness.timeit(lambda: region_stats(values, s), repeat=rep)
    idx = np.arange(1, 6)
    peer = harness.timeit(lambda: (ndimage.mean(values, s, idx),
                                   ndimage.standard_deviation(values, s, idx),
                                   ndimage.median(values, s, idx)), repeat=rep)
    for key, ref in zip(("mean", "std", "median"), peer.out):
        np.testing.assert_allclose(ours.out[key][0], ref)
    rows.append(["region_stats mean/std/median (equal results)", ours.best,
                 "scipy.ndimage", peer.best, harness.ratio(peer.best, ours.best)])

    ratio = 0.4 * rng.uniform(0.8, 1.2, mask.shape)
    cls = harness.timeit(lambda: composition_classes(ratio, 0.4, mask=mask), repeat=rep)
    rows.append([f"composition_classes ({mask.size / cls.best / 1e6:.0f} Mvox/s)", cls.best,
                 "-", None, "-"])

    pores = ndimage.label(rng.random(mask.shape) < 0.002)[0]
    ours = harness.timeit(lambda: defect_sizes(pores, spacing=10.0), repeat=rep)
    peer = harness.timeit(lambda: [(p.area, p.axis_major_length) for p in regionprops(pores)],
                          repeat=rep)
    np.testing.assert_array_equal(ours.out["voxels"].values, [p[0] for p in peer.out])
    rows.append([f"defect_sizes ({pores.max()} defects)", ours.best, "skimage regionprops",
                 peer.best, harness.ratio(peer.best, ours.best)])
    harness.print_table(["operation", "spectrotomo s", "peer", "peer s", "peer / ours"], rows,
                        fmt=".3f")


if __name__ == "__main__":
    main()
