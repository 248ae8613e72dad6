"""TM/O composition classes against a target with a relative tolerance."""

from __future__ import annotations

import numpy as np

from .._backend import array_module, to_numpy
from .._model import ValidationError
from ._util import as_mask, check_same_shape, label_ids, rewrap, unwrap

__all__ = ["CLASS_LEGEND", "composition_classes", "class_fractions", "legend_attrs"]

#: Class value -> (name, colour). Colours follow the reference study's figure
#: (target green, oxygen-poor red, oxygen-rich grey).
CLASS_LEGEND = {
    0: ("background_or_unclassified", "#000000"),
    1: ("target", "#2ca02c"),
    2: ("oxygen_poor", "#d62728"),
    3: ("oxygen_rich", "#7f7f7f"),
}


def legend_attrs(*, background: str | None = None) -> dict:
    """CF-style flag attributes (zarr/netCDF serialisable) for a class image;
    ``background`` renames value 0."""
    return {
        "flag_values": list(CLASS_LEGEND),
        "flag_meanings": " ".join(background if k == 0 and background else name
                                  for k, (name, _) in CLASS_LEGEND.items()),
        "flag_colors": " ".join(colour for _, colour in CLASS_LEGEND.values()),
    }


def composition_classes(ratio, target: float, tolerance: float = 0.05, *, mask=None,
                        signal=None, min_signal: float | None = None):
    """Classify every voxel's TM/O ratio against a target composition.

    Parameters
    ----------
    ratio : array (numpy, cupy or dask) or xarray.DataArray, any shape
        TM/O atomic ratio per voxel ((Mn+Co+Ni)/O), dimensionless. NaN or
        infinite values are unclassified (class 0).
    target : float
        Target TM/O ratio (> 0), e.g. 0.4 for Li1.2Mn0.56Ni0.16Co0.08O2.
    tolerance : float
        Relative tolerance (> 0): target class is
        ``|ratio - target| <= tolerance * target``.
    mask : array, same shape, bool, optional
        Particle mask; voxels outside are 0.
    signal, min_signal : array (same shape) and float, optional
        Voxels whose ``signal`` (e.g. the O amount in atoms/nm^3) is below
        ``min_signal`` are unclassified (0): a ratio of two small numbers is
        noise.

    Returns
    -------
    array or xarray.DataArray, same shape, uint8
        0 background or unclassified, 1 target, 2 oxygen-poor
        (ratio > target (1 + tolerance)), 3 oxygen-rich
        (ratio < target (1 - tolerance)). A DataArray result carries the legend
        as CF flag attributes (``flag_values``, ``flag_meanings``,
        ``flag_colors``) plus ``target`` and ``tolerance``.

    Notes
    -----
    Purely element-wise: works chunk by chunk on dask arrays and on the GPU
    with cupy arrays.
    """
    if not np.isfinite(target) or target <= 0:
        raise ValidationError(f"target must be a positive TM/O ratio; got {target!r}")
    if not np.isfinite(tolerance) or tolerance <= 0:
        raise ValidationError(f"tolerance must be > 0 (relative, e.g. 0.05); got {tolerance!r}")
    data, template = unwrap(ratio)
    mask_data = unwrap(mask)[0] if mask is not None else None
    signal_data = unwrap(signal)[0] if signal is not None else None
    check_same_shape(ratio=data, mask=mask_data, signal=signal_data)
    if (signal is None) != (min_signal is None):
        raise ValidationError("signal and min_signal must be given together")
    xp = array_module(data)
    if type(data).__module__.split(".")[0] == "dask":
        import dask.array as xp  # noqa: F811 - element-wise ops stay lazy
    lo, hi = target * (1.0 - tolerance), target * (1.0 + tolerance)
    classes = xp.where(data > hi, 2, xp.where(data < lo, 3, 1)).astype(np.uint8)
    valid = xp.isfinite(data)
    if mask_data is not None:
        valid = valid & (mask_data > 0)
    if signal_data is not None:
        valid = valid & (signal_data >= min_signal)
    classes = xp.where(valid, classes, np.uint8(0)).astype(np.uint8)
    return rewrap(classes, template, name="composition_class", units="1",
                  attrs={**legend_attrs(), "target": float(target),
                         "tolerance": float(tolerance)})


def class_fractions(classes, labels=None, *, voxel_volume: float | None = None):
    """Volume fraction of each composition class, per particle.

    Parameters
    ----------
    classes : array or xarray.DataArray, uint8
        Output of :func:`composition_classes`.
    labels : array, same shape, bool or int, optional
        Particle mask or labels (0 outside). Default: one particle made of
        every voxel with a class > 0 (then nothing is counted unclassified).
    voxel_volume : float, optional
        nm^3 per voxel (default: ``pixel_size ** 3`` from the DataArray
        attrs, else 1 - i.e. volumes in voxels).

    Returns
    -------
    xarray.Dataset, dims (particle, class)
        ``count`` (voxels per class; class 0 = unclassified voxels inside the
        particle: NaN/low-signal ratio), ``fraction`` (of the particle's
        classified voxels, classes 1-3; 0 for class 0), ``fraction_of_particle``
        (of all particle voxels, unclassified included), ``volume`` (nm^3),
        and per particle ``unclassified_fraction``. Coords ``class`` (0..3)
        and ``class_name``.
    """
    import xarray as xr

    cdata, template = unwrap(classes)
    cls = to_numpy(cdata)
    if labels is None:
        lab = (cls > 0).astype(np.int32)
    else:
        lab = as_mask(to_numpy(unwrap(labels)[0]), name="labels", ndim_ok=(1, 2, 3, 4))
        check_same_shape(classes=cls, labels=lab)
        lab = lab.astype(np.int64)
    if cls.size and (cls.max(initial=0) > 3):
        raise ValidationError(f"classes must hold values 0..3; got max {int(cls.max())}")
    ids = label_ids(lab)
    if ids.size == 0:
        raise ValidationError("no particle voxels: labels (or classes) are all 0")
    if voxel_volume is None:
        px = template.attrs.get("pixel_size") if template is not None else None
        voxel_volume = float(px) ** cls.ndim if px else 1.0
    # One bincount over (particle index, class) pairs.
    index = np.searchsorted(ids, lab[lab > 0])
    counts = np.bincount(index * 4 + cls[lab > 0], minlength=ids.size * 4).reshape(ids.size, 4)
    total = counts.sum(axis=1, keepdims=True)
    classified = counts[:, 1:].sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(classified > 0, counts / np.maximum(classified, 1), np.nan)
    fraction[:, 0] = 0.0
    names = [CLASS_LEGEND[k][0] for k in range(4)]
    ds = xr.Dataset(
        {
            "count": (("particle", "class"), counts),
            "fraction": (("particle", "class"), fraction),
            "fraction_of_particle": (("particle", "class"), counts / total),
            "volume": (("particle", "class"), counts * voxel_volume, {"units": "nm^3"}),
            "unclassified_fraction": ("particle", counts[:, 0] / total[:, 0]),
        },
        coords={"particle": ids, "class": np.arange(4),
                "class_name": ("class", names)},
        attrs=legend_attrs(),
    )
    return ds
