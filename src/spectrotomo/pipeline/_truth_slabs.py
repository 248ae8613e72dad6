"""The simulator's truth read slab by slab along z and moved into the reconstruction's
frame, one variable at a time, for the report's errors against it
(:mod:`~spectrotomo.pipeline._truth_errors`).

Memory: the errors hold one slab of the variables they compare together (the particle,
its occupancy, depth, pores, cracks and classes: ~12 B per voxel, read and shifted)
and each element's density or valence one after the other (~28 B per voxel while it
is shifted: its planes, the float64 blend and the result); all of them read at once,
with their shifted copies, took ~0.3 GiB a slab of 2^21 voxels, about as much as
the figures drawn beside them.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._truth_frame import truth_in_frame

__all__ = ["TruthSlabs", "source_planes"]


def source_planes(z0: int, z1: int, dz: float, nz: int) -> tuple[int, int]:
    """The planes ``lo:hi`` that the shift by ``dz`` of planes ``z0:z1`` reads: output
    plane k blends source planes floor(k - dz) and the next, clipped to the volume
    (z_blend repeats the edge planes, as a part that starts there does): one plane
    below the slab for 0 < dz < 1, one above for -1 < dz < 0."""
    lo = max(0, int(np.floor(z0 - dz)))
    hi = min(nz, int(np.floor(z1 - 1 - dz)) + 2)
    return min(lo, z0), max(hi, z1)  # the slab's own planes always (a shift > a slab)


def _specs(names: dict) -> dict[str, tuple[str, str | None]]:
    """``{key: (variable, element or None)}`` of ``names`` (variable -> None or a list
    of elements; an element's key is ``<variable>_<element>``)."""
    return {(name if el is None else f"{name}_{el}"): (name, el)
            for name, elements in names.items() for el in (elements or [None])}


def _values(truth: xr.Dataset, name: str, el: str | None, z0: int, z1: int) -> np.ndarray:
    """Planes ``z0:z1`` of a (z, y, x) variable, or of one element of an (element, z, y,
    x) one (a range read: a list of elements goes through orthogonal indexing, 2.5x
    the CPU)."""
    var = truth[name]
    if el is not None:
        var = var.isel(element=list(var["element"].values).index(el))
    return np.asarray(var.isel(z=slice(z0, z1)).values)


class TruthSlabs:
    """The truth's z slabs in the reconstruction's frame (shifted by ``dz`` voxels along
    z, :func:`~spectrotomo.pipeline._truth_frame.truth_in_frame`).

    Iterating gives each slab's ``(z0, z1)`` (upwards for dz >= 0, downwards for dz <
    0); :meth:`read` then gives variables of it, each read once per slab. Every truth
    plane is read once: the planes a slab's shift reads beyond it are carried over from
    the slab before, per variable. A store chunk of the truth spans several slabs (64
    planes at 256^3, slabs of 16) and is decoded once per slab that reads it; reading
    those planes afresh decoded the chunk beyond too.

    Parameters
    ----------
    truth : xarray.Dataset
        The store's ``truth`` group, lazily indexed (``read_group(..., chunks=None)``).
    dz : float or None
        The frame's shift along z, voxels (None or 0: the truth's own frame).
    slabs : list of (int, int)
        The slabs' planes ``z0:z1``, in order, covering the volume.
    """

    def __init__(self, truth: xr.Dataset, dz: float | None, slabs: list[tuple[int, int]]):
        nz = truth.sizes["z"]
        self.truth, self.dz = truth, float(dz or 0.0)
        order = slabs[::-1] if self.dz < 0 else slabs
        self._slabs = [(z0, z1, *(source_planes(z0, z1, self.dz, nz) if self.dz
                                  else (z0, z1))) for z0, z1 in order]
        self._held: dict[str, tuple[int, int, np.ndarray]] = {}  # planes the next slab reads
        self._k = -1

    def __iter__(self):
        for k, (z0, z1, _, _) in enumerate(self._slabs):
            self._k = k
            yield z0, z1

    def read(self, names: dict, *, shifted: bool = True, unshifted: bool = False):
        """Variables ``names`` (variable -> None, or a list of elements: each the (z, y,
        x) variable ``<variable>_<element>``; those not in the truth left out) of the
        current slab, read once: ``(frame, own)``, the planes ``z0:z1`` shifted into the
        frame (None unless ``shifted``) and as stored (None unless ``unshifted``), as
        Datasets with the truth's attrs. Read each variable once per slab (its carried
        planes go to the first read)."""
        z0, z1, lo, hi = self._slabs[self._k]
        part = self._planes(names, lo, hi)
        inside = slice(z0 - lo, z1 - lo)
        own = None
        if unshifted:  # a copy when shifted: the planes read go
            own = part.isel(z=inside).copy(deep=bool(self.dz))
        frame = None
        if shifted:
            frame = (truth_in_frame(part, self.dz, variables=list(part.data_vars)).isel(
                z=inside) if self.dz else part.isel(z=inside))
        return frame, own

    def _planes(self, names: dict, lo: int, hi: int) -> xr.Dataset:
        """Planes ``lo:hi`` of ``names``, those carried over taken, the ones the next slab
        reads kept (copies: the rest of the planes goes with the caller)."""
        after = self._slabs[self._k + 1] if self._k + 1 < len(self._slabs) else None
        out = {}
        for key, (name, el) in _specs(names).items():
            if name not in self.truth:
                continue
            values = self._carried(key, name, el, lo, hi)
            self._held.pop(key, None)
            if after is not None:
                a, b = max(lo, after[2]), min(hi, after[3])
                if a < b:
                    self._held[key] = (a, b, values[a - lo:b - lo].copy())
            out[key] = (("z", "y", "x"), values)
        return xr.Dataset(out, attrs=self.truth.attrs)

    def _carried(self, key: str, name: str, el: str | None, lo: int, hi: int) -> np.ndarray:
        """Planes ``lo:hi`` of one variable: those held from the slab before, the others
        read."""
        if key in self._held:
            plo, phi, kept = self._held[key]
            a, b = max(lo, plo), min(hi, phi)
            if a < b and (a == lo or b == hi):  # the planes not held lie on one side
                kept = kept[a - plo:b - plo]
                if (a, b) == (lo, hi):
                    return kept
                if a == lo:
                    return np.concatenate([kept, _values(self.truth, name, el, b, hi)])
                return np.concatenate([_values(self.truth, name, el, lo, a), kept])
        return _values(self.truth, name, el, lo, hi)
