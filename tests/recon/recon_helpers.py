"""Shared helpers of the recon tests; :func:`astra_2d` is the one ASTRA peer of the
tests and of ``gpu_bench/limited_angle_bench.py`` (which imports this file: the
peer lives with the tests, which CI runs, and needs nothing but astra)."""

import numpy as np


def astra_2d(sino, angles_deg, *, filter_type="ram-lak", algorithm="FBP", iterations=1,
             options=None):
    """ASTRA 2D CPU reconstruction (linear projector) in spectrotomo's geometry.

    ``sino`` (n_angles, n_cols), angles in degrees; ``algorithm`` any ASTRA 2-D CPU
    algorithm ("FBP", "SIRT", ...), ``options`` its options (e.g. ``{"MinConstraint":
    0.0}``; FBP gets ``FilterType``). Returns (n_cols, n_cols) float32.
    ASTRA's volume y axis points up (row 0 is the top), so our angle theta is
    ASTRA's -theta (radians); its detector centre is (n - 1) / 2 like ours.
    """
    import astra

    n = sino.shape[1]
    vg = astra.create_vol_geom(n, n)
    pg = astra.create_proj_geom("parallel", 1.0, n, -np.deg2rad(angles_deg))
    pid = astra.create_projector("linear", pg, vg)
    sid = astra.data2d.create("-sino", pg, np.asarray(sino, dtype=np.float32))
    rid = astra.data2d.create("-vol", vg, 0)
    cfg = astra.astra_dict(algorithm)
    cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid,
               option=({"FilterType": filter_type} if algorithm == "FBP" else {}) | dict(options or {}))
    aid = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(aid, iterations)
        return astra.data2d.get(rid)
    finally:
        astra.algorithm.delete(aid)
        astra.data2d.delete([sid, rid])
        astra.projector.delete(pid)


def astra_fbp(sino, angles_deg, **kwargs):
    """:func:`astra_2d` in a test: skipped where astra is not installed."""
    import pytest

    pytest.importorskip("astra")
    return astra_2d(sino, angles_deg, **kwargs)


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))
