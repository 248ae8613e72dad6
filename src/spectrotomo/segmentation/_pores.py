"""Voids (nanopores) and cracks inside particles from phase or absorption volumes.

Both are dark (low density) structures inside the particle envelope. They are
told apart by shape: a component is *crack-like* when its extent (length of
its longest principal axis, ``sqrt(12 * largest covariance eigenvalue)``) is
at least ``min_aspect`` times its thickness (``2 * max inner distance - one
voxel``); pores are the compact rest.
"""

from __future__ import annotations

import numpy as np

from .._backend import to_numpy
from .._model import ValidationError
from ._util import as_mask, check_same_shape, label_ids, resolve_spacing, unwrap

__all__ = ["find_pores", "find_cracks", "defect_sizes", "defect_table"]


def find_pores(volume, mask, *, threshold: float | None = None, min_size: int = 2,
               min_aspect: float = 3.0, spacing=None):
    """Label voids/nanopores: compact dark regions inside the particle envelope.

    Parameters
    ----------
    volume : array or xarray.DataArray, shape (nz, ny, nx) or (ny, nx), float
        Absorption (1/nm) or phase/electron-density volume; pores are darker
        than the solid.
    mask : array, same shape, bool or int
        Particle envelope (pores included), e.g. from :func:`particle_mask`.
    threshold : float, optional
        Value below which a voxel is void (units of ``volume``). Default:
        halfway between the background level (median outside the mask) and
        the solid level (median inside).
    min_size : int
        Smallest pore in voxels.
    min_aspect : float
        Dark components with extent/thickness >= ``min_aspect`` are cracks, not
        pores, and are left out.
    spacing : float or sequence, optional
        Voxel size in nm (default from attrs, else 1).

    Returns
    -------
    ndarray, same shape, int32
        0 no pore, 1..N pore labels.

    Notes
    -----
    Dark voxels are split by a binary opening (face-connected cross) into a
    thick part (pores at least ~3 voxels across) and a thin rest. Compact
    (extent/thickness < ``min_aspect``) components of either part are pores;
    so a pore cut by a thin crack is still found, while a thin pore (under
    ~3 voxels) touching a crack counts as part of the crack.
    """
    from scipy import ndimage

    vol, inside, sp = _prepare(volume, mask, spacing)
    if threshold is None:
        threshold = _midpoint(vol, inside, 0.5)
    dark = inside & (vol < threshold)
    # Pores thicker than three voxels survive an opening that erases thin
    # cracks; what they lose at their rim is grown back inside ``dark``.
    cross = ndimage.generate_binary_structure(vol.ndim, 1)
    core = ndimage.binary_opening(dark, structure=cross)
    thick = ndimage.binary_dilation(core, structure=cross) & dark
    lab, n = ndimage.label(thick)
    keep = _keep(lab, n, sp, min_size=min_size, crack_like=False, min_aspect=min_aspect)
    pores = np.isin(lab, keep)
    # The thin rest: full connectivity keeps an oblique (corner-connected)
    # crack in one crack-like piece; small compact pieces are small pores.
    rest, n_rest = ndimage.label(dark & ~thick, structure=np.ones((3,) * vol.ndim))
    keep = _keep(rest, n_rest, sp, min_size=min_size, crack_like=False, min_aspect=min_aspect)
    pores |= np.isin(rest, keep)
    return ndimage.label(pores)[0].astype(np.int32)


def find_cracks(volume, mask, *, max_width: float | None = None, contrast: float = 0.35,
                min_size: int = 8, min_aspect: float = 3.0, edge: int = 1, spacing=None):
    """Label cracks: thin, extended dark structures inside the particle.

    A black top-hat (closing minus volume) with a ball wider than
    ``max_width`` picks out dark features narrower than the ball, including
    sub-voxel cracks seen only as a partial-volume dip. Voxels whose top-hat
    exceeds ``contrast`` times the solid-background contrast are candidates;
    connected candidates that are crack-like (extent/thickness >=
    ``min_aspect``) and at least ``min_size`` voxels are kept; voxels of
    compact pores (:func:`find_pores` with default threshold) and their face
    neighbours are excluded.

    Parameters
    ----------
    volume : array or xarray.DataArray, shape (nz, ny, nx) or (ny, nx), float
    mask : array, same shape, bool or int
        Particle envelope.
    max_width : float, optional
        Widest crack to find, nm (default 3 voxels).
    contrast : float
        Fraction (0..1) of the solid-minus-background contrast a dip must reach.
    min_size, min_aspect : int, float
        Smallest crack (voxels) and the thinness criterion.
    edge : int
        Voxels this close to the envelope surface (face steps) are ignored: the
        blurred surface itself looks like a thin dark sheet.
    spacing : float or sequence, optional
        Voxel size in nm.

    Returns
    -------
    ndarray, same shape, int32
        0 no crack, 1..N crack labels.
    """
    from scipy import ndimage

    if not 0 < contrast < 1:
        raise ValidationError(f"contrast must be in (0, 1); got {contrast!r}")
    vol, inside, sp = _prepare(volume, mask, spacing)
    width_vox = 3.0 if max_width is None else float(max_width) / sp.min()
    radius = max(1, int(np.ceil(width_vox / 2)))
    ball = _ball(radius, vol.ndim, sp / sp.min())
    filled = np.where(np.isfinite(vol), vol, np.nanmin(vol))
    tophat = ndimage.grey_closing(filled, footprint=ball) - filled
    solid_minus_bg = _midpoint(vol, inside, 1.0) - _midpoint(vol, inside, 0.0)
    core = ndimage.binary_erosion(inside, iterations=edge) if edge > 0 else inside
    candidates = core & (tophat > contrast * solid_minus_bg)
    # The closing also partly fills pores wider than the ball, leaving a thin
    # curved rim inside each pore that would pass as a sheet: drop pore voxels
    # and their face neighbours.
    pores = find_pores(vol, inside, min_size=1, min_aspect=min_aspect, spacing=sp) > 0
    candidates &= ~ndimage.binary_dilation(pores)
    lab, n = ndimage.label(candidates, structure=np.ones((3,) * vol.ndim))
    keep = _keep(lab, n, sp, min_size=min_size, crack_like=True, min_aspect=min_aspect)
    return _relabel(lab, keep)


def defect_sizes(defects, *, spacing=None, labels=None):
    """Size of every labelled pore or crack.

    Parameters
    ----------
    defects : array, int
        Output of :func:`find_pores` or :func:`find_cracks`.
    spacing : float or sequence, optional
        Voxel size in nm.
    labels : array, same shape, int, optional
        Particle labels; adds the particle each defect lies in (majority).

    Returns
    -------
    xarray.Dataset, dim ``defect``
        ``voxels``, ``volume`` (nm^3, area nm^2 in 2D),
        ``equivalent_diameter`` (nm, of the sphere/disc of equal volume/area),
        ``thickness`` (nm), ``extent`` (nm), ``aspect`` and optionally
        ``particle``.
    """
    import xarray as xr

    lab = as_mask(to_numpy(unwrap(defects)[0]), name="defects", allow_empty=True)
    sp = resolve_spacing(spacing, lab.ndim, unwrap(defects)[1])
    ids = label_ids(lab)
    counts, thickness, extent = _shape_measures(lab, ids, sp)
    vox = float(np.prod(sp))
    vol = counts * vox
    if lab.ndim == 3:
        diameter = np.cbrt(6.0 * vol / np.pi)
    else:
        diameter = np.sqrt(4.0 * vol / np.pi)
    data = {
        "voxels": ("defect", counts),
        "volume": ("defect", vol, {"units": "nm^3" if lab.ndim == 3 else "nm^2"}),
        "equivalent_diameter": ("defect", diameter, {"units": "nm"}),
        "thickness": ("defect", thickness, {"units": "nm"}),
        "extent": ("defect", extent, {"units": "nm"}),
        "aspect": ("defect", extent / thickness),
    }
    if labels is not None:
        plab = as_mask(to_numpy(unwrap(labels)[0]), name="labels").astype(np.int64)
        check_same_shape(defects=lab, labels=plab)
        data["particle"] = ("defect", _majority(lab, plab, ids))
    return xr.Dataset(data, coords={"defect": ids})


def defect_table(labels, *, pores=None, cracks=None, spacing=None):
    """Porosity and crack volume fraction per particle.

    Parameters
    ----------
    labels : array, bool or int
        Particle envelope mask or labels (0 outside).
    pores, cracks : array, same shape, int or bool, optional
        Outputs of :func:`find_pores` / :func:`find_cracks`.
    spacing : float or sequence, optional
        Voxel size in nm.

    Returns
    -------
    xarray.Dataset, dim ``particle``
        ``volume`` (envelope, nm^3), ``porosity`` and ``crack_fraction`` (of
        the envelope volume), ``n_pores``, ``n_cracks``,
        ``mean_pore_diameter`` (nm, equivalent diameter), ``max_pore_diameter``.
    """
    import xarray as xr

    plab = as_mask(to_numpy(unwrap(labels)[0]), name="labels").astype(np.int64)
    sp = resolve_spacing(spacing, plab.ndim, unwrap(labels)[1])
    ids = label_ids(plab)
    index = np.zeros(plab.shape, dtype=np.int64)
    index[plab > 0] = np.searchsorted(ids, plab[plab > 0]) + 1
    total = np.bincount(index.ravel(), minlength=ids.size + 1)[1:]
    data = {"volume": ("particle", total * float(np.prod(sp)), {"units": "nm^3"})}
    for name, defects in (("pore", pores), ("crack", cracks)):
        if defects is None:
            continue
        dlab = as_mask(to_numpy(unwrap(defects)[0]), name=f"{name}s", allow_empty=True)
        check_same_shape(labels=plab, **{f"{name}s": dlab})
        hit = np.bincount(index[dlab > 0], minlength=ids.size + 1)[1:]
        key = "porosity" if name == "pore" else "crack_fraction"
        data[key] = ("particle", hit / total)
        sizes = defect_sizes(dlab.astype(np.int64), spacing=sp, labels=plab)
        owner = sizes["particle"].values if sizes.sizes["defect"] else np.zeros(0, int)
        pos = np.searchsorted(ids, owner)
        valid = owner > 0
        data[f"n_{name}s"] = ("particle", np.bincount(pos[valid], minlength=ids.size))
        if name == "pore":
            diam = sizes["equivalent_diameter"].values[valid]
            n = np.bincount(pos[valid], minlength=ids.size)
            s = np.bincount(pos[valid], weights=diam, minlength=ids.size)
            mx = np.zeros(ids.size)
            np.maximum.at(mx, pos[valid], diam)
            with np.errstate(invalid="ignore"):
                data["mean_pore_diameter"] = ("particle", np.where(n > 0, s / np.maximum(n, 1),
                                                                   np.nan), {"units": "nm"})
            data["max_pore_diameter"] = ("particle", mx, {"units": "nm"})
    return xr.Dataset(data, coords={"particle": ids})


# --------------------------------------------------------------------------- #
def _prepare(volume, mask, spacing):
    vdata, template = unwrap(volume)
    vol = np.asarray(to_numpy(vdata), dtype=np.float64)
    inside = as_mask(to_numpy(unwrap(mask)[0])) > 0
    check_same_shape(volume=vol, mask=inside)
    return vol, inside, resolve_spacing(spacing, vol.ndim, template)


def _midpoint(vol, inside, weight):
    """Background + weight * (solid - background), from medians in/outside."""
    solid = np.nanmedian(vol[inside])
    outside = vol[~inside]
    background = np.nanmedian(outside) if np.isfinite(outside).any() else 0.0
    return background + weight * (solid - background)


def _ball(radius: int, ndim: int, aspect: np.ndarray) -> np.ndarray:
    # aspect: spacing / smallest spacing, so the ball is round in nm.
    half = np.maximum(1, np.ceil(radius / aspect)).astype(int)
    grids = np.meshgrid(*[np.arange(-h, h + 1) * a for h, a in zip(half, aspect)],
                        indexing="ij")
    return sum(g ** 2 for g in grids) <= radius ** 2 + 1e-9


def _shape_measures(lab, ids, sp):
    """Voxel count, thickness (nm) and extent (nm) of each labelled component."""
    from scipy import ndimage

    if ids.size == 0:
        return np.zeros(0, int), np.zeros(0), np.zeros(0)
    sel = lab > 0
    index = np.searchsorted(ids, lab[sel])
    coords = np.stack([c * s for c, s in zip(np.nonzero(sel), sp)])  # (ndim, n) nm
    k = ids.size
    counts = np.bincount(index, minlength=k)
    mean = np.stack([np.bincount(index, weights=c, minlength=k) for c in coords]) / counts
    centred = coords - mean[:, index]
    ndim = coords.shape[0]
    cov = np.empty((k, ndim, ndim))
    for a in range(ndim):  # ndim x ndim bincounts: a fixed small loop
        for b in range(a, ndim):
            v = np.bincount(index, weights=centred[a] * centred[b], minlength=k) / counts
            cov[:, a, b] = cov[:, b, a] = v
    # A uniform segment of length L has variance L^2/12; add one voxel so a
    # single voxel has extent one voxel.
    extent = np.sqrt(12.0 * np.linalg.eigvalsh(cov)[:, -1]) + sp.min()
    # Distance to the nearest voxel outside any component (array edge outside).
    padded = np.pad(lab, 1)
    core = tuple(slice(1, -1) for _ in range(lab.ndim))
    inner = ndimage.distance_transform_edt(padded > 0, sampling=sp)[core]
    maxdist = ndimage.maximum(inner, lab, ids)
    thickness = np.maximum(2.0 * np.asarray(maxdist) - sp.min(), sp.min())
    return counts, thickness, extent


def _keep(lab, n, sp, *, min_size, crack_like, min_aspect):
    ids = np.arange(1, n + 1)
    counts, thickness, extent = _shape_measures(lab, ids, sp)
    is_crack = extent >= min_aspect * thickness
    return ids[(counts >= min_size) & (is_crack == crack_like)]


def _relabel(lab, keep):
    table = np.zeros(int(lab.max(initial=0)) + 1, dtype=np.int32)
    table[keep] = np.arange(1, keep.size + 1)
    return table[lab]


def _majority(defects, particles, ids):
    sel = defects > 0
    d = np.searchsorted(ids, defects[sel])
    p = particles[sel]
    n_p = int(particles.max(initial=0)) + 1
    counts = np.bincount(d * n_p + p, minlength=ids.size * n_p).reshape(ids.size, n_p)
    counts[:, 0] = 0  # prefer any particle over background
    return counts.argmax(axis=1)
