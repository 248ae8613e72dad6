"""xarray face of the dual-energy quantification: a (energy, z, y, x) attenuation volume ->
element amounts (atoms/nm^3), their sigmas and the TM/O ratio as a Dataset."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .._backend import array_module
from .._model import ValidationError
from ._quantify import joint_element_amounts, tm_o_ratio

__all__ = ["element_maps"]


def element_maps(volume, *, pairs: Mapping[str, tuple], sigma=None, fixed=None,
                 tied=None, calibration=None, threshold: float = 0.0, min_snr: float = 3.0,
                 dtype=np.float32):
    """xarray wrapper: element amounts and TM/O ratio from a dual-energy volume.

    Parameters
    ----------
    volume : xarray.DataArray, dims (energy, z, y, x) (or (energy, y, x))
        Linear attenuation in 1/nm containing every pair's energies.
    pairs : mapping element -> (below_ev, above_ev)
        e.g. ``{"Mn": (635, 665), "O": (525, 555)}``; energies are matched to
        the volume's coordinate within 0.01 eV.
    sigma : xarray.DataArray or float, optional
        Per-voxel noise of ``volume`` (same dims) or one number (1/nm).
    fixed, tied, calibration, threshold, min_snr
        See :func:`joint_element_amounts` (elements are solved jointly).
    dtype : numpy dtype
        Of the amounts, ratios and their sigmas (solved in float64, then cast).
        float32 (default) halves the chemistry store; it moves class fractions
        and profiles by < 1e-5 relative (tests/spectra/test_quantify_dtype.py).

    Returns
    -------
    xarray.Dataset
        ``amount`` (element, ...) atoms/nm^3, ``amount_sigma`` (with sigma),
        ``valid`` (element, ...) bool and, when Mn/Co/Ni and O are present,
        ``tm_o_ratio`` (...); attrs ``n_masked`` per element.
    """
    import xarray as xr

    from .._model import add_provenance, spatial_map

    energy = np.asarray(volume["energy"].values, dtype=float)

    def at(e_ev, arr):
        i = int(np.argmin(np.abs(energy - e_ev)))
        if abs(energy[i] - e_ev) > 0.01:
            raise ValidationError(f"element_maps: energy {e_ev} eV not in the volume's energies "
                                  f"{energy.tolist()[:12]}")
        return arr[i] if not np.isscalar(arr) else arr

    data = volume.data
    sig_data = None if sigma is None else getattr(sigma, "data", sigma)
    arrays = {el: (at(b, data), at(a, data)) for el, (b, a) in pairs.items()}
    sigmas = None
    if sig_data is not None:
        sigmas = {el: (at(b, sig_data), at(a, sig_data)) for el, (b, a) in pairs.items()}
    res = joint_element_amounts(arrays, energies=dict(pairs), sigma=sigmas, fixed=fixed,
                                tied=tied, calibration=calibration, threshold=threshold, min_snr=min_snr)
    els = list(pairs)
    px = volume.attrs["pixel_size"]
    xp = array_module(data)
    ds = xr.Dataset({
        "amount": spatial_map(xp.stack([res[e].amount for e in els]).astype(dtype), voxel_size=px,
                              units="1/nm^3", name="amount", leading={"element": els}),
        "valid": spatial_map(xp.stack([res[e].mask for e in els]), voxel_size=px, units="1",
                             name="valid", leading={"element": els}),
    })
    if sigmas is not None:
        ds["amount_sigma"] = spatial_map(xp.stack([res[e].sigma for e in els]).astype(dtype),
                                         voxel_size=px,
                                         units="1/nm^3", name="amount_sigma",
                                         leading={"element": els})
    if "O" in res and any(m in res for m in ("Mn", "Co", "Ni")):
        ratio, rsig, _, n_bad = tm_o_ratio(res)
        ds["tm_o_ratio"] = spatial_map(ratio.astype(dtype), voxel_size=px, units="1",
                                       name="tm_o_ratio")
        if rsig is not None:
            ds["tm_o_ratio_sigma"] = spatial_map(rsig.astype(dtype), voxel_size=px, units="1",
                                                 name="tm_o_ratio_sigma")
        ds.attrs["tm_o_ratio_n_masked"] = n_bad
    ds.attrs.update({"n_masked": {e: res[e].n_masked for e in els}.__repr__(),
                     "pixel_size": px, "pixel_size_units": "nm"})
    return add_provenance(ds, "spectra.element_maps", pairs={k: list(v) for k, v in pairs.items()},
                          threshold=threshold, min_snr=min_snr,
                          fixed=sorted(fixed) if fixed else [],
                          tied={k: [v[0], float(v[1])] for k, v in (tied or {}).items()})
