"""Near-surface TM/O pulled towards its iso-depth layer's mean (an iso-depth prior).

Why: a reduced surface skin thinner than the resolution (the simulator's 30 nm
at 12-20 nm voxels; such skins are what the cathode papers report) is blurred
with the interior by the reconstruction, worst where the surface faces the
missing-wedge direction: measured on ``simulate:small`` seed 0 at -65..+65 deg,
the skin's locally averaged TM/O comes out 1.077 x target for a true 1.136,
and only half the skin voxels facing y clear the +5 % class band. Averaged over
a whole iso-depth layer (thousands of voxels, every surface orientation) the
same data show the skin clearly: 1.08-1.09 x target above 1.5 voxels of depth,
1.02 below. Each near-surface voxel's ratio is therefore shrunk towards the
amount-weighted mean of its depth layer (a James-Stein / empirical-Bayes style
pooling along the surface):

    ratio' = layer_mean + (1 - pooling) * (ratio - layer_mean)

``pooling`` 0 keeps the local ratio; 1 gives every voxel of a layer its
layer's mean. Layers are ``bin_vox`` (1/4) of the smallest voxel spacing thick
in the continuous depth below the surface, so a skin boundary inside a voxel
layer stays resolved. A local departure from the layer (a grain reaching the
surface, a partial skin) is kept at ``1 - pooling`` of its measured contrast.

Only where the zone spans at least two voxel layers (``round(surface_nm / step) >= 2``): a
one-voxel zone holds only surface-cut (partial-volume) voxels, whose mean is not a measured skin
(``simulate:tiny``, 36 nm voxels: 14 -> 28 pp with pooling on seed 5; RESULTS.recon.md).

Two passes, both block-safe: :func:`layer_sums` (per-bin sums, add them over
blocks) and :func:`apply_layer_pooling` (element-wise).
"""

from __future__ import annotations

import numpy as np

from .._model import ValidationError
from ._util import as_mask, check_same_shape, resolve_spacing, unwrap

__all__ = ["surface_layer_pooling"]

#: Depth-bin width, as a fraction of the smallest voxel spacing.
BIN_VOX = 0.25


def pools(pooling: float, surface_nm: float, step_nm: float) -> bool:
    """Whether pooling applies: on, and the zone spans >= 2 voxel layers."""
    return pooling > 0 and int(round(surface_nm / step_nm)) >= 2


def _n_bins(surface_nm: float, step_nm: float) -> int:
    return int(np.ceil(surface_nm / (BIN_VOX * step_nm) - 1e-9))


def _bins(depth: np.ndarray, near: np.ndarray, step_nm: float) -> np.ndarray:
    return np.floor(depth[near] / (BIN_VOX * step_nm)).astype(np.int64)


def layer_sums(tm, o, depth, solid, *, surface_nm: float, step_nm: float) -> np.ndarray:
    """Per depth bin: (sum of TM amounts, sum of O amounts), shape (2, n_bins), float64.

    Sums of disjoint blocks add up to the whole volume's sums.
    """
    n = _n_bins(surface_nm, step_nm)
    near = solid & (depth < surface_nm) & np.isfinite(tm) & np.isfinite(o)
    b = np.minimum(_bins(depth, near, step_nm), n - 1)
    return np.stack([np.bincount(b, tm[near].astype(np.float64), minlength=n),
                     np.bincount(b, o[near].astype(np.float64), minlength=n)])


def apply_layer_pooling(ratio, depth, sums: np.ndarray, *, surface_nm: float, step_nm: float,
                        pooling: float) -> np.ndarray:
    """``ratio`` with every voxel shallower than ``surface_nm`` pulled towards its layer mean."""
    tm_sum, o_sum = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(o_sum > 0, tm_sum / o_sum, np.nan)
    near = np.isfinite(ratio) & (depth < surface_nm)
    out = np.array(ratio, dtype=np.float32, copy=True)
    m = mean[np.minimum(_bins(depth, near, step_nm), mean.size - 1)]
    r = out[near]
    out[near] = np.where(np.isfinite(m), m + (1.0 - pooling) * (r - m), r)
    return out


def check_pooling(pooling: float) -> float:
    if not np.isfinite(pooling) or not 0.0 <= pooling <= 1.0:
        raise ValidationError(f"layer_pooling must be in [0, 1] (0: off); got {pooling!r}")
    return float(pooling)


def surface_layer_pooling(ratio, tm, o, depth, *, mask, spacing=None, surface_nm: float,
                          pooling: float):
    """Shrink near-surface TM/O ratios towards their iso-depth layer's mean.

    Parameters
    ----------
    ratio : array, shape (nz, ny, nx), float
        Locally averaged TM/O per voxel (e.g. of :func:`masked_smooth` amounts),
        dimensionless; NaN where undefined (kept NaN).
    tm, o : array, same shape, float
        Per-voxel summed transition-metal and O amounts (atoms/nm^3), unsmoothed:
        the layer means are amount-weighted ``sum(tm) / sum(o)``.
    depth : array, same shape, float
        Depth below the particle surface, nm (:func:`depth`, ``"boundary"``).
    mask : array, same shape, bool
        Voxels whose amounts enter the layer means (the particle's solid).
    spacing : float or sequence of float, optional
        Voxel size, nm (> 0 per axis); layers are 1/4 of the smallest spacing thick.
        Default: from a DataArray ``ratio`` or ``depth`` (``attrs['spacing']``,
        ``attrs['pixel_size']`` or nm coordinates), else 1 nm.
    surface_nm : float
        Voxels shallower than this (nm, >= 0) are pooled; deeper ones unchanged.
        Below two voxel layers (``round(surface_nm / step) < 2``) nothing is pooled.
    pooling : float in [0, 1]
        Fraction of a voxel's departure from its layer mean that is removed
        (0: unchanged; 1: the layer mean).

    Returns
    -------
    numpy.ndarray, same shape, float32
        The pooled ratio (NaN where ``ratio`` is NaN).

    Notes
    -----
    Layer means pool every particle in the array (run per particle crop when
    particles differ). Block-wise: add :func:`layer_sums` of the blocks, then
    :func:`apply_layer_pooling` per block -- the same result.
    """
    pooling = check_pooling(pooling)
    unwrapped = [unwrap(a) for a in (ratio, tm, o, depth)]
    arrs = [np.asarray(a, dtype=np.float32) for a, _ in unwrapped]
    m = as_mask(np.asarray(unwrap(mask)[0]), name="mask", ndim_ok=(2, 3)) > 0
    check_same_shape(ratio=arrs[0], tm=arrs[1], o=arrs[2], depth=arrs[3], mask=m)
    if not np.isfinite(surface_nm) or surface_nm < 0:
        raise ValidationError(f"surface_nm must be >= 0 nm; got {surface_nm!r}")
    step = float(resolve_spacing(spacing, m.ndim, unwrapped[0][1], unwrapped[3][1]).min())
    if not pools(pooling, surface_nm, step):
        return arrs[0].copy()
    sums = layer_sums(arrs[1], arrs[2], arrs[3], m, surface_nm=surface_nm, step_nm=step)
    return apply_layer_pooling(arrs[0], arrs[3], sums, surface_nm=surface_nm, step_nm=step,
                               pooling=pooling)
