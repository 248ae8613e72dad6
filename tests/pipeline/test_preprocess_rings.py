"""The pipeline's default stripe removal keeps the particle's edge jumps.

Stripes are removed per energy before the energies are registered, so each energy's
particle sits at its own sub-pixel position on the detector. The former default
("sorting": a 21-column median of the angle-sorted sinogram) reshaped the particle's
edges depending on that position: noise-free, it moved the O-edge jump by ~40 % of its
peak at the surface, and on ``simulate:small`` energy shifts with a centre offset cost
10.5 pp of class fractions (2.3 pp with "offset"; gpu_bench/RESULTS.md, 2026-12-01).
"""

import numpy as np
import pytest

from spectrotomo.pipeline import Config
from spectrotomo.pipeline._steps import _normalise_all
from spectrotomo.simulate import particle, tilt_series

TINY = dict(shape=(32, 40, 40), radius_nm=240.0, n_grains=8, n_voids=2, n_cracks=1)
O_PAIR = [525.0, 555.0]


@pytest.fixture(scope="module")
def truth():
    return particle("small", seed=2, **TINY)


def _series(truth, ring_strength=0.0):
    return tilt_series(truth, energies=O_PAIR, angles=np.arange(-65, 65.1, 2.0), photons=None,
                       energy_shift_px=0.5, center_offset_px=0.7, ring_strength=ring_strength,
                       seed=1)


def _jump_error(ts, rings):
    cfg = Config()
    if rings is not None:
        cfg.preprocess.rings = rings
    od = _normalise_all(ts, cfg)[0].astype(float)
    true = ts["true_od"].values.astype(float)
    jump, true_jump = od[1] - od[0], true[1] - true[0]
    return np.abs(jump - true_jump).max() / np.abs(true_jump).max()


def test_default_stripe_removal_keeps_the_edge_jumps(truth):
    ts = _series(truth)
    default, sorting = _jump_error(ts, None), _jump_error(ts, "sorting")
    assert Config().preprocess.rings == "offset"
    assert default < 0.15 < 0.3 < sorting, (default, sorting)


def test_default_stripe_removal_still_removes_the_stripes(truth):
    # an empty field: every angle-constant residual is a stripe (1 % gain errors);
    # "offset" removes the column-to-column part (~40 % of the RMS), "none" nothing
    empty = truth.copy(deep=True)
    empty["density"][:] = 0.0
    ts = _series(empty, ring_strength=0.01)
    true = ts["true_od"].values.astype(float)
    cfg = Config()
    left = (_normalise_all(ts, cfg)[0] - true).mean(axis=1)
    cfg.preprocess.rings = "none"
    stripes = (_normalise_all(ts, cfg)[0] - true).mean(axis=1)
    assert np.sqrt((left ** 2).mean()) < 0.7 * np.sqrt((stripes ** 2).mean())
