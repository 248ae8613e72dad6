"""Input checks shared by the reconstruction entry points.

One declared axis order: projections are ``(n_angles, n_rows, n_cols)``,
volumes ``(n_rows, ny, nx)`` i.e. ``(z, y, x)``; angles are in degrees.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._model import ValidationError

__all__ = ["check_angles", "check_projections", "check_center"]


def check_angles(angles, n_angles: int | None = None, *, where: str = "recon") -> np.ndarray:
    """Return angles (degrees) as float64, shape (n_angles,), after validation.

    Warns when every angle lies within [-3.2, 3.2] and the span is below 7 deg:
    such values look like radians.
    """
    a = np.atleast_1d(np.asarray(angles, dtype=float))
    if a.ndim != 1 or a.size == 0:
        raise ValidationError(f"{where}: 'angles' must be a non-empty 1-D sequence in degrees; "
                              f"got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValidationError(f"{where}: 'angles' must be finite (degrees); "
                              f"got {int((~np.isfinite(a)).sum())} non-finite values")
    if n_angles is not None and a.size != n_angles:
        raise ValidationError(f"{where}: 'angles' has {a.size} values but projections have "
                              f"{n_angles} along axis 0 (n_angles, n_rows, n_cols)")
    if a.size > 2 and np.all(np.abs(a) <= 3.2) and np.ptp(a) < 7.0:
        warnings.warn(f"{where}: all angles lie within [-3.2, 3.2]; they look like radians, "
                      "but angles must be in degrees (use np.rad2deg)", UserWarning, stacklevel=3)
    return a


def check_projections(p, *, where: str = "recon", check_finite: bool = True,
                      sinogram: bool = True):
    """Validate a projection stack and return it as 3-D (n_angles, n_rows, n_cols).

    A 2-D array is treated as one sinogram (n_angles, n_cols) when ``sinogram``.
    """
    if p.ndim == 2 and sinogram:
        p = p[:, None, :]
    if p.ndim != 3:
        alt = " or a sinogram (n_angles, n_cols)" if sinogram else ""
        raise ValidationError(f"{where}: 'projections' must be (n_angles, n_rows, n_cols)"
                              f"{alt}; got shape {p.shape}")
    if 0 in p.shape:
        raise ValidationError(f"{where}: 'projections' must be non-empty; got shape {p.shape}")
    if check_finite:
        xp = _xp(p)
        if not bool(xp.isfinite(p).all()):
            raise ValidationError(f"{where}: 'projections' must be finite optical density; "
                                  "found NaN or inf (mask or interpolate bad pixels first)")
    return p


def check_center(center, n_cols: int, *, where: str = "recon") -> float:
    """Rotation-axis column (column i's centre at i); default (n_cols - 1) / 2."""
    if center is None:
        return (n_cols - 1) / 2
    c = float(center)
    if not np.isfinite(c) or not (-0.5 <= c <= n_cols - 0.5):
        raise ValidationError(f"{where}: 'center' must be a finite column index within "
                              f"[-0.5, {n_cols - 0.5}]; got {center}")
    return c


def _xp(a):
    from .._backend import array_module

    return array_module(a)
