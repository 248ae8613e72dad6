"""The batched exact solver's two paths for spectra outside the feasible set
(primal-dual active set, then support enumeration) agree with each other and
with scipy, including spectra that need the enumeration fallback."""

import numpy as np
import pytest
from scipy.optimize import nnls

from spectrotomo.spectra._nnls_batch import _active_set, _all_free, _enumerate, make_plan, solve_block


def _problem(rng, k, n, m):
    refs = rng.normal(size=(k, n)) + rng.random((k, n))
    spectra = rng.normal(size=(m, n)) + rng.random((m, k)) @ refs
    return refs, spectra, np.ascontiguousarray(refs @ spectra.T)


@pytest.mark.parametrize("sum_to_one", [False, True])
@pytest.mark.parametrize("k", [2, 4, 6])
def test_active_set_and_enumeration_agree(rng, k, sum_to_one):
    refs, spectra, bt = _problem(rng, k, 3 * k + 5, 1000)
    plan = make_plan(refs @ refs.T, nonneg=True, sum_to_one=sum_to_one)
    free, _ = _all_free(bt, plan, np)
    outside = np.flatnonzero(free.min(axis=0) < 0)
    assert outside.size >= 10  # the test exercises the constrained paths
    f_as, o_as, done = _active_set(bt[:, outside], free[:, outside], plan, np)
    f_en, o_en = _enumerate(bt[:, outside], plan, np)
    assert done.mean() > 0.5
    scale = 1 + np.abs(f_en).max()
    assert np.abs(f_as[:, done] - f_en[:, done]).max() < 1e-9 * scale
    assert np.allclose(o_as[done], o_en[done], rtol=1e-10, atol=1e-9)
    assert np.all(f_en >= 0) and np.all(f_as[:, done] >= 0)
    if not sum_to_one:
        x = np.array([nnls(refs.T, spectra[i])[0] for i in outside]).T
        assert np.abs(f_en - x).max() < 1e-9 * scale


def test_enumeration_fallback_when_active_set_stops_early(rng, monkeypatch):
    """With zero active-set iterations every outside spectrum is enumerated:
    the full solver still equals scipy."""
    import spectrotomo.spectra._nnls_batch as nb

    refs, spectra, bt = _problem(rng, 5, 20, 600)
    plan = make_plan(refs @ refs.T, nonneg=True, sum_to_one=False)
    f_default, _ = solve_block(bt.copy(), plan, np)
    real = nb._active_set
    monkeypatch.setattr(nb, "_active_set", lambda *a, **kw: real(*a, iterations=0))
    f_enum, _ = solve_block(bt.copy(), plan, np)
    x = np.array([nnls(refs.T, s)[0] for s in spectra]).T
    assert np.abs(f_enum - x).max() < 1e-9 * (1 + np.abs(x).max())
    assert np.abs(f_default - x).max() < 1e-9 * (1 + np.abs(x).max())
