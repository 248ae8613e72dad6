"""The ground-truth particle (``truth`` dataset) and its presets.

Soft X-rays at the TM L edges are absorbed within ~100-200 nm of dense oxide, so
a dense 1 um particle would reach optical densities of ~10 on the white lines.
The presets therefore model a *mesoporous* secondary particle: the primary
grains' effective density is ``packing`` x the crystal density (formula units
per nm^3 in ``attrs["formula_unit_density"]``): packing 0.35 for ``small``
(~0.95 um across), 0.28 for ``demo`` (~1.2 um). This keeps the maximum optical
density over 525-880 eV (white lines included, any tilt) below 4: measured
3.3 (small, LRTMO, 643.5 eV), 2.7 (small, NCM811, 854 eV), ~3.5 (demo, LRTMO);
1.1-1.6 at the dual-energy pairs (tests/simulate/test_forward.py checks small).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..spectra import BUILTIN_STATES
from ._chemistry import COMPOSITIONS, ELEMENTS, target_tm_o
from ._grains import build_geometry
from ._truth_slabs import ChemistrySlabs

__all__ = ["PRESETS", "particle"]

#: Geometry presets; lengths in nm unless the key says voxels.
PRESETS = {
    "small": {
        "shape": (64, 64, 64), "pixel_size": 20.0, "radius_nm": 470.0, "n_grains": 40,
        "n_voids": 6, "void_radius_nm": (30.0, 70.0), "n_cracks": 4, "crack_width_nm": 30.0,
        "packing": 0.35,
    },
    # 32^3 voxels of 36 nm (same ~0.95 um particle as small) and 2 deg tilt steps
    # (66 angles, see ``sample``): for batch tests that run several whole pipelines.
    "tiny": {
        "shape": (32, 32, 32), "pixel_size": 36.0, "radius_nm": 470.0, "n_grains": 16,
        "n_voids": 3, "void_radius_nm": (40.0, 80.0), "n_cracks": 2, "crack_width_nm": 40.0,
        "packing": 0.35, "angle_step_deg": 2.0,
    },
    "demo": {
        "shape": (128, 128, 128), "pixel_size": 12.0, "radius_nm": 600.0, "n_grains": 150,
        "n_voids": 14, "void_radius_nm": (25.0, 70.0), "n_cracks": 10, "crack_width_nm": 24.0,
        "packing": 0.28,
    },
    # a beamline-sized field: 256^3 voxels of 10 nm (2.56 um), a ~2 um particle, 1 deg steps
    # (131 angles); packing 0.17 keeps the optical density near the demo's (~3.5) over the
    # longer path. For the scale benchmark (gpu_bench/scale_bench.py), not for tests.
    "large": {
        "shape": (256, 256, 256), "pixel_size": 10.0, "radius_nm": 1000.0, "n_grains": 600,
        "n_voids": 40, "void_radius_nm": (25.0, 80.0), "n_cracks": 20, "crack_width_nm": 20.0,
        "packing": 0.17,
    },
    # 512^3 voxels of 10 nm (5.12 um), a ~4 um particle: the large preset's grain, pore
    # and crack sizes at twice the size (8x the grains, pores and cracks), packing halved
    # for the doubled path (optical density near large's). For the scale table (issue
    # #19: does 512^3 fit a 2-core, 24 GiB machine), not for tests.
    "xlarge": {
        "shape": (512, 512, 512), "pixel_size": 10.0, "radius_nm": 2000.0, "n_grains": 4800,
        "n_voids": 320, "void_radius_nm": (25.0, 80.0), "n_cracks": 160, "crack_width_nm": 20.0,
        "packing": 0.085,
    },
}

_DEFAULTS = {
    "composition": "lrtmo",
    "tolerance": 0.05,
    "boundary_density": 0.85,
    "roughness": 0.12,
    "radial_gradient": 0.02,       # O loss at the surface, inside the tolerance
    "surface_layer_nm": 30.0,      # reduced, oxygen-poor skin
    "surface_o_factor": 0.88,      # TM/O +13.6 % in the skin
    "o_poor": (3, 0.90),           # (grains, O factor): TM/O +11 %
    "o_rich": (3, 1.10),           # TM/O -9 %
    "li_depletion": 0.3,
    "li_depth_nm": 100.0,
    "reduction_depth_nm": 60.0,
}


def _resolve(preset: str, overrides: dict) -> dict:
    if preset not in PRESETS:
        raise ValueError(f"particle: preset must be one of {list(PRESETS)}, got {preset!r}")
    params = {**PRESETS[preset], **_DEFAULTS}
    unknown = set(overrides) - set(params)
    if unknown:
        raise ValueError(f"particle: unknown override(s) {sorted(unknown)}; allowed {sorted(params)}")
    params.update(overrides)
    if params["composition"] not in COMPOSITIONS:
        raise ValueError(f"particle: composition must be one of {list(COMPOSITIONS)}, "
                         f"got {params['composition']!r}")
    if not params["pixel_size"] > 0:
        raise ValueError(f"particle: pixel_size must be > 0 nm, got {params['pixel_size']}")
    if not 0 < params["packing"] <= 1:
        raise ValueError(f"particle: packing must be in (0, 1], got {params['packing']}")
    return params


def particle(preset: str = "small", *, seed: int = 0, lazy: bool = False,
             **overrides) -> xr.Dataset:
    """Simulate a ground-truth secondary cathode particle.

    Parameters
    ----------
    preset : {"small", "tiny", "demo", "large", "xlarge"}
        "small": 64^3 voxels of 20 nm, particle ~0.95 um across (tests);
        "tiny": 32^3 voxels of 36 nm, the same particle size, tilt series at 2 deg
        steps (batch tests);
        "demo": 128^3 voxels of 12 nm, particle ~1.2 um across;
        "large": 256^3 voxels of 10 nm, particle ~2 um across, and "xlarge": 512^3
        voxels of 10 nm, particle ~4 um across (scale benchmarks, not tests).
    seed : int
        Seed of every random choice (deterministic output).
    lazy : bool
        The chemistry variables (``density``, ``state_fraction``, ``valence``,
        ``tm_o_ratio``, ``composition_class``) as dask arrays computed from the
        geometry slab by slab of z planes when read or written, with the same values:
        the memory of the geometry and a few slabs, not of the whole chemistry
        (the ``acquire`` step writes a large preset's truth this way).
    **overrides
        Any preset or chemistry parameter, e.g. ``composition="ncm811"``,
        ``shape=(32, 48, 48)``, ``o_poor=(0, 1.0)`` (see ``PRESETS`` and
        ``_DEFAULTS``; lengths in nm).

    Returns
    -------
    xarray.Dataset
        Variables on (z, y, x) with coords in nm: ``occupancy`` float32 solid
        fraction; ``particle``, ``void``, ``crack`` bool; ``grain`` int32;
        ``depth`` float32 nm; ``tm_o_ratio`` float32 ((Mn+Co+Ni)/O atoms, NaN
        where occupancy is 0); ``composition_class`` uint8 (0 where occupancy
        < 0.5, 1 target, 2 oxygen-poor, 3 oxygen-rich); ``density`` (element, z,
        y, x) float32 atoms/nm^3; ``state_fraction`` (state, z, y, x) float32;
        ``valence`` (element, z, y, x) float32 (fractions and valence are 0
        where occupancy is 0). Attrs: ``pixel_size`` (nm),
        ``preset``, ``seed``, ``formula``, ``composition``, ``target_tm_o``,
        ``tolerance``, ``formula_unit_density`` (1/nm^3, effective).
    """
    p = _resolve(preset, overrides)
    px = float(p["pixel_size"])
    rng = np.random.default_rng(seed)
    geom = build_geometry(
        p["shape"], radius=p["radius_nm"] / px, n_grains=int(p["n_grains"]),
        n_voids=int(p["n_voids"]), void_radius=tuple(r / px for r in p["void_radius_nm"]),
        n_cracks=int(p["n_cracks"]), crack_width=p["crack_width_nm"] / px,
        boundary_density=p["boundary_density"], roughness=p["roughness"], rng=rng)
    chem = ChemistrySlabs(p, geom, rng)
    fields = chem.lazy() if lazy else chem.slab(0, geom.depth.shape[0])
    return _assemble(p, preset, seed, geom, fields, chem)


def _assemble(p, preset, seed, geom, fields, chem) -> xr.Dataset:
    px = float(p["pixel_size"])
    comp = p["composition"]
    states = chem.states
    spatial = ("z", "y", "x")
    coords = {d: xr.DataArray(np.arange(n) * px, dims=d, attrs={"units": "nm"})
              for d, n in zip(spatial, geom.depth.shape)}
    coords["element"] = list(ELEMENTS)
    coords["state"] = states
    coords["state_element"] = ("state", [BUILTIN_STATES[s][0] for s in states])
    coords["state_valence"] = ("state", [float(BUILTIN_STATES[s][1]) for s in states])

    def var(data, units, desc, dims=spatial):
        return xr.Variable(dims, data, attrs={"units": units, "long_name": desc})

    ds = xr.Dataset(
        {
            "occupancy": var(geom.occupancy, "1", "solid volume fraction"),
            "particle": var(geom.particle, "1", "inside the particle envelope (incl. pores)"),
            "grain": var(geom.grain, "1", "primary grain label (0 outside)"),
            "void": var(geom.void, "1", "nanopore"),
            "crack": var(geom.crack, "1", "intergranular crack"),
            "depth": var(geom.depth * np.float32(px), "nm", "depth below the envelope surface"),
            "tm_o_ratio": var(fields["tm_o_ratio"], "1", "(Mn+Co+Ni)/O atom ratio"),
            "composition_class": var(fields["composition_class"], "1",
                                     "0 background, 1 target, 2 oxygen-poor, 3 oxygen-rich"),
            "density": var(fields["density"], "1/nm^3", "atoms per nm^3", ("element", *spatial)),
            "state_fraction": var(fields["state_fraction"], "1",
                                  "oxidation-state fraction of its element", ("state", *spatial)),
            "valence": var(fields["valence"], "1", "effective valence", ("element", *spatial)),
        },
        coords=coords,
        attrs={
            "pixel_size": px, "pixel_size_units": "nm", "preset": preset, "seed": int(seed),
            "composition": comp, "formula": COMPOSITIONS[comp]["formula"],
            "target_tm_o": float(target_tm_o(comp)), "tolerance": float(p["tolerance"]),
            "formula_unit_density": float(chem.fu), "formula_unit_density_units": "1/nm^3",
            "packing": float(p["packing"]), "synthetic": True,
        },
    )
    return ds
