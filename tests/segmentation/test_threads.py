"""Threads inside one block (segmentation._threads) and stages side by side
(_blocks.concurrently): the same bits as serial, the budget split as documented."""

import threading

import numpy as np
import pytest
from scipy import ndimage

from spectrotomo import segmentation as seg
from spectrotomo.segmentation._blocklabel import label_blocks
from spectrotomo.segmentation._blocks import Scratch, block_workers, concurrently, map_blocks
from spectrotomo.segmentation._threads import budget, gaussian_filter, granted, thread_map

ALL = (slice(None),) * 3


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("shape,sigma,mode", [((30, 41, 17), 1.0, "reflect"),
                                              ((2, 23, 19, 29), (0.0, 2.5, 2.5, 1.5),
                                               "constant")])
def test_gaussian_filter_on_threads_is_scipys(threads, shape, sigma, mode):
    values = np.random.default_rng(0).random(shape, dtype=np.float32)
    ref = ndimage.gaussian_filter(values, sigma, mode=mode)
    with granted(threads):
        got = gaussian_filter(values, sigma, mode=mode)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, ref)


def test_thread_map_keeps_item_order_and_runs_on_threads():
    seen = set()

    def square(x):
        seen.add(threading.get_ident())
        return x * x

    assert list(thread_map(square, range(5))) == [0, 1, 4, 9, 16]  # budget 1: here
    assert seen == {threading.get_ident()}
    with granted(3):
        assert list(thread_map(square, range(40))) == [x * x for x in range(40)]
    assert len(seen) > 1  # pool threads ran some


def test_budget_follows_the_blocks_and_stages():
    """block_workers(4) grants 4 threads; one block gets all 4, 2 blocks 2 each, 8 blocks
    1 each; two stages side by side get 2 each; serial runs 1."""
    def seen(_):
        return budget()

    with block_workers(1):
        assert map_blocks(seen, [0]) == [1]
    with block_workers(4):
        assert map_blocks(seen, [0]) == [4]
        assert map_blocks(seen, [0, 1]) == [2, 2]
        assert map_blocks(seen, range(8)) == [1] * 8
        assert concurrently(lambda: map_blocks(seen, [0]), budget) == [[2], 2]


def test_concurrently_returns_in_order_and_raises():
    with block_workers(2):
        assert concurrently(lambda: 1, lambda: 2, lambda: 3) == [1, 2, 3]
        with pytest.raises(ZeroDivisionError):
            concurrently(lambda: 1, lambda: 1 / 0)
    assert concurrently(lambda: 1, lambda: 2) == [1, 2]  # serial


def test_one_block_labels_like_scipy():
    """A volume of one block (no face to cross) is labelled as scipy labels it."""
    rng = np.random.default_rng(1)
    mask = ndimage.gaussian_filter(rng.random((20, 18, 16)), 1.5) > 0.52
    for connectivity, structure in ((6, None), (26, np.ones((3, 3, 3)))):
        ref, n = ndimage.label(mask, structure=structure)
        with Scratch(24) as scratch:
            lab = label_blocks(mask, chunk=24, scratch=scratch, connectivity=connectivity)
            assert lab.n == n > 3
            np.testing.assert_array_equal(lab[ALL], ref)


def test_one_block_segmentation_and_profiles_identical_on_1_and_2_threads(tmp_path):
    """The demo's case: the whole volume is one block, so 2 threads run stages side by
    side, the smoothing layers and the Gaussian passes on threads: same bits as 1."""
    import xarray as xr

    simulate = pytest.importorskip("spectrotomo.simulate")
    from spectrotomo.spectra import EDGES

    truth = simulate.particle("tiny", seed=3)
    mu = simulate.attenuation(truth, [EDGES["Mn"]["below"], EDGES["Mn"]["above"]]).values
    rng = np.random.default_rng(11)
    mu = (mu + rng.normal(0, 0.03 * mu.max(), mu.shape)).astype(np.float32)  # (2, 32^3)
    amounts = truth["density"].sel(element=["Mn", "Co", "Ni", "O"]).values.astype(np.float32)
    kw = dict(spacing=float(truth.attrs["pixel_size"]), chunk=32, amounts=amounts,
              elements=["Mn", "Co", "Ni", "O"], target=float(truth.attrs["target_tm_o"]),
              scratch_dir=tmp_path)
    values = xr.DataArray(amounts, dims=("element", "z", "y", "x"),
                          coords={"element": ["Mn", "Co", "Ni", "O"]}, attrs={"units": "1"})

    def run(workers):
        res = seg.segment_volume(mu, workers=workers, **kw)
        arrays = {k: np.asarray(v[ALL]) for k, v in res.arrays.items()}
        res.close()
        jobs = [dict(values=values, regions=arrays[r], by=by, mask=arrays["mask"], **extra)
                for r, by, extra in (("shell", "shell", {}), ("composition_class", "class", {}),
                                     ("depth", "depth", {"bins": [0.0, 30.0, 100.0, 400.0]}))]
        return arrays, seg.profile_tables_blocks(jobs, chunk=32, workers=workers), jobs

    serial, serial_tables, jobs = run(1)
    assert serial["shell"].max() == 5 and np.isfinite(serial["tm_o_ratio_smoothed"]).any()
    threaded, tables, _ = run(2)
    for k in serial:
        np.testing.assert_array_equal(threaded[k], serial[k], err_msg=k)  # NaN == NaN
    for job, table, one in zip(jobs, tables, serial_tables):
        xr.testing.assert_identical(table, one)
        xr.testing.assert_identical(table, seg.profile_table_blocks(chunk=32, workers=1,
                                                                    **job))


def test_block_loop_does_not_wait_on_its_oldest_block():
    """A slow first block does not hold the next ones back (they run, and end, while it
    runs: it ends only once the last has run); results still come in item order."""
    last_ran = threading.Event()

    def block(i):
        if i == 0:
            assert last_ran.wait(30)  # a safety net: the old loop waited here forever
        if i == 11:
            last_ran.set()
        return i

    with block_workers(2):
        assert map_blocks(block, range(12)) == list(range(12))
