"""Forward model: attenuation per energy -> parallel-beam projections ->
transmission with flats, darks, Poisson noise and instrument imperfections.

Each chemical component (Li and every oxidation state of Mn, Co, Ni, O) is
projected once; the optical density at any energy is then the linear
combination ``OD(E) = pixel_size * sum_c sigma_c(E) * P_c`` (Beer-Lambert).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import xarray as xr

from ..spectra import BUILTIN_STATES, builtin_cross_section, cross_section
from ._detector import DARK_LEVEL, _detector_frames
from ._instrument import SCAN_CALIBRATION, Calibration, Imperfections
from ._project import project

__all__ = ["attenuation", "tilt_series", "components"]



def _energies(energies, where):
    e = np.atleast_1d(np.asarray(energies, dtype=float))
    if e.ndim != 1 or e.size == 0 or not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError(f"{where}: energies must be a non-empty 1-D array of positive eV values")
    if e.size > 1 and not np.all(np.diff(e) > 0):
        raise ValueError(f"{where}: energies must be strictly increasing, got {e.tolist()[:8]}")
    return e


def component_names(truth: xr.Dataset) -> list[str]:
    """The chemical components of :func:`components`: ``"Li"`` then the truth's states."""
    return ["Li", *truth["state"].values.tolist()]


def components(truth: xr.Dataset, z: slice = slice(None)) -> tuple[list[str], np.ndarray]:
    """Atom densities of every chemical component.

    Parameters
    ----------
    truth : xarray.Dataset
        From :func:`particle` (numpy- or dask-backed ``density`` and ``state_fraction``).
    z : slice
        Planes of the volume (default all): the forward model takes them slab by slab.

    Returns
    -------
    names : list of str
        ``"Li"`` then the state names (``"Mn2+"``, ...).
    cube : ndarray, shape (n_components, nz, ny, nx), float32
        Atoms per nm^3 of each component (element density x state fraction) on the
        planes ``z``.
    """
    # one compute for both: a lazy truth (``particle(lazy=True)``) computes each slab once
    sub = truth[["density", "state_fraction"]].isel(z=z).compute(scheduler="sync")
    density, frac = sub["density"], sub["state_fraction"]
    elements = density["element"].values.tolist()
    density, states = density.values, frac["state_element"].values
    frac = frac.values
    names = component_names(truth)
    cube = np.empty((len(names), *density.shape[1:]), np.float32)
    cube[0] = density[elements.index("Li")]
    for i in range(1, len(names)):  # ~11 states: a small fixed set
        np.multiply(density[elements.index(str(states[i - 1]))], frac[i - 1], out=cube[i])
    return names, cube


def _sigma(names, energies) -> np.ndarray:
    """Cross sections (n_components, n_energies) in nm^2 per atom."""
    rows = [cross_section(n, energies) if n not in BUILTIN_STATES else builtin_cross_section(n, energies)
            for n in names]
    return np.stack(rows)


#: Gauss-Hermite order of the broadening convolution: exact to ~1e-6 for the model's
#: narrowest feature (0.5 eV white lines) at broadenings up to a few eV.
_N_HERMITE = 24


def _scan_sigma(names, energies, calibration: Calibration) -> np.ndarray:
    """Cross sections (n_components, n_energies) nm^2 as the scan sees them:
    shifted by the calibration offset and convolved with its Gaussian broadening."""
    if calibration.exact:
        return _sigma(names, energies)
    shifted = energies - calibration.energy_offset_ev
    if calibration.broadening_ev == 0:
        return _sigma(names, shifted)
    x, w = np.polynomial.hermite_e.hermegauss(_N_HERMITE)  # nodes of the weight exp(-x^2 / 2)
    at = shifted[None, :] + calibration.broadening_ev * x[:, None]  # (nodes, E)
    sigma = _sigma(names, at.ravel()).reshape(len(names), *at.shape)
    return np.tensordot(sigma, w / w.sum(), axes=([1], [0]))


def attenuation(truth: xr.Dataset, energies) -> xr.DataArray:
    """Linear attenuation coefficient of the truth at each energy.

    Parameters
    ----------
    truth : xarray.Dataset
        From :func:`particle`.
    energies : array_like, shape (n_energies,)
        Photon energies in eV, strictly increasing.

    Returns
    -------
    xarray.DataArray, dims (energy, z, y, x), float32, units 1/nm
    """
    from .._model import volume

    energies = _energies(energies, "attenuation")
    names, cube = components(truth)
    sigma = _sigma(names, energies).astype(np.float32)
    mu = np.tensordot(sigma.T, cube, axes=1)  # (E, C) x (C, z, y, x)
    return volume(mu, energies=energies, voxel_size=truth.attrs["pixel_size"], units="1/nm",
                  name="attenuation", attrs={"synthetic": True})


def _sinc_weights(src: np.ndarray, n: int) -> np.ndarray:
    """Whittaker-Shannon weights ``sinc(src - k)``, k = 0 .. n-1.

    src : (..., n_out) sample positions in px -> (..., n_out, n) float64. The
    field outside the n recorded pixels is zero (nothing enters from outside).
    """
    return np.sinc(src[..., :, None] - np.arange(n, dtype=float))


#: Pixels per block of angles in :func:`_misalign` (float64: 16 MiB): the sinc matrices
#: and products of all 131 angles were ~5 x 69 MiB per energy thread at 256^2
_MISALIGN_VOXELS = 2**21


def _misalign(od, shifts, scales, out=None):
    """Resample each image: out(r) = od(c0 + (r - c0 - shift) / scale), band-limited.

    od : (E, A, ny, nx); shifts : (E, A, 2) px (dy, dx); scales : (E,).
    out : (E, A, ny, nx), optional: where the images go (``od`` itself: each energy's
    images are read whole before they are overwritten), computed in float64 and cast on
    assignment; default a new float64 array. Returns ``out``.

    Why band-limited (sinc) interpolation: the optical image a TXM forms on
    its detector is band-limited by the zone plate's transfer function (cut-off
    near the outermost zone width, about one pixel here), so a moved or
    magnified sample gives the detector samples of the *same* band-limited
    image at moved positions -- the Whittaker-Shannon interpolant of the
    unmoved samples, whose frequency response has modulus 1 below Nyquist for
    every sub-pixel shift. A bilinear (or any local spline) resampling instead
    low-passes each image by an amount that depends on the sub-pixel part of
    its shift, so energies shifted by different amounts got different blurs
    and biased edge jumps at the particle surface (a simulator artefact, not
    an instrument effect; gpu_bench/RESULTS.prep.md, 2026-12-01). The detector's
    pixel integration is the same for every image (a shared response in
    detector pixels) and is not modelled, as for the unmoved projection. The
    map is axis-aligned, so each image is ``W_y @ od @ W_x.T`` with one sinc
    matrix per axis and image; the angle jitter (a stage translation) and the
    energy shift (optics drift) are one combined displacement of the image,
    resampled once. Zero shift and unit scale return the input (to rounding).
    """
    from concurrent.futures import ThreadPoolExecutor

    from .._backend import blas_single_thread, host_threads

    n_e, n_a, ny, nx = od.shape
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    out = np.empty(od.shape, np.float64) if out is None else out
    rows, cols = np.arange(ny, dtype=float), np.arange(nx, dtype=float)

    per = max(1, _MISALIGN_VOXELS // (ny * nx))

    def one(e):  # batched products over the angles of energy e, a block of angles each
        for a in range(0, n_a, per):  # blocks bound the float64 temporaries (~5 a block)
            b = slice(a, a + per)
            src_y = cy + (rows[None] - cy - shifts[e, b, 0, None]) / scales[e]  # (a, ny)
            src_x = cx + (cols[None] - cx - shifts[e, b, 1, None]) / scales[e]  # (a, nx)
            w_y, w_x = _sinc_weights(src_y, ny), _sinc_weights(src_x, nx)
            out[e, b] = w_y @ od[e, b].astype(np.float64) @ w_x.transpose(0, 2, 1)

    # energies in threads, each product on one BLAS thread (they release the GIL): a
    # single loop kept one of two cores busy, and OpenBLAS's own threads on these
    # 128 x 128 products cost ~25x the CPU of one thread (spin-waiting, oversubscribed)
    with blas_single_thread(), ThreadPoolExecutor(max(1, min(host_threads(), n_e))) as pool:
        list(pool.map(one, range(n_e)))
    return out


def tilt_series(
    truth: xr.Dataset,
    *,
    energies,
    angles=np.arange(-65, 66.0),
    photons: float | None = 2e4,
    n_flats: int = 5,
    n_darks: int = 3,
    imperfections: Imperfections = Imperfections(),
    calibration: Calibration = SCAN_CALIBRATION,
    pixel_size_metadata: bool = False,
    seed: int = 0,
) -> xr.Dataset:
    """Simulated soft X-ray TXM tilt series of ``truth`` (raw counts + ground truth).

    Parameters
    ----------
    truth : xarray.Dataset
        From :func:`particle` (pixel size in nm).
    energies : array_like, shape (n_energies,)
        Photon energies, eV, strictly increasing.
    angles : array_like, shape (n_angles,)
        Tilt angles, degrees (geometry of :func:`project`).
    photons : float or None
        Mean flat-field counts at the beam centre per pixel and frame; Poisson
        noise on every frame. ``None``: noise-free expected counts (float32).
    n_flats, n_darks : int
        Flat (open beam) and dark frames per energy; darks have mean
        ``DARK_LEVEL`` = 100 counts (added to flats and projections too).
    imperfections : Imperfections
        Jitter, centre offset, energy shifts, magnification, gain errors
        (:class:`Imperfections`; default none).
    calibration : Calibration
        Energy offset and broadening of the scan's spectra relative to the
        builtin references (default ``SCAN_CALIBRATION``, +0.3 eV and 0.2 eV;
        ``Calibration()``: the references' exact spectra).
    pixel_size_metadata : bool
        Record the pixel size each energy's magnification implies,
        ``pixel_size / true_scale`` (nm, exact), as the coordinate
        ``pixel_size_energy`` -- what a TXM that writes a pixel size per
        energy would store. Default False: the draws in ``1 +- magnification``
        stand for every magnification change, including those an instrument's
        optics model does not know (focus, zone-plate adjustments, drift), so
        exact metadata would be an oracle and registration must estimate the
        scale. Turn it on to simulate metadata the instrument got right.
    seed : int
        Seed of every random draw.

    Returns
    -------
    xarray.Dataset
        Valid per :func:`spectrotomo.validate_tilt_series`: ``projections``
        (energy, angle, y, x), ``flats`` (energy, flat, y, x), ``darks``
        (energy, dark, y, x): counts, uint16 when all fit else uint32
        (float32 expectations if ``photons`` is None).
        Ground truth: ``true_od`` (energy, angle, y, x) float32 noise-free
        optical density as recorded (misalignment applied, gain errors not);
        ``true_shift`` (angle, shift=[dy, dx]) and ``true_energy_shift``
        (energy, shift) px; ``true_scale`` (energy); ``true_gain`` (y, x).
        Image ``(e, a)`` is the ideal projection magnified by
        ``true_scale[e]`` about the detector centre, then translated by
        ``true_shift[a] + true_energy_shift[e]``, resampled once as the
        detector samples a band-limited optical image (sinc interpolation: no
        blur that depends on the sub-pixel shift). ``attrs["true_center"]`` is
        the rotation-axis column in the ideal geometry. With
        ``pixel_size_metadata`` the coordinate ``pixel_size_energy`` (energy,)
        is ``attrs["pixel_size"] / true_scale`` in nm.
    """
    # over 80 lines only by its docstring (every parameter and output documented);
    # the steps are the helpers below
    from .. import add_provenance

    energies, angles = _check_series_inputs(energies, angles, photons, n_flats, n_darks,
                                            imperfections)
    rng = np.random.default_rng(seed)
    nx = truth.sizes["x"]
    center = (nx - 1) / 2 + float(imperfections.center_offset_px)
    od = _ideal_od(truth, energies, angles, center, calibration)
    geometry = _draw_misalignment(rng, energies, angles.size, imperfections)
    if imperfections.misaligned:
        # in place: float64 products per energy, cast to float32 on assignment (the same
        # values as a float64 stack cast afterwards, without the stack: 550 MiB at 256^3)
        _misalign(od, geometry["true_shift"][None] + geometry["true_energy_shift"][:, None],
                  geometry["true_scale"], out=od)
    frames = _detector_frames(rng, od, photons, n_flats, n_darks, imperfections.ring_strength)
    ds = _series_dataset(truth, energies, angles, od, geometry, frames, center=center,
                         photons=photons, pixel_size_metadata=pixel_size_metadata)
    ds.attrs.update(true_energy_offset_ev=float(calibration.energy_offset_ev),
                    true_broadening_ev=float(calibration.broadening_ev))
    return add_provenance(ds, "simulate.tilt_series", photons=photons, n_flats=n_flats,
                          n_darks=n_darks, **asdict(imperfections), **asdict(calibration),
                          pixel_size_metadata=bool(pixel_size_metadata), seed=seed)


def _check_series_inputs(energies, angles, photons, n_flats, n_darks, imperfections):
    """Validated (energies, angles) as float arrays; ValueError naming the bad parameter."""
    energies = _energies(energies, "tilt_series")
    angles = np.atleast_1d(np.asarray(angles, dtype=float))
    if photons is not None and not photons > 0:
        raise ValueError(f"tilt_series: photons must be > 0 or None, got {photons}")
    if n_flats < 1 or n_darks < 1:
        raise ValueError(f"tilt_series: n_flats and n_darks must be >= 1, got {n_flats}, {n_darks}")
    if not isinstance(imperfections, Imperfections):
        raise TypeError(f"tilt_series: imperfections must be a simulate.Imperfections, got "
                        f"{type(imperfections).__name__}")
    per_ev = imperfections.magnification_per_ev
    if abs(per_ev) * np.ptp(energies) >= 0.5:
        raise ValueError("tilt_series: magnification_per_ev must be finite and change the scale by "
                         f"< 50 % over the energies, got {per_ev}")
    return energies, angles


#: Component voxels per slab of :func:`_ideal_od` (float32: 64 MiB): the forward model's
#: working set is a few slabs' components, attenuation volumes and projections, not the
#: whole volume's (12 components and 8 volumes were 1.3 GiB at 256^3, twice over with the
#: XANES scan's series beside the dual-energy one)
_SLAB_VOXELS = 2**24


def _ideal_od(truth, energies, angles, center, calibration) -> np.ndarray:
    """Noise-free optical density (energy, angle, z, x) of the aligned geometry (float32).

    The optical density is linear in the components' densities, so the fewer of
    (components, energies) is projected: the components when the energies are
    more (a XANES scan), else each energy's attenuation volume (a dual-energy
    series: 8 volumes instead of 12 components, 2/3 of the projection's cost).
    Parallel rays about z keep the planes independent, so the volume is projected in
    slabs of z planes: every detector row's sums are those of the whole volume's
    product, bit for bit (each column of the sparse product is summed alone).
    """
    px = float(truth.attrs["pixel_size"])
    nz, ny, nx = (truth.sizes[d] for d in ("z", "y", "x"))
    names = component_names(truth)
    n_c, n_e, n_a = len(names), energies.size, angles.size
    sigma = _scan_sigma(names, energies, calibration).astype(np.float32) * np.float32(px)
    od = np.empty((n_e, n_a, nz, nx), np.float32)
    for z0, z1 in _slabs(truth, _SLAB_VOXELS // (n_c * ny * nx)):
        cube = components(truth, slice(z0, z1))[1]
        if n_e < n_c:
            vols = _attenuation_volumes(sigma, cube)  # (E, dz, ny, nx) 1/voxel
            proj = project(vols.reshape(n_e * (z1 - z0), ny, nx), angles, center=center)
            od[:, :, z0:z1] = proj.reshape(n_a, n_e, z1 - z0, nx).transpose(1, 0, 2, 3)
        else:
            proj = project(cube.reshape(n_c * (z1 - z0), ny, nx), angles, center=center)
            proj = proj.reshape(n_a, n_c, (z1 - z0) * nx)  # (A, C, dz * nx) voxels
            od[:, :, z0:z1] = np.einsum("ec,acp->eap", sigma.T, proj, optimize=True).reshape(
                n_e, n_a, z1 - z0, nx)
    return od


def _slabs(truth, planes: int) -> list[tuple[int, int]]:
    """``[z0, z1)`` of ``planes`` planes (at least 1); a lazy truth's cut only at its
    own slabs' edges (its dask chunks, each then computed once), its slabs joined until
    they reach ``planes`` (a 512^2 plane's 2-plane slabs alone left 16 slices a product:
    one thread)."""
    nz, planes = truth.sizes["z"], max(1, planes)
    chunks = truth["density"].chunksizes.get("z")
    if not chunks:
        edges = [*range(0, nz, planes), nz]
    else:
        edges = [0]
        for end in np.cumsum(chunks).tolist():  # a few hundred slabs at most
            if end == nz or end - edges[-1] >= planes:
                edges.append(end)
    return list(zip(edges[:-1], edges[1:]))


def _attenuation_volumes(sigma, cube) -> np.ndarray:
    """``tensordot(sigma.T, cube, axes=1)`` (E, nz, ny, nx), sigma (C, E), cube (C, nz, ny,
    nx), by slabs of z in host threads (the same sums per voxel: bit for bit, tested)."""
    from concurrent.futures import ThreadPoolExecutor

    from .._backend import host_threads

    nz = cube.shape[1]
    vols = np.empty((sigma.shape[1], *cube.shape[1:]), np.float32)
    bounds = np.linspace(0, nz, max(1, min(host_threads(), nz // 16)) + 1).round().astype(int)

    def slab(z):
        vols[:, z[0]:z[1]] = np.tensordot(sigma.T, cube[:, z[0]:z[1]], axes=1)

    with ThreadPoolExecutor(len(bounds) - 1) as pool:
        list(pool.map(slab, zip(bounds[:-1], bounds[1:])))
    return vols


def _draw_misalignment(rng, energies, n_angles, imp: Imperfections) -> dict:
    """Per-angle shifts (A, 2), per-energy shifts (E, 2) px and per-energy scales (E,)."""
    shift_a = rng.normal(0.0, 1.0, (n_angles, 2)) * imp.jitter_px
    shift_e = rng.normal(0.0, 1.0, (energies.size, 2)) * imp.energy_shift_px
    scale = 1.0 + rng.uniform(-1.0, 1.0, energies.size) * imp.magnification
    scale = scale * (1.0 + imp.magnification_per_ev * (energies - energies[0]))
    return {"true_shift": shift_a, "true_energy_shift": shift_e, "true_scale": scale}


def _series_dataset(truth, energies, angles, od, geometry, frames, *, center, photons,
                    pixel_size_metadata) -> xr.Dataset:
    """The validated tilt series of the counts with the ground-truth variables."""
    from .. import tilt_series as make_tilt_series

    px = float(truth.attrs["pixel_size"])
    scale = geometry["true_scale"]
    ds = make_tilt_series(
        frames["projections"], angles=angles, energies=energies, pixel_size=px,
        flats=frames["flats"], darks=frames["darks"],
        pixel_sizes=px / scale if pixel_size_metadata else None,
        attrs={"synthetic": True, "true_center": center, "photons": photons if photons else 0.0,
               "dark_level": DARK_LEVEL, "sample_preset": truth.attrs.get("preset", ""),
               "sample_seed": truth.attrs.get("seed", -1)},
        where="simulate.tilt_series")
    ds["true_od"] = (("energy", "angle", "y", "x"), od,
                     {"units": "1", "long_name": "noise-free optical density (-ln T)"})
    shift_coord = {"shift": ["dy", "dx"]}
    for name, dim in (("true_shift", "angle"), ("true_energy_shift", "energy")):
        ds[name] = xr.DataArray(geometry[name], dims=(dim, "shift"), coords=shift_coord,
                                attrs={"units": "px"})
    ds["true_scale"] = ("energy", scale, {"units": "1"})
    ds["true_gain"] = (("y", "x"), frames["gain"],
                       {"units": "1", "long_name": "detector gain not in flats"})
    return ds
