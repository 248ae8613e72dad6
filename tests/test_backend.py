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


def test_concurrent_blas_single_thread_blocks_keep_the_limit_until_the_last_leaves():
    import threading

    before = _blas_threads()
    inside, release, seen = threading.Event(), threading.Event(), []

    def other():
        with blas_single_thread():
            inside.set()
            release.wait(10)
            seen.append(_blas_threads())

    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    with blas_single_thread():
        pass  # leaves first: the other block still runs under the limit
    release.set()
    t.join()
    assert seen == [[1] * len(before)]
    assert _blas_threads() == before
