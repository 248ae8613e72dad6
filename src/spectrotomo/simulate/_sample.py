"""A complete simulated sample: truth, dual-energy tilt series, 2D XANES scan, references."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import xarray as xr

from ..spectra import EDGES, builtin_references, cross_section
from ._forward import tilt_series
from ._instrument import MILD_IMPERFECTIONS, SCAN_CALIBRATION, Calibration, Imperfections
from ._particle import PRESETS, particle

__all__ = ["sample", "dual_energies", "XANES_ENERGIES"]

#: 25 energies across the Mn L3/L2 edges (eV), dense over the L3 white lines.
XANES_ENERGIES = np.concatenate([[635.0, 636.5, 638.0], np.arange(639.0, 646.01, 0.5),
                                 [647.0, 649.0, 651.0, 655.0, 658.0, 661.0, 665.0]])


def dual_energies(elements=("O", "Mn", "Co", "Ni")) -> np.ndarray:
    """Sorted below/above pairs of ``elements`` (eV)."""
    return np.sort([EDGES[e][k] for e in elements for k in ("below", "above")])


def _first_calls() -> None:
    """Costs paid once per process, in Python (holding the GIL) on the path of a cold
    run: xraydb's first query (opens its tables, ~0.1 CPU s) and xarray's first
    DataArray with an index (imports dask.array and pint, ~0.3 CPU s). :func:`sample`
    runs them while the particle is built (numpy, mostly without the GIL)."""
    cross_section("Li", XANES_ENERGIES[:1])
    xr.DataArray(np.zeros(1), dims="x", coords={"x": [0.0]})


def sample(preset: str = "small", *, seed: int = 0,
           imperfections: Imperfections = MILD_IMPERFECTIONS,
           calibration: Calibration = SCAN_CALIBRATION, pixel_size_metadata: bool = False,
           on_truth=None, lazy_truth: bool = False, **overrides) -> xr.DataTree:
    """Simulate a whole measurement of one particle.

    Parameters
    ----------
    preset : {"small", "tiny", "demo", "large", "xlarge"}
        Particle preset (see :func:`particle`).
    seed : int
        Seed of the particle; the tilt series use ``seed + 1`` and ``seed + 2``.
    imperfections : Imperfections
        Of the 3D tilt series (default :data:`MILD_IMPERFECTIONS`: jitter,
        centre offset, energy shifts, magnification, rings;
        ``Imperfections()`` for a perfect instrument); the XANES scan gets
        the energy shifts and magnification only.
    calibration : Calibration
        Energy offset and broadening of both series' spectra relative to the
        builtin references (default ``SCAN_CALIBRATION``: +0.3 eV, 0.2 eV;
        ``Calibration()`` for the references' exact spectra: an inverse crime).
    pixel_size_metadata : bool
        Both series record the true per-energy pixel size
        (``pixel_size_energy``, see :func:`tilt_series`; off by default).
    on_truth : callable, optional
        Called with the truth dataset as soon as it is simulated, before the
        series (e.g. to write it while they are simulated); it runs in a thread
        beside them and its errors are raised here.
    lazy_truth : bool
        The truth's chemistry as dask arrays computed slab by slab
        (``particle(lazy=True)``): the series project it slab by slab and
        ``on_truth`` writes it chunk by chunk, so the whole chemistry (~90 bytes a
        voxel) is never in memory; the same values.
    **overrides
        Passed to :func:`particle` (e.g. ``composition="ncm811"``).

    Returns
    -------
    xarray.DataTree
        Children ``truth`` (particle), ``tilt_series`` (O, Mn, Co, Ni
        below/above pairs, -65..+65 deg in 1 deg steps, 2 deg for "tiny"), ``xanes`` (Mn L scan
        at 25 energies, one angle 0 deg) and ``references`` (``spectra`` from
        :func:`spectrotomo.spectra.builtin_references`, absolute cross sections).
    """
    from concurrent.futures import ThreadPoolExecutor

    step = float(PRESETS[preset].get("angle_step_deg", 1.0))
    angles = np.arange(-65.0, 65.0 + step / 2, step)
    meta = {"pixel_size_metadata": bool(pixel_size_metadata), "calibration": calibration}
    # one angle: no jitter, rotation centre or rings to speak of
    xanes_imp = replace(imperfections, jitter_px=0.0, center_offset_px=0.0, ring_strength=0.0)
    # the XANES scan (and on_truth) beside the dual-energy series: each has its own seed,
    # so the counts are those of one after the other; the series' serial parts (cross
    # sections, the projection matrix, component volumes) then overlap
    with ThreadPoolExecutor(2, thread_name_prefix="spectrotomo-simulate") as pool:
        warm = pool.submit(_first_calls)  # beside the particle, not on its serial path
        truth = particle(preset, seed=seed, lazy=lazy_truth, **overrides)
        warm.result()
        written = pool.submit(on_truth, truth) if on_truth is not None else None
        xanes = pool.submit(tilt_series, truth, energies=XANES_ENERGIES, angles=[0.0],
                            seed=seed + 2, imperfections=xanes_imp, **meta)
        if lazy_truth and written is not None:
            # a lazy truth's writer holds a chunk row of slabs (~0.6 GiB at 256^3) and
            # the dual-energy series its stack and matrix (~0.8 GiB): one after the
            # other, each beside the small XANES series, not all at once
            written.result()
        ts = tilt_series(truth, energies=dual_energies(), angles=angles, seed=seed + 1,
                         imperfections=imperfections, **meta)
        xanes = xanes.result()
        if written is not None:
            written.result()
    refs = xr.Dataset({"spectra": builtin_references(normalized=False)}, attrs={"synthetic": True})
    tree = xr.DataTree.from_dict({"truth": truth, "tilt_series": ts, "xanes": xanes, "references": refs})
    tree.attrs.update({"preset": preset, "seed": int(seed), "synthetic": True,
                       "imperfect": imperfections != Imperfections(),
                       "pixel_size_metadata": bool(pixel_size_metadata)})
    return tree
