"""Phase retrieval of a holotomography tilt series (xarray in, xarray out)."""

from __future__ import annotations

import numpy as np

from ..._model import ValidationError, add_provenance, validate_tilt_series

__all__ = ["retrieve_phase_series"]


def retrieve_phase_series(ds, *, delta_beta, method="auto", register=True, **options):
    """Retrieve the phase of every projection of a normalized holotomography series.

    Parameters
    ----------
    ds : xarray.Dataset
        Tilt series per ``spectrotomo.validate_tilt_series`` whose
        ``projections`` (energy, distance, angle, y, x) hold I/I0 (flat-field
        corrected); coordinate ``distance`` in m. Optional coordinates
        ``effective_distance`` (m) and ``magnification`` (divergent beam,
        from ``effective_geometry``); then ``attrs["pixel_size"]`` (nm) is the
        sample-plane pixel of the first distance.
    delta_beta : float
        delta / beta of the (prior) material.
    method : {"auto", "paganin", "ctf"}
        "auto": Paganin for one distance, CTF for several.
    register : bool
        For several distances: rescale to the first distance's magnification
        and remove the shifts measured by ``register_distances``.
    **options
        Passed to ``paganin`` or ``ctf_retrieval``.

    Returns
    -------
    xarray.DataArray, dims (energy, angle, y, x), float32
        Phase in radians (``attrs["units"] = "rad"``), provenance appended.
    """
    import xarray as xr

    from ._ctf import ctf_retrieval
    from ._holo_align import correct_magnification, register_distances, shift_images
    from ._paganin import paganin

    validate_tilt_series(ds, where="retrieve_phase_series")
    proj = ds["projections"]
    if "distance" not in proj.dims:
        raise ValidationError("retrieve_phase_series: projections must have a 'distance' dim "
                              "(energy, distance, angle, y, x)")
    if method not in ("auto", "paganin", "ctf"):
        raise ValidationError(f"retrieve_phase_series: method must be 'auto', 'paganin' or "
                              f"'ctf'; got {method!r}")
    z = np.asarray(ds.coords.get("effective_distance", ds["distance"]).values, dtype=float)
    mag = np.asarray(ds.coords["magnification"].values, float) if "magnification" in ds.coords \
        else np.ones_like(z)
    pixel_m = float(ds.attrs["pixel_size"]) * 1e-9
    use_ctf = method == "ctf" or (method == "auto" and z.size > 1)
    out = []
    for e_index, energy in enumerate(ds["energy"].values):  # a few energies at most
        inten = np.asarray(proj.isel(energy=e_index).transpose("distance", "angle", "y", "x"))
        inten = inten.astype(np.float32, copy=False)
        if register and z.size > 1:
            if np.any(mag != mag[0]):
                inten = correct_magnification(inten, mag)
            shifts = register_distances(inten, energy_ev=energy, distances_m=z,
                                        pixel_size_m=pixel_m, delta_beta=delta_beta)
            inten = np.stack([inten[0]] + [shift_images(inten[i], -shifts[i])
                                           for i in range(1, z.size)])
        if use_ctf:
            phase = ctf_retrieval(inten, energy_ev=energy, distances_m=z, pixel_size_m=pixel_m,
                                  delta_beta=delta_beta, **options)
        else:
            phase = paganin(inten[0], energy_ev=energy, distance_m=z[0], pixel_size_m=pixel_m,
                            delta_beta=delta_beta, **options)
        out.append(phase.astype(np.float32, copy=False))
    da = xr.DataArray(np.stack(out), dims=("energy", "angle", "y", "x"),
                      coords={k: ds.coords[k] for k in ("energy", "angle", "y", "x")},
                      name="phase", attrs={"units": "rad", "pixel_size": ds.attrs["pixel_size"],
                                           "pixel_size_units": "nm",
                                           "provenance": ds.attrs.get("provenance", "[]")})
    return add_provenance(da, "recon.phase.retrieve_phase_series", delta_beta=delta_beta,
                          method="ctf" if use_ctf else "paganin", register=register,
                          distances_m=z, **options)
