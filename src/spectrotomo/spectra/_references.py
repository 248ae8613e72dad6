"""Reference spectra: load, normalize_edge_step, calibrate, resample.

References are ``xarray.DataArray`` objects with dims ``(state, energy)``:
energy in eV (``coords["energy"].attrs["units"] == "eV"``), one row per
reference state; optional non-dim coords ``state_element`` (str) and
``state_valence`` (float) feed :func:`spectrotomo.spectra.valence_maps`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from .._model import ValidationError

__all__ = ["references", "load_references", "load_athena", "normalize_edge_step", "shift_energy",
           "resample"]

_COMMENT = ("#", "%", "!", ";")
_SPLIT = re.compile(r"[,\s;]+")


def references(values, energies, *, names, elements=None, valences=None, units="1",
               attrs=None) -> xr.DataArray:
    """Build a reference DataArray.

    Parameters
    ----------
    values : array, shape (k, n_energies)
    energies : array, shape (n_energies,), eV, strictly increasing
    names : sequence of str, length k
    elements : sequence of str, optional (e.g. ``["Mn", "Mn", "Mn"]``)
    valences : sequence of float, optional (e.g. ``[2, 3, 4]``)
    units : str
        Unit of the values (``"1"`` normalized, ``"nm^2"`` cross section...).
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    energies = np.asarray(energies, dtype=np.float64)
    if values.shape != (len(names), energies.size):
        raise ValidationError(f"references: values must have shape ({len(names)}, "
                              f"{energies.size}) (names x energies); got {values.shape}")
    if energies.size > 1 and not np.all(np.diff(energies) > 0):
        raise ValidationError("references: energies must be strictly increasing (eV)")
    coords = {"state": list(names),
              "energy": xr.DataArray(energies, dims="energy", attrs={"units": "eV"})}
    if elements is not None:
        coords["state_element"] = ("state", [str(e) for e in elements])
    if valences is not None:
        coords["state_valence"] = ("state", np.asarray(valences, dtype=float))
    return xr.DataArray(values, dims=("state", "energy"), coords=coords, name="references",
                        attrs={"units": units, **dict(attrs or {})})


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def load_references(path, *, energy_column: int = 0, names=None, elements=None,
                    valences=None, energy_units: str = "eV") -> xr.DataArray:
    """Load references from a plain-text/CSV table (energy + one column each).

    Comment lines start with ``#``, ``%``, ``!`` or ``;``. The last non-numeric
    line before the data (commented or not) is taken as the header and gives
    the column names unless ``names`` is given. Delimiters: comma, semicolon,
    tab or spaces. Values are parsed with ``float`` only (never evaluated).

    Parameters
    ----------
    path : str or Path
    energy_column : int
        Column holding the energy.
    names, elements, valences : sequence, optional
        Per reference column (see :func:`references`).
    energy_units : {"eV", "keV"}

    Returns
    -------
    xarray.DataArray, dims (state, energy)
        Sorted by energy, unnormalized (see :func:`normalize_edge_step`).
    """
    header, rows = None, []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        text = line.strip()
        if not text:
            continue
        stripped = text.lstrip("".join(_COMMENT)).strip()
        tokens = [t for t in _SPLIT.split(stripped) if t]
        if text.startswith(_COMMENT) or not all(_is_number(t) for t in tokens):
            if rows:
                raise ValidationError(f"load_references: {path}:{lineno}: non-numeric line "
                                      f"inside the data: {text[:60]!r}")
            header = tokens or header
            continue
        rows.append([float(t) for t in tokens])
    if not rows:
        raise ValidationError(f"load_references: {path}: no numeric rows found")
    widths = {len(r) for r in rows}
    if len(widths) != 1 or widths.pop() < 2:
        raise ValidationError(f"load_references: {path}: rows must all have the same number "
                              f"(>= 2) of columns; got {sorted({len(r) for r in rows})}")
    table = np.array(rows)
    energy = table[:, energy_column] * {"eV": 1.0, "keV": 1e3}[energy_units]
    values = np.delete(table, energy_column, axis=1).T
    if names is None:
        if header is not None and len(header) == table.shape[1]:
            names = [h for i, h in enumerate(header) if i != energy_column]
        else:
            names = [f"ref{i}" for i in range(values.shape[0])]
    order = np.argsort(energy, kind="stable")
    if np.unique(energy).size != energy.size:
        raise ValidationError(f"load_references: {path}: duplicate energies")
    return references(values[:, order], energy[order], names=names, elements=elements,
                      valences=valences, attrs={"source": str(path)})


def load_athena(path, *, groups=None, elements=None, valences=None) -> xr.DataArray:
    """Load references from an Athena project file (needs xraylarch).

    Each group's ``energy`` (eV) and ``mu`` are read and linearly resampled
    onto the first group's grid (restricted to the range all groups cover).
    """
    try:
        from larch.io import read_athena
    except ImportError as exc:  # optional dependency
        raise ImportError("load_athena needs xraylarch: pip install xraylarch") from exc
    project = read_athena(str(path), do_preedge=False, do_bkg=False, do_fft=False)
    members = getattr(project, "groups", None)
    if not isinstance(members, dict):  # older larch: groups are attributes
        members = {g: getattr(project, g) for g in dir(project) if not g.startswith("_")}
    members = {lab: g for lab, g in members.items() if hasattr(g, "energy") and hasattr(g, "mu")}
    labels = list(groups) if groups is not None else list(members)
    missing = [lab for lab in labels if lab not in members]
    if missing or not labels:
        raise ValidationError(f"load_athena: {path}: groups {missing or labels} not found; "
                              f"available: {list(members)}")
    spectra = [(str(lab), np.asarray(members[lab].energy, float),
                np.asarray(members[lab].mu, float)) for lab in labels]
    lo = max(e.min() for _, e, _ in spectra)
    hi = min(e.max() for _, e, _ in spectra)
    grid = spectra[0][1][(spectra[0][1] >= lo) & (spectra[0][1] <= hi)]
    values = [np.interp(grid, e, m) for _, e, m in spectra]
    return references(values, grid, names=[s[0] for s in spectra], elements=elements,
                      valences=valences, attrs={"source": str(path)})


def _line_fit_matrix(e: np.ndarray, order: int) -> np.ndarray:
    """Pseudo-inverse (order+1, len(e)) of a polynomial fit in energy."""
    return np.linalg.pinv(np.vander(e, order + 1))


def normalize_edge_step(refs, *, e0=None, pre=(-np.inf, -5.0), post=(10.0, np.inf), post_order=0):
    """Edge-step normalization: subtract the pre-edge line, divide by the step.

    Works on a reference DataArray (state, energy) or on any DataArray with an
    ``energy`` dim (all spectra at once: the fits are matrix products).

    Parameters
    ----------
    refs : xarray.DataArray with dim ``energy`` (eV)
    e0 : float, optional
        Edge energy in eV; default the energy of the steepest rise of the
        mean spectrum.
    pre, post : (float, float)
        Fit windows in eV relative to ``e0``; the pre-edge is a line, the
        post-edge (after subtracting the pre-edge line) a polynomial of
        ``post_order`` (0 = constant); the step is its value at ``e0``.

    Returns
    -------
    xarray.DataArray
        Same dims; pre-edge 0, step at ``e0`` equal to 1; ``attrs["e0"]``.
    """
    e = np.asarray(refs["energy"].values, dtype=float)
    data = refs.transpose(..., "energy")
    values = np.asarray(data.values, dtype=float)
    if e0 is None:
        mean = values.reshape(-1, e.size).mean(axis=0)
        e0 = float(e[np.argmax(np.gradient(mean, e))])
    pre_sel = (e >= e0 + pre[0]) & (e <= e0 + pre[1])
    post_sel = (e >= e0 + post[0]) & (e <= e0 + post[1])
    if pre_sel.sum() < 2 or post_sel.sum() < post_order + 1:
        raise ValidationError(
            f"normalize: need >= 2 pre-edge and >= {post_order + 1} post-edge energies around "
            f"e0={e0:.2f} eV (pre={pre}, post={post} relative); got {int(pre_sel.sum())} and "
            f"{int(post_sel.sum())}")
    pre_coef = values[..., pre_sel] @ _line_fit_matrix(e[pre_sel], 1).T  # (..., 2)
    pre_line = pre_coef[..., :1] * e + pre_coef[..., 1:]
    # the post-edge is fitted after removing the pre-edge line, so a sloped
    # background is not mistaken for a step change over a short window
    post_coef = (values - pre_line)[..., post_sel] @ _line_fit_matrix(e[post_sel], post_order).T
    step = post_coef @ (e0 ** np.arange(post_order, -1, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = (values - pre_line) / step[..., None]
    out = data.copy(data=norm)
    out.attrs.update({"units": "1", "e0": e0, "normalized": True})
    return out.transpose(*refs.dims)


def shift_energy(refs: xr.DataArray, shift_ev: float) -> xr.DataArray:
    """Energy calibration: ``E_true = E_file + shift_ev`` (eV)."""
    out = refs.assign_coords(energy=refs["energy"] + float(shift_ev))
    out["energy"].attrs["units"] = "eV"
    out.attrs["energy_shift_ev"] = float(refs.attrs.get("energy_shift_ev", 0.0)) + float(shift_ev)
    return out


def resample(refs: xr.DataArray, energies, *, tolerance_ev: float = 1e-6) -> xr.DataArray:
    """Linearly interpolate references onto the measured energies (eV).

    Raises
    ------
    ValidationError
        When the measured energies are not inside the references' range.
    """
    target = np.asarray(getattr(energies, "values", energies), dtype=float)
    e = np.asarray(refs["energy"].values, dtype=float)
    lo, hi = e.min() - tolerance_ev, e.max() + tolerance_ev
    outside = (target < lo) | (target > hi)
    if outside.any():
        raise ValidationError(
            f"resample: measured energies {target[outside][:5].tolist()} eV lie outside the "
            f"references' range [{e.min():.2f}, {e.max():.2f}] eV; the grids must overlap")
    target_c = np.clip(target, e.min(), e.max())
    # one set of interpolation weights for every reference row
    hi_idx = np.clip(np.searchsorted(e, target_c), 1, e.size - 1)
    w = (target_c - e[hi_idx - 1]) / (e[hi_idx] - e[hi_idx - 1])
    data = refs.transpose(..., "energy")
    v = np.asarray(data.values, dtype=float)
    new = v[..., hi_idx - 1] * (1 - w) + v[..., hi_idx] * w
    coords = {c: refs[c] for c in refs.coords if "energy" not in refs[c].dims}
    coords["energy"] = xr.DataArray(target, dims="energy", attrs={"units": "eV"})
    out = xr.DataArray(new, dims=data.dims, coords=coords, name=refs.name, attrs=dict(refs.attrs))
    return out.transpose(*refs.dims)
