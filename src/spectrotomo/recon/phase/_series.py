"""Phase retrieval of a holotomography tilt series (xarray in, xarray out), and of one
energy's images (:func:`retrieve_phase`: any subset of angles, e.g. a chunk)."""

from __future__ import annotations

import numpy as np

from ..._model import ValidationError, add_provenance, validate_tilt_series

__all__ = ["retrieve_phase", "retrieve_phase_series"]

_METHODS = ("auto", "paganin", "ctf")


def uses_ctf(method: str, n_distances: int) -> bool:
    """Whether ``method`` ("auto", "paganin", "ctf") retrieves with the CTF: "auto" does
    for several distances, Paganin (first distance only) for one."""
    if method not in _METHODS:
        raise ValidationError(f"retrieve_phase: method must be 'auto', 'paganin' or 'ctf'; "
                              f"got {method!r}")
    return method == "ctf" or (method == "auto" and n_distances > 1)


def retrieve_phase(intensity, *, energy_ev, distances_m, pixel_size_m, delta_beta,
                   magnifications=None, method="auto", register=True, **options):
    """Phase of the images of one energy, each angle from its own distances' images.

    Every step is local to one angle: the magnification correction and the distance
    registration (``register_distances`` measures one shift per angle and distance)
    as well as Paganin and the CTF (per-image Fourier filters), so any subset of
    angles -- a chunk of a long scan -- gives the same phase as the whole stack.

    Parameters
    ----------
    intensity : ndarray, shape (n_distances, n_angles, rows, cols)
        Flat-field-corrected I/I0 (numpy or cupy; float32 stays float32).
    energy_ev : float
        Photon energy in eV.
    distances_m : sequence of float, length n_distances
        Effective propagation distances in metres.
    pixel_size_m : float
        Sample-plane pixel of the first distance, metres.
    delta_beta : float
        delta / beta of the (prior) material.
    magnifications : sequence of float, optional
        Geometric magnification of each distance (divergent beam); None: parallel.
    method : {"auto", "paganin", "ctf"}
        "auto": Paganin for one distance, CTF for several.
    register : bool
        For several distances: rescale to the first distance's magnification and
        remove the shifts measured by ``register_distances``.
    **options
        Passed to ``paganin`` or ``ctf_retrieval``.

    Returns
    -------
    ndarray, shape (n_angles, rows, cols), float32
        Phase in radians (negative for matter).
    """
    from ._ctf import ctf_retrieval
    from ._holo_align import correct_magnification, register_distances, shift_images
    from ._paganin import paganin

    z = np.atleast_1d(np.asarray(distances_m, dtype=float))
    if intensity.ndim != 4 or intensity.shape[0] != z.size:
        raise ValidationError(f"retrieve_phase: intensity must be shaped (n_distances="
                              f"{z.size}, n_angles, rows, cols); got {intensity.shape}")
    mag = np.ones_like(z) if magnifications is None else np.asarray(magnifications, float)
    use_ctf = uses_ctf(method, z.size)
    inten = intensity.astype(np.float32, copy=False)
    if register and z.size > 1:
        if np.any(mag != mag[0]):
            inten = correct_magnification(inten, mag)
        shifts = register_distances(inten, energy_ev=energy_ev, distances_m=z,
                                    pixel_size_m=pixel_size_m, delta_beta=delta_beta)
        inten = np.stack([inten[0]] + [shift_images(inten[i], -shifts[i])
                                       for i in range(1, z.size)])
    if use_ctf:
        phase = ctf_retrieval(inten, energy_ev=energy_ev, distances_m=z,
                              pixel_size_m=pixel_size_m, delta_beta=delta_beta, **options)
    else:
        phase = paganin(inten[0], energy_ev=energy_ev, distance_m=z[0],
                        pixel_size_m=pixel_size_m, delta_beta=delta_beta, **options)
    return phase.astype(np.float32, copy=False)


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
        All angles of an energy are retrieved in one :func:`retrieve_phase` call;
        a long scan can call it on chunks of angles instead (same values).
    """
    import xarray as xr

    validate_tilt_series(ds, where="retrieve_phase_series")
    proj = ds["projections"]
    if "distance" not in proj.dims:
        raise ValidationError("retrieve_phase_series: projections must have a 'distance' dim "
                              "(energy, distance, angle, y, x)")
    z = np.asarray(ds.coords.get("effective_distance", ds["distance"]).values, dtype=float)
    mag = np.asarray(ds.coords["magnification"].values, float) if "magnification" in ds.coords \
        else None
    pixel_m = float(ds.attrs["pixel_size"]) * 1e-9
    use_ctf = uses_ctf(method, z.size)
    out = []
    for e_index, energy in enumerate(ds["energy"].values):  # a few energies at most
        inten = np.asarray(proj.isel(energy=e_index).transpose("distance", "angle", "y", "x"))
        out.append(retrieve_phase(inten, energy_ev=energy, distances_m=z, pixel_size_m=pixel_m,
                                  delta_beta=delta_beta, magnifications=mag, method=method,
                                  register=register, **options))
    da = xr.DataArray(np.stack(out), dims=("energy", "angle", "y", "x"),
                      coords={k: ds.coords[k] for k in ("energy", "angle", "y", "x")},
                      name="phase", attrs={"units": "rad", "pixel_size": ds.attrs["pixel_size"],
                                           "pixel_size_units": "nm",
                                           "provenance": ds.attrs.get("provenance", "[]")})
    return add_provenance(da, "recon.phase.retrieve_phase_series", delta_beta=delta_beta,
                          method="ctf" if use_ctf else "paganin", register=register,
                          distances_m=z, **options)
