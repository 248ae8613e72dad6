"""The out-of-core separable distance transform against scipy's whole-volume one."""

import numpy as np
import pytest
from scipy import ndimage

from spectrotomo.segmentation._blocks import Scratch, block_workers
from spectrotomo.segmentation._blocksep import exact_distance, pencil_width


@pytest.mark.parametrize("edge", [False, True])
@pytest.mark.parametrize("workers", [1, 3])
def test_exact_distance_equals_scipy_anisotropic(edge, workers):
    rng = np.random.default_rng(0)
    feature = ndimage.gaussian_filter(rng.random((40, 37, 30)), 2) > 0.55
    spacing = (7.0, 10.0, 13.0)
    # scipy measures to the zeros of its input; the edge is a feature: pad with zeros
    ref = ndimage.distance_transform_edt(np.pad(~feature, int(edge)), sampling=spacing)
    ref = ref[(slice(1, -1),) * 3] if edge else ref
    with Scratch(16) as scratch, block_workers(workers):
        got = exact_distance(lambda sl: feature[sl], feature.shape, spacing=spacing, chunk=16,
                             scratch=scratch, edge_feature=edge)[...]
    np.testing.assert_array_equal(got, ref)


def test_exact_distance_without_features_is_inf_and_edge_only_is_the_border():
    shape, spacing = (9, 10, 11), (2.0, 3.0, 5.0)
    none = np.zeros(shape, bool)
    with Scratch(8) as scratch:
        inf = exact_distance(lambda sl: none[sl], shape, spacing=spacing, chunk=8,
                             scratch=scratch)[...]
        border = exact_distance(lambda sl: none[sl], shape, spacing=spacing, chunk=8,
                                scratch=scratch, edge_feature=True)[...]
    assert np.isinf(inf).all()
    idx = np.indices(shape)
    to_edge = [np.minimum(i + 1, n - i) * s for i, n, s in zip(idx, shape, spacing)]
    np.testing.assert_array_equal(border, np.minimum.reduce(to_edge))


def test_pencils_hold_at_most_a_block():
    for n in (64, 256, 2048):
        w = pencil_width((n, n, n), 64, threads=16)
        assert 8 <= w <= 64 and n * w * w <= 64 ** 3


@pytest.mark.parametrize("spacing", [(10.0, 10.0, 10.0), (12.0, 12.0, 12.0), (10.0, 12.0, 7.0)])
def test_block_squares_are_edts(spacing):
    """_blockedt's local squared distances (the numba envelopes, GIL released) are
    edt.edtsq's float32 values, bit for bit, on integer voxel sizes; a block without
    features is inf."""
    edt = pytest.importorskip("edt")
    from spectrotomo.segmentation._blockedt import _local_sq

    rng = np.random.default_rng(5)
    for p in (0.002, 0.05, 0.6):
        feature = rng.random((23, 31, 17)) < p
        want = edt.edtsq(~feature, anisotropy=spacing, black_border=False, parallel=1)
        got = _local_sq(feature, spacing)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    assert np.isinf(_local_sq(np.zeros((4, 5, 6), bool), spacing)).all()
