"""The truth's chemistry (densities, state fractions, valences, TM/O ratio, classes),
whole or slab by slab of z planes.

Every chemistry value is a function of its voxel's geometry (occupancy, grain, depth,
envelope) and of three whole-particle quantities fixed up front: the particle's largest
depth and the oxygen-poor and oxygen-rich grains (random draws). So a slab of planes
gives the same values as the whole volume, bit for bit (tested), and the truth of a
large preset needs in memory its geometry (6 arrays, ~16 bytes a voxel) plus a few
slabs, not the 22 float32 chemistry fields (~90 bytes a voxel: 1.5 GiB at 256^3, 12
GiB at 512^3). :meth:`ChemistrySlabs.lazy` gives them as dask arrays that compute their
slabs when written or read.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..spectra import BUILTIN_STATES
from ._chemistry import (ELEMENTS, composition_fields, draw_domains, formula_unit_density,
                         state_fields, target_tm_o)

__all__ = ["ChemistrySlabs", "CHEMISTRY"]

#: Chemistry variables: (leading dimension or None, dtype).
CHEMISTRY = {"density": ("element", np.float32), "state_fraction": ("state", np.float32),
             "valence": ("element", np.float32), "tm_o_ratio": (None, np.float32),
             "composition_class": (None, np.uint8)}

#: Voxels per plane slab of :meth:`ChemistrySlabs.lazy` (~45 MiB of chemistry a slab):
#: the forward model reads its components slab by slab, the writer a chunk's planes
_LAZY_VOXELS = 2**19


def _classes(ratio, occupancy, target, tol):
    cls = np.zeros(ratio.shape, np.uint8)
    solid = occupancy >= 0.5
    with np.errstate(invalid="ignore"):
        cls[solid] = 1
        cls[solid & (ratio > target * (1 + tol))] = 2
        cls[solid & (ratio < target * (1 - tol))] = 3
    return cls


class ChemistrySlabs:
    """The chemistry of one particle's geometry.

    Parameters
    ----------
    params : dict
        The particle's resolved preset and chemistry parameters (``_particle``; lengths
        in nm).
    geom : Geometry
        Its whole voxel geometry (:func:`~spectrotomo.simulate._grains.build_geometry`).
    rng : numpy.random.Generator
        The particle's generator after the geometry: the domain grains are drawn here,
        once, in the order a whole-volume build draws them.
    """

    def __init__(self, params: dict, geom, rng):
        self.p, self.geom = params, geom
        self.px = float(params["pixel_size"])
        self.fu = formula_unit_density(params["composition"]) * params["packing"]
        self.domains = draw_domains(geom.n_grains, params["o_poor"], params["o_rich"], rng)
        self.dmax = max(float(geom.depth.max()), 1.0)
        self.states = list(BUILTIN_STATES)

    def slab(self, z0: int, z1: int) -> dict[str, np.ndarray]:
        """Chemistry of planes ``[z0, z1)``: ``density`` (element, dz, ny, nx) and
        ``valence`` (element, ...) float32, ``state_fraction`` (state, ...) float32,
        ``tm_o_ratio`` (dz, ny, nx) float32 (NaN where there is no solid),
        ``composition_class`` (dz, ny, nx) uint8."""
        p, px, g = self.p, self.px, self.geom.planes(z0, z1)
        density, masks = composition_fields(
            g, composition=p["composition"], fu_density=self.fu,
            radial_gradient=p["radial_gradient"], surface_layer=p["surface_layer_nm"] / px,
            surface_o_factor=p["surface_o_factor"], o_poor=p["o_poor"], o_rich=p["o_rich"],
            li_depletion=p["li_depletion"], li_depth=p["li_depth_nm"] / px,
            domains=self.domains, dmax=self.dmax)
        fractions, _ = state_fields(g, masks, composition=p["composition"],
                                    reduction_depth=p["reduction_depth_nm"] / px)
        absent = g.occupancy <= 0
        valences = np.array([BUILTIN_STATES[s][1] for s in self.states], np.float32)
        elements_of = np.array([BUILTIN_STATES[s][0] for s in self.states])
        target = target_tm_o(p["composition"])

        def ratio_and_classes():
            tm = density[1:4].sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.where(g.occupancy > 0, tm / density[4], np.nan).astype(np.float32)
            return ratio, _classes(ratio, g.occupancy, target, p["tolerance"])

        # the ratio and classes beside the valences (numpy, without the GIL)
        with ThreadPoolExecutor(1) as pool:
            side = pool.submit(ratio_and_classes)
            fractions[:, absent] = 0.0  # no atoms: no oxidation state
            valence = np.ones_like(density)  # Li is +1
            for i, el in enumerate(ELEMENTS[1:], start=1):  # four elements
                sel = elements_of == el
                valence[i] = np.tensordot(valences[sel], fractions[sel], axes=1)
            valence[:, absent] = 0.0
            ratio, classes = side.result()
        return {"density": density, "state_fraction": fractions, "valence": valence,
                "tm_o_ratio": ratio, "composition_class": classes}

    def lazy(self) -> dict:
        """Every chemistry variable as a dask array (z, y, x last), chunked by slabs of
        about ``_LAZY_VOXELS`` voxels: one task a slab computes all of them
        (:meth:`slab`), so a slab read or written is computed once per compute call."""
        import dask
        import dask.array as da

        nz, ny, nx = self.geom.depth.shape
        step = max(1, _LAZY_VOXELS // (ny * nx))
        lead = {"element": len(ELEMENTS), "state": len(self.states)}
        token = uuid.uuid4().hex  # explicit keys: tokenizing would hash the geometry
        slab = dask.delayed(self.slab, name=f"truth-slab-fn-{token}", pure=True)
        pieces = {name: [] for name in CHEMISTRY}
        for z0 in range(0, nz, step):  # a few dozen slabs: the graph, not a voxel loop
            z1 = min(nz, z0 + step)
            task = slab(z0, z1, dask_key_name=f"truth-slab-{token}-{z0}")
            for name, (dim, dtype) in CHEMISTRY.items():
                shape = ((lead[dim],) if dim else ()) + (z1 - z0, ny, nx)
                pieces[name].append(da.from_delayed(task[name], shape, dtype))
        return {name: da.concatenate(parts, axis=1 if CHEMISTRY[name][0] else 0)
                for name, parts in pieces.items()}
