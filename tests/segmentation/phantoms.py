"""Small analytic phantoms (numpy) for the segmentation tests."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def centred_radius(shape, spacing, centre=None):
    """Distance (nm) of every voxel centre from ``centre`` (default the array centre)."""
    spacing = np.broadcast_to(np.asarray(spacing, float), (len(shape),))
    centre = [(n - 1) / 2 for n in shape] if centre is None else centre
    grids = np.meshgrid(*[(np.arange(n) - c) * s for n, c, s in zip(shape, centre, spacing)],
                        indexing="ij")
    return np.sqrt(sum(g ** 2 for g in grids))


def sphere(n=48, radius_vox=18.3, spacing=1.0):
    r = centred_radius((n,) * 3, spacing)
    radius = radius_vox * float(np.min(spacing))
    return r <= radius, r, radius


def ellipsoid(shape=(32, 56, 64), semi_axes_nm=(270.0, 240.0, 290.0),
              spacing=(20.0, 10.0, 10.0)):
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)],
                        indexing="ij")
    q = sum((g / a) ** 2 for g, a in zip(grids, semi_axes_nm))
    return q <= 1.0


def blob(n=48, seed=3):
    """Irregular, simply connected blob: smoothed noise inside a ball."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(n,) * 3), 4.0)
    field /= field.std()
    r = centred_radius((n,) * 3, 1.0) / (0.4 * n)
    solid = (1.0 - r ** 2 + 0.6 * field) > 0.3
    lab, _ = ndimage.label(solid)
    largest = np.argmax(np.bincount(lab.ravel())[1:]) + 1
    return ndimage.binary_fill_holes(lab == largest)


def porous_cracked_particle(n=64, noise=0.05, seed=0, crack_value=0.0):
    """Sphere (value 1) with four spherical pores and one planar crack (value 0)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices((n,) * 3) - (n - 1) / 2
    envelope = np.sqrt(z ** 2 + y ** 2 + x ** 2) <= 0.41 * n
    pores = np.zeros(envelope.shape, bool)
    for pz, py, px, pr in [(-12, -2, -2, 3), (8, -7, 3, 2.5), (0, 13, -12, 3), (-7, -10, 16, 2)]:
        pores |= (z - pz) ** 2 + (y - py) ** 2 + (x - px) ** 2 <= pr ** 2
    crack = (np.abs(x + 0.3 * y - 6) <= 0.6) & (np.abs(z) < 12) & (np.abs(y) < 14)
    vol = envelope.astype(float)
    vol[pores] = 0.0
    vol[crack] = crack_value
    vol += rng.normal(0, noise, vol.shape)
    return vol, envelope, pores, crack
