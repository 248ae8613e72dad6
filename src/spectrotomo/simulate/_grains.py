"""Geometry of a secondary particle: irregular envelope, sintered primary grains
(Voronoi cells), nanopores, intergranular cracks and depth from the surface.

All lengths here are in voxels; ``_particle`` converts to nm.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .._backend import host_threads

__all__ = ["Geometry", "build_geometry"]


@dataclass
class Geometry:
    """Voxel geometry; every array has shape (nz, ny, nx)."""

    occupancy: np.ndarray  # float32 solid fraction in [0, 1]
    particle: np.ndarray  # bool, inside envelope (incl. pores and cracks)
    grain: np.ndarray  # int32, 0 outside
    void: np.ndarray  # bool
    crack: np.ndarray  # bool
    depth: np.ndarray  # float32, voxels from the envelope surface
    n_grains: int

    def planes(self, z0: int, z1: int) -> Geometry:
        """The slab of z planes ``[z0, z1)`` (views, no copies)."""
        cut = slice(z0, z1)
        return Geometry(self.occupancy[cut], self.particle[cut], self.grain[cut], self.void[cut],
                        self.crack[cut], self.depth[cut], self.n_grains)


def _centred_grid(shape):
    return [np.arange(n, dtype=np.float32) - (n - 1) / 2 for n in shape]


def _envelope_radius(unit, radius, rng, roughness):
    """Radius (voxels) of an irregular, star-shaped envelope along directions.

    ``unit`` is a tuple of three broadcastable arrays (uz, uy, ux) of unit-vector
    components.
    """
    axes = 1.0 + roughness * rng.uniform(-1.0, 1.0, 3)  # mild ellipsoid
    axes /= np.cbrt(np.prod(axes))
    inv2 = sum(u * u * np.float32(1.0 / a**2) for u, a in zip(unit, axes))
    # Low-order lumps: a few random cos^4 bumps give a potato-like outline.
    dirs = rng.normal(size=(6, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    amps = roughness * 0.6 * rng.uniform(-1.0, 1.0, 6)
    lumps = np.zeros(np.broadcast_shapes(*(np.shape(u) for u in unit)), np.float32)
    for d, amp in zip(dirs, amps):  # six lumps: a small fixed set
        cos = sum(u * np.float32(c) for u, c in zip(unit, d))
        cos *= cos  # cos^2 squared, not cos**4: numpy's float32 power of negative bases
        cos *= cos  # goes through powf, 25x the two products (0.8 of 1.6 CPU s of the demo)
        lumps += np.float32(amp) * cos
    return np.float32(radius) / np.sqrt(inv2) * (1.0 + lumps)


def _seeds_inside(n, radius, rng, roughness_rng_state, roughness):
    """``n`` grain seeds uniformly inside the envelope (rejection sampling)."""
    pts = rng.uniform(-radius * 1.3, radius * 1.3, size=(n * 8 + 64, 3))
    norm = np.linalg.norm(pts, axis=1)
    unit = tuple((pts / np.maximum(norm, 1e-6)[:, None]).T)
    env = _envelope_radius(unit, radius, np.random.default_rng(roughness_rng_state), roughness)
    inside = pts[norm < env - 1.0]
    if inside.shape[0] < n:
        raise ValueError(f"particle: could not place {n} grains inside radius {radius:.1f} voxels")
    return inside[:n]


def build_geometry(
    shape,
    *,
    radius: float,
    n_grains: int,
    n_voids: int,
    void_radius: tuple[float, float],
    n_cracks: int,
    crack_width: float,
    boundary_density: float,
    roughness: float,
    rng: np.random.Generator,
) -> Geometry:
    """Build the particle geometry (lengths in voxels).

    The envelope is a lumpy ellipsoid of mean ``radius``; grains are the Voronoi
    cells of ``n_grains`` random seeds; grain boundaries (within half a voxel of
    a bisector plane) keep ``boundary_density`` of the solid; ``n_cracks``
    random neighbouring grain pairs are split along their boundary by a crack
    ``crack_width`` voxels wide; ``n_voids`` spherical nanopores.
    """
    shape = tuple(int(n) for n in shape)
    if min(shape) < 8:
        raise ValueError(f"particle: shape must be at least 8 voxels per axis, got {shape}")
    if not 2.0 <= radius <= min(shape) / 2 - 1:
        raise ValueError(f"particle: radius must be in [2, {min(shape) / 2 - 1}] voxels, got {radius}")
    env_state = int(rng.integers(2**31))
    envelope = _envelope(shape, radius, env_state, roughness)
    particle = envelope >= 0.5
    # the depth needs only the envelope: its EDT (one serial C pass) runs beside the
    # grains, pores and cracks (kd-tree queries and numpy)
    pool = ThreadPoolExecutor(1, thread_name_prefix="spectrotomo-depth")
    depth = pool.submit(_depth, particle)
    pool.shutdown(wait=False)
    # Voronoi grains: the two nearest seeds give the label and the exact
    # distance to the shared bisector plane (grain boundary).
    seeds = _seeds_inside(n_grains, radius, rng, env_state, roughness)
    idx = np.nonzero(envelope > 0)
    pts = np.stack(idx, axis=1).astype(np.float32) - (np.asarray(shape, np.float32) - 1) / 2
    dist, near = cKDTree(seeds).query(pts, k=2, workers=host_threads())
    sep = np.linalg.norm(seeds[near[:, 1]] - seeds[near[:, 0]], axis=1)
    gb_dist = (dist[:, 1] ** 2 - dist[:, 0] ** 2) / (2.0 * np.maximum(sep, 1e-6))
    grain = np.zeros(shape, np.int32)
    grain[idx] = near[:, 0] + 1

    solid = np.ones(pts.shape[0], np.float32)
    solid *= np.where(gb_dist < 0.5, boundary_density, 1.0).astype(np.float32)
    crack_open = _crack_opening(pts, near, gb_dist, n_grains=n_grains, n_cracks=n_cracks,
                                crack_width=crack_width, radius=radius, rng=rng)
    solid *= crack_open.astype(np.float32)
    crack_vals = np.zeros(shape, bool)
    crack_vals[idx] = crack_open < 0.5

    # Spherical nanopores inside the particle.
    void_open = np.ones(pts.shape[0], np.float32)
    if n_voids > 0:
        centres = _seeds_inside(n_voids, 0.75 * radius, rng, env_state, roughness)
        radii = rng.uniform(*void_radius, size=n_voids)
        d, k = cKDTree(centres).query(pts, k=1, workers=host_threads())
        # nearest centre is a good proxy for the nearest sphere when pores do not overlap
        void_open = np.clip(0.5 + (d - radii[k]), 0.0, 1.0).astype(np.float32)
    solid *= void_open
    void = np.zeros(shape, bool)
    void[idx] = void_open < 0.5

    occupancy = np.zeros(shape, np.float32)
    occupancy[idx] = envelope[idx] * solid
    grain[~particle] = 0
    crack = crack_vals & particle & ~void
    void &= particle
    return Geometry(occupancy, particle, grain, void, crack, depth.result(), n_grains)


def _depth(particle) -> np.ndarray:
    """Voxels from the envelope surface (0 outside), float32.

    The squared distances come from ``edt`` (exact integers, multi-threaded: 0.08
    CPU s at 128^3 against scipy's serial EDT's 0.33); their float64 square root is
    what ``scipy.ndimage.distance_transform_edt`` returns, so the depth is the same
    bit for bit (tested).
    """
    import edt

    squared = edt.edtsq(particle, parallel=host_threads()).astype(np.float64)
    depth = np.clip(np.sqrt(squared) - 0.5, 0.0, None).astype(np.float32)
    return depth * particle


def _envelope(shape, radius, env_state, roughness) -> np.ndarray:
    """Partial-volume occupancy (float32, 0..1) of the lumpy ellipsoid envelope."""
    z, y, x = np.meshgrid(*_centred_grid(shape), indexing="ij", sparse=True)
    r = np.sqrt(z * z + y * y + x * x)
    inv_r = 1.0 / np.maximum(r, np.float32(1e-6))
    env_r = _envelope_radius((z * inv_r, y * inv_r, x * inv_r), radius,
                             np.random.default_rng(env_state), roughness)
    envelope = np.clip(0.5 + (env_r - r), 0.0, 1.0).astype(np.float32)
    border = np.ones(shape, bool)
    border[1:-1, 1:-1, 1:-1] = False
    if (envelope[border] > 0).any():
        raise ValueError(f"particle: radius {radius:.1f} voxels (+ roughness {roughness}) does not fit "
                         f"inside shape {shape}; lower radius_nm or roughness")
    return envelope


def _crack_opening(pts, near, gb_dist, *, n_grains, n_cracks, crack_width, radius, rng):
    """Solid fraction (0..1 per point) left by cracks along the boundaries of random
    neighbouring grain pairs, not reaching the surface skin."""
    pair_key = np.minimum(near[:, 0], near[:, 1]) * n_grains + np.maximum(near[:, 0], near[:, 1])
    boundary_pairs = np.unique(pair_key[gb_dist < 1.0])
    chosen = rng.choice(boundary_pairs, size=min(n_cracks, boundary_pairs.size), replace=False)
    in_crack_pair = np.isin(pair_key, chosen) & (np.linalg.norm(pts, axis=1) < 0.85 * radius)
    return np.where(in_crack_pair, np.clip(gb_dist - crack_width / 2 + 0.5, 0.0, 1.0), 1.0)
