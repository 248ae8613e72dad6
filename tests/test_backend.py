"""spectrotomo._backend: host thread helpers."""

import numpy as np
from threadpoolctl import threadpool_info

from spectrotomo._backend import blas_single_thread


def _blas_threads():
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_blas_single_thread_limits_blas_inside_and_restores_after():
    a = np.ones((64, 64))
    before = _blas_threads()
    assert before  # numpy's BLAS is loaded and seen
    with blas_single_thread():
        assert _blas_threads() == [1] * len(before)
        product = a @ a
    assert _blas_threads() == before
    np.testing.assert_array_equal(product, a @ a)
