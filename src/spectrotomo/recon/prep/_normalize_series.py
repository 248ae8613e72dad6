"""xarray form of :func:`normalize`: raw tilt series -> optical-density tilt series."""

from __future__ import annotations

import numpy as np

__all__ = ["normalize_series"]


def normalize_series(ts, **options):
    """Normalise every energy of a raw tilt series to optical density.

    Parameters
    ----------
    ts : xarray.Dataset
        Tilt series per :func:`spectrotomo.validate_tilt_series` with
        ``projections`` (energy, angle, y, x) raw counts, ``flats``
        (energy, flat, y, x) and optionally ``darks`` (energy, dark, y, x).
        A coordinate ``flat_position`` on ``flat`` (projection-index units)
        switches on flat interpolation.
    **options
        Keyword options of :func:`normalize` (``flat_mode``, ``saturation``,
        ``zinger_threshold``, ``fill``, ...).

    Returns
    -------
    xarray.Dataset
        Tilt series with ``projections`` = optical density (float32,
        ``attrs["quantity"] = "optical_density"``), a ``mask`` (energy, angle,
        y, x) uint8 of the cause codes, and the per-energy counts in
        ``attrs["normalize_report"]`` and in the provenance.
    """
    import xarray as xr

    from ... import add_provenance, validate_tilt_series
    from ..._model import ValidationError
    from ._normalize import normalize

    validate_tilt_series(ts, where="normalize_series")
    if "flats" not in ts:
        raise ValidationError("normalize_series: the tilt series has no 'flats' variable; "
                              "expected flats (energy, flat, y, x)")
    if "distance" in ts["projections"].dims:
        raise ValidationError("normalize_series: holotomography series (with 'distance') are "
                              "not supported; select one distance first")
    positions = ts["flat_position"].values if "flat_position" in ts.coords else None
    ods, masks, reports = [], [], []
    for e in range(ts.sizes["energy"]):  # energies: a small set
        darks = ts["darks"].values[e] if "darks" in ts else None
        od, rep = normalize(np.asarray(ts["projections"].values[e]), ts["flats"].values[e], darks,
                            flat_positions=positions, **options)
        ods.append(od)
        masks.append(rep.mask)
        reports.append(rep.summary())
    dims = ("energy", "angle", "y", "x")
    out = ts.drop_vars([v for v in ("flats", "darks", "projections") if v in ts])
    out["projections"] = xr.DataArray(np.stack(ods), dims=dims,
                                      attrs={"quantity": "optical_density", "units": "1"})
    out["mask"] = xr.DataArray(np.stack(masks), dims=dims,
                               attrs={"codes": "0 ok, 1 non-positive, 2 saturated, 3 non-finite, "
                                               "4 zinger, 5 bad flat/dark"})
    out.attrs["normalize_report"] = reports
    add_provenance(out, "recon.prep.normalize_series", inputs=["projections", "flats", "darks"],
                   report=reports, **{k: v for k, v in options.items() if np.isscalar(v)})
    return validate_tilt_series(out, where="normalize_series")
