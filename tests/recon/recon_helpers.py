import numpy as np
import pytest


def astra_fbp(sino, angles_deg, *, filter_type="ram-lak", algorithm="FBP", iterations=1,
              options=None):
    """ASTRA 2D CPU FBP (linear projector) in spectrotomo's geometry.

    ASTRA's volume y axis points up (row 0 is the top), so our angle theta is
    ASTRA's -theta (radians); its detector centre is (n - 1) / 2 like ours.
    """
    astra = pytest.importorskip("astra")
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


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))
