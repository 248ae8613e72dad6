"""The preprocess step's phase (holotomography) branch, by chunks of angles.

Each angle's phase depends only on that angle's frames at its distances
(:func:`~spectrotomo.recon.phase.retrieve_phase`: the flat/dark normalisation, the
magnification correction, the per-angle distance registration and Paganin/CTF are
all per angle), so an energy is read, retrieved and written by chunks of angles:
memory is one chunk's raw frames at every distance and their retrieval's work
arrays (about :data:`~._prep_stream.CHUNK_BYTES` of float32 I/I0 per chunk) plus
the block of angles of one store chunk being filled, never the raw series (energy,
distance, angle, y, x) nor an energy's phase. The values equal the in-memory path
(:func:`phase_od`, kept as the reference for tests): bit-identical on the simulated
holotomography input (tests/pipeline/test_phase_stream.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

__all__ = ["PhaseGeometry", "phase_geometry", "phase_od", "phase_parts", "phase_energy"]

_F4 = 4


@dataclass(frozen=True)
class PhaseGeometry:
    """What the retrieval of a raw holotomography series needs besides its frames.

    Attributes
    ----------
    distances_m : ndarray, shape (n_distances,)
        Effective propagation distances, m.
    magnifications : ndarray, shape (n_distances,), or None
        Geometric magnification of each distance (None: parallel beam).
    pixel_size_nm : float
        Sample-plane pixel of the first distance, nm.
    energies_ev : ndarray, shape (n_energies,)
        Photon energy of each energy of the series, eV.
    delta_beta : float
        delta / beta of the prior material.
    method : str
        "auto", "paganin" or "ctf".
    """

    distances_m: np.ndarray
    magnifications: np.ndarray | None
    pixel_size_nm: float
    energies_ev: np.ndarray
    delta_beta: float
    method: str

    @property
    def pixel_size_m(self) -> float:
        """The pixel in metres, as :func:`~spectrotomo.recon.phase.retrieve_phase_series`
        converts it (the same float: the streamed and in-memory paths agree bitwise)."""
        return self.pixel_size_nm * 1e-9

    def attrs(self) -> dict:
        """The od attrs the phase branch records."""
        return {"phase_method": self.method, "delta_beta": float(self.delta_beta)}


def phase_geometry(ds: xr.Dataset, cfg) -> PhaseGeometry:
    """The retrieval's geometry of the raw series ``ds`` and the ``[phase]`` options
    (the distances, pixel size and energy given there replace the series' own)."""
    proj = ds["projections"]
    has_d = "distance" in proj.dims
    given = list(cfg.phase.distances_m or [])
    if has_d and given:
        if len(given) != proj.sizes["distance"]:
            raise ValueError(f"preprocess: [phase] distances_m has {len(given)} values but "
                             f"the raw series has {proj.sizes['distance']} distances")
        z = np.asarray(given, float)
    elif has_d:
        z = np.asarray(ds.coords.get("effective_distance", ds["distance"]).values, float)
    else:
        z = np.asarray(given[:1] or [np.nan], float)
    if not np.all(np.isfinite(z)):
        raise ValueError("preprocess: the phase branch needs the propagation distance: the raw "
                         "series has no 'distance' coordinate and [phase] distances_m is empty")
    mag = (np.asarray(ds.coords["magnification"].values, float)
           if has_d and "magnification" in ds.coords else None)
    pixel_nm = (float(cfg.phase.pixel_size_m) * 1e9 if cfg.phase.pixel_size_m
                else float(ds.attrs["pixel_size"]))
    energies = (np.asarray([float(cfg.phase.energy_ev)]) if cfg.phase.energy_ev
                else np.asarray(ds["energy"].values, float))
    if energies.size != proj.sizes["energy"]:
        raise ValueError(f"preprocess: [phase] energy_ev gives one energy but the raw series "
                         f"has {proj.sizes['energy']}")
    return PhaseGeometry(z, mag, pixel_nm, energies, float(cfg.phase.delta_beta),
                         "auto" if cfg.phase.method == "none" else cfg.phase.method)


def _transmission(ds: xr.Dataset, cfg) -> xr.Dataset:
    """I/I0 with dims (energy, distance, angle, y, x), in memory; flat/dark corrected
    when flats exist (the reference path of :func:`phase_od`)."""
    from ...recon.prep import normalize

    proj = ds["projections"]
    if "distance" not in proj.dims:  # (with its units: the series' validation needs them)
        proj = proj.expand_dims(distance=[cfg.phase.distances_m[0]] if cfg.phase.distances_m
                                else [np.nan], axis=1)
        proj["distance"].attrs["units"] = "m"
    if "flats" not in ds:
        return ds.assign(projections=proj)
    flats = ds["flats"]
    darks = ds["darks"] if "darks" in ds else None
    out = np.empty(proj.shape, np.float32)
    for e in range(proj.sizes["energy"]):  # energies x distances: a handful of calls
        for d in range(proj.sizes["distance"]):
            def pick(da):
                return da.values[e, d] if "distance" in da.dims else da.values[e]
            od, _ = normalize(proj.values[e, d], pick(flats),
                              None if darks is None else pick(darks),
                              flat_mode=cfg.preprocess.flat_mode)
            out[e, d] = np.exp(-od)
    # proj.copy(data=...): keeps the distance coordinate expanded above (a (dims, values)
    # tuple dropped it, and a plain series with flats failed validation)
    return ds.drop_vars([v for v in ("flats", "darks") if v in ds]).assign(
        projections=proj.copy(data=out))


def phase_od(ds: xr.Dataset, cfg) -> tuple[np.ndarray, dict]:
    """Phase magnitude ``-phi`` (energy, angle, y, x) float32 rad of a raw holotomography
    series, whole in memory (the reference of the streamed branch: tests, benches)."""
    from ...recon.phase import retrieve_phase_series

    geom = phase_geometry(ds, cfg)
    inten = _transmission(ds, cfg)
    if cfg.phase.distances_m and "distance" in ds["projections"].dims:
        inten = inten.assign_coords(distance=("distance", list(geom.distances_m),
                                              {"units": "m"}))
        inten = inten.drop_vars(["effective_distance"], errors="ignore")
    inten.attrs["pixel_size"] = geom.pixel_size_nm
    if cfg.phase.energy_ev:
        inten = inten.assign_coords(energy=[float(cfg.phase.energy_ev)])
    phase = retrieve_phase_series(inten, delta_beta=geom.delta_beta, method=geom.method)
    return (-phase.values).astype(np.float32), geom.attrs()


def phase_parts(group: slice, n_distances: int, ny: int, nx: int) -> list[slice]:
    """Chunks of the angles ``group``: about :data:`~._prep_stream.CHUNK_BYTES` of float32
    I/I0 at every distance each (>= 1 angle; 2 angles of 4 distances at 2048^2)."""
    from ._prep_stream import CHUNK_BYTES

    per = max(1, CHUNK_BYTES // (n_distances * ny * nx * _F4))
    return [slice(a, min(a + per, group.stop)) for a in range(group.start, group.stop, per)]


def _references(ds: xr.Dataset, e: int, n_d: int, flat_mode: str) -> list:
    """Per distance: (flat, dark) reduced once (``reduce_references``), or None without flats."""
    from ...recon.prep import reduce_references

    if "flats" not in ds:
        return [None] * n_d

    def pick(name, d):
        if name not in ds:
            return None
        da = ds[name]
        return (da[e, d] if "distance" in da.dims else da[e]).values

    return [reduce_references(pick("flats", d), pick("darks", d), flat_mode=flat_mode)
            for d in range(n_d)]


def _intensity(proj: xr.DataArray, e: int, part: slice, refs: list,
               flat_mode: str) -> np.ndarray:
    """I/I0 (distance, part, y, x) float32 of energy ``e``'s angles ``part``, read from
    the store (only those frames and a halo frame on each side for the zinger test)."""
    from ._prep_stream import normalize_frames

    has_d = "distance" in proj.dims
    n_d = proj.sizes["distance"] if has_d else 1
    out = np.empty((n_d, part.stop - part.start, proj.sizes["y"], proj.sizes["x"]), np.float32)
    for d in range(n_d):  # 1-4 distances
        frames = proj[e, d] if has_d else proj[e]
        if refs[d] is None:  # the series holds I/I0 already
            out[d] = np.asarray(frames[part])
            continue
        od, _ = normalize_frames(frames, *refs[d], part, flat_mode=flat_mode)
        out[d] = np.exp(-od)
    return out


def phase_energy(ds: xr.Dataset, e: int, geom: PhaseGeometry, groups: list[slice],
                 flat_mode: str):
    """``(angles, -phi (angles, y, x) float32 rad)`` of energy ``e``, one block per
    slice of ``groups`` (the od store's chunks of angles), each retrieved by chunks of
    :func:`phase_parts`."""
    from ...recon.phase import retrieve_phase

    proj = ds["projections"]
    n_d, ny, nx = geom.distances_m.size, proj.sizes["y"], proj.sizes["x"]
    refs = _references(ds, e, n_d, flat_mode)
    for group in groups:  # one store chunk of angles at a time
        block = np.empty((group.stop - group.start, ny, nx), np.float32)
        for part in phase_parts(group, n_d, ny, nx):
            inten = _intensity(proj, e, part, refs, flat_mode)
            phase = retrieve_phase(inten, energy_ev=geom.energies_ev[e],
                                   distances_m=geom.distances_m,
                                   pixel_size_m=geom.pixel_size_m, delta_beta=geom.delta_beta,
                                   magnifications=geom.magnifications, method=geom.method)
            del inten  # else held while the next chunk is read
            np.negative(phase, out=block[part.start - group.start:part.stop - group.start])
            del phase
        yield group, block
        del block
