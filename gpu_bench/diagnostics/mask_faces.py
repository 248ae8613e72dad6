"""Where a particle mask's extent error comes from: the reconstruction's response at the
particle's faces, per face direction, against the truth in the report's frame.

For each finished pipeline store (``recon``, ``segmentation``, ``truth``; a simulated run),
printed per axis (z, y, x):

- ``extent``: the mask's first / last plane vs the truth's (hole-filled, moved into the
  registered frame as the report does) and the mask voxels in the planes beyond the truth's
  ends (a cap of a few voxels at a pole vs a whole shifted face tells smear from a frame
  offset);
- ``partial``: the surface voxels just outside the true particle (occupancy 0.2-0.45) whose
  surface normal is mostly along the axis: their mean occupancy, the energy-mean attenuation
  there / the interior's (an unbiased reconstruction reads about the occupancy), and the
  fraction the mask takes (a voxel below 0.5 occupancy is outside the truth);
- ``empty``: the level (/ interior) of the empty voxels (occupancy < 0.05) one voxel beyond
  the faces: the smear.

The mask rule (``segmentation.particle_mask``: Gaussian sigma 1 voxel, Otsu) sees the same
volume for every axis, so a face direction that reads high at equal occupancy points at the
reconstruction; a frame offset shows as one end long and the other short.

    PYTHONPATH=src python gpu_bench/diagnostics/mask_faces.py STORE [STORE ...]
"""

from __future__ import annotations

import sys

import numpy as np
from scipy import ndimage


def _frame_truth(store):
    from spectrotomo import io
    from spectrotomo.pipeline._truth_frame import registered_z_shift, truth_in_frame

    truth = io.read_group(store, "truth")[["particle", "occupancy"]].load()
    raw, od = io.read_group(store, "raw"), io.read_group(store, "od")
    frame = truth_in_frame(truth, registered_z_shift(raw, od), variables=["particle", "occupancy"])
    env = ndimage.binary_fill_holes(frame["particle"].values.astype(bool))
    return env, frame["occupancy"].values


def faces(store) -> None:
    from spectrotomo import io

    env, occ = _frame_truth(store)
    mask = io.read_group(store, "segmentation")["mask"].values.astype(bool)
    mu = io.read_group(store, "recon")["mu"].values.astype(np.float32).mean(axis=0)
    solid = float(np.median(mu[ndimage.binary_erosion(env, iterations=3)]))
    normal = np.stack(np.gradient(ndimage.gaussian_filter(env.astype(np.float32), 1.0)))
    along = np.abs(normal).argmax(axis=0)
    pure = np.abs(normal).max(axis=0) > 0.8 * np.sqrt((normal ** 2).sum(axis=0)) + 1e-12
    partial = ~env & (occ > 0.2) & (occ < 0.45) & pure
    print(f"{store}: interior level {solid:.3g}")
    for axis, name in enumerate("zyx"):
        other = tuple(a for a in range(3) if a != axis)
        pm, pt = np.flatnonzero(mask.any(axis=other)), np.flatnonzero(env.any(axis=other))
        count = mask.sum(axis=other)
        beyond = [int(count[i]) for i in range(pm[0], pt[0])] + \
                 [int(count[i]) for i in range(pt[-1] + 1, pm[-1] + 1)]
        sel = partial & (along == axis)
        empty = (np.roll(env, 1, axis) | np.roll(env, -1, axis)) & ~env & (occ < 0.05)
        print(f"  {name}: extent mask {pm[0]}-{pm[-1]} truth {pt[0]}-{pt[-1]} "
              f"(error {int(pm[-1] - pm[0]) - int(pt[-1] - pt[0]):+d}; voxels beyond {beyond}) | "
              f"partial n {int(sel.sum())} occupancy {occ[sel].mean():.2f} "
              f"level {mu[sel].mean() / solid:.3f} in mask {mask[sel].mean():.2f} | "
              f"empty {mu[empty].mean() / solid:.3f}")


if __name__ == "__main__":
    for path in sys.argv[1:]:
        faces(path)
