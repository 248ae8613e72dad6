"""Radix selection over blocks equals sorting (float32 and float64 keys, several groups)."""

import numpy as np
import pytest

from spectrotomo.segmentation._blockselect import from_sortable, select_kth, sortable


@pytest.mark.parametrize("dtype,bits", [(np.float64, 64), (np.float32, 32)])
def test_select_kth_equals_sort(dtype, bits):
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(0.7, 0.2, 6000), 3).astype(dtype)  # ties included
    group = rng.integers(0, 3, values.size)
    cores = [slice(a, a + 700) for a in range(0, values.size, 700)]
    if bits == 32:
        u = values.view(np.uint32)
        keys = np.where(u >> 31, ~u, u | np.uint32(1 << 31)).astype(np.uint64)
    else:
        keys = sortable(values)
    targets, ranks = [], []
    for g in range(3):
        n = int((group == g).sum())
        targets += [g] * 4
        ranks += [0, n // 4, n // 2, n - 1]
    found, residual = select_kth(lambda sl: (group[sl], keys[sl]), cores, targets, ranks,
                                 bits=bits)
    for g, r, key, res in zip(targets, ranks, found, residual):
        ordered = np.sort(values[group == g])
        if bits == 32:
            k = np.uint32(key)
            got = np.array(np.where(k >> 31, k & ~np.uint32(1 << 31), ~k), np.uint32)
            got = got.view(np.float32)
        else:
            got = from_sortable(np.array([key]))[0]
        assert got == ordered[r]
        assert res == r - np.searchsorted(ordered, ordered[r])  # rank among equal values
