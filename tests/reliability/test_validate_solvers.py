"""Iterative solvers: ``iterations`` must be an integer >= 1, counts above
ITERATION_LIMIT need a ``max_seconds`` cap (so ``iterations=10**9`` cannot hang
silently), a capped solve warns with the iterations done, and ``progress`` hears
every iteration."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from spectrotomo import ValidationError
from spectrotomo.recon import ITERATION_LIMIT, SolverStoppedWarning, project, reconstruct

ANGLES = np.linspace(0.0, 180.0, 24, endpoint=False)


@pytest.fixture(scope="module")
def sino():
    vol = np.zeros((2, 16, 16), np.float32)
    vol[:, 5:11, 4:12] = 1.0
    return project(vol, ANGLES)


@pytest.mark.parametrize("algorithm", ["sirt", "cgls", "tv"])
@pytest.mark.parametrize("iterations, match", [
    (0, r"'iterations' must be an integer >= 1; got 0"),
    (-5, r"'iterations' must be an integer >= 1; got -5"),
    (2.5, r"'iterations' must be an integer >= 1; got 2\.5 \(float\)"),
    (True, r"got True \(bool\)"),
    ("10", r"got '10' \(str\)"),
    (10**9, rf"'iterations' = 1000000000 is above ITERATION_LIMIT \({ITERATION_LIMIT}\); pass "
            r"max_seconds="),
])
def test_bad_iterations_refused(sino, algorithm, iterations, match):
    with pytest.raises(ValidationError, match=match):
        reconstruct(sino, ANGLES, algorithm=algorithm, iterations=iterations)


@pytest.mark.parametrize("max_seconds", [0, -1.0, math.nan, "5", True])
def test_bad_max_seconds_refused(sino, max_seconds):
    with pytest.raises(ValidationError, match=r"'max_seconds' must be a positive number of "
                                              r"seconds"):
        reconstruct(sino, ANGLES, algorithm="sirt", iterations=5, max_seconds=max_seconds)


def test_numpy_integer_iterations_accepted(sino):
    a = reconstruct(sino, ANGLES, algorithm="sirt", iterations=np.int64(3))
    b = reconstruct(sino, ANGLES, algorithm="sirt", iterations=3)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("algorithm", ["sirt", "cgls", "tv"])
def test_huge_iterations_stop_at_the_time_cap_with_a_warning(sino, algorithm):
    seen = []
    with pytest.warns(SolverStoppedWarning, match=rf"{algorithm}: stopped after \d+ of "
                                                  r"1000000000 iterations: max_seconds = 0\.2"):
        vol = reconstruct(sino, ANGLES, algorithm=algorithm, iterations=10**9, max_seconds=0.2,
                          progress=lambda done, n, t: seen.append((done, n, t)))
    assert vol.shape == (2, 16, 16) and np.isfinite(vol).all()
    done = [d for d, _, _ in seen]
    assert done == list(range(1, len(done) + 1)) and 1 <= len(done) < 10**9
    assert seen[-1][2] >= 0.2 and all(n == 10**9 for _, n, _ in seen)


def test_progress_hears_every_iteration_and_a_complete_solve_does_not_warn(sino):
    seen = []
    capped = reconstruct(sino, ANGLES, algorithm="sirt", iterations=4, max_seconds=3600.0,
                         progress=lambda done, n, t: seen.append(done))
    assert seen == [1, 2, 3, 4]
    np.testing.assert_array_equal(capped, reconstruct(sino, ANGLES, algorithm="sirt",
                                                      iterations=4))


def test_dask_input_refused_before_a_graph_is_built(sino):
    da = pytest.importorskip("dask.array")
    lazy = da.from_array(sino, chunks=(-1, 1, -1))
    with pytest.raises(ValidationError, match=r"'iterations' must be an integer >= 1; got 0"):
        reconstruct(lazy, ANGLES, algorithm="sirt", iterations=0)


@pytest.mark.parametrize("algorithm", ["sirt", "cgls", "tv"])
def test_warn_on_stop_false_stops_at_the_cap_without_a_warning(sino, algorithm):
    """For callers that report the stop themselves (the pipeline's threaded chunks):
    the warnings filters are process-wide, so they are not toggled per thread."""
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reconstruct(sino, ANGLES, algorithm=algorithm, iterations=10**9, max_seconds=0.05,
                    progress=lambda done, n, t: seen.append(done), warn_on_stop=False)
    assert 1 <= len(seen) < 10**9
