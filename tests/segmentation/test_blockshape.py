"""Blocks of one cube's worth per process (slabs of chunk/threads z rows), the heap trim
after each block loop and the masked smoothing map by map: same results, bounded memory."""

import numpy as np
import pytest

from spectrotomo import segmentation as seg
from spectrotomo.segmentation import _blocks
from spectrotomo.segmentation._blocks import Scratch, block_shape, blocks, map_blocks

from .test_blocks import ALL, _simulated


def test_block_shape_splits_the_cube_along_z_for_the_threads():
    big = (256, 256, 256)  # 8 cubes of 128
    assert block_shape(128, 1, big) == (128, 128, 128)
    assert block_shape(128, 2, big) == (64, 128, 128)
    assert block_shape(128, 3, big) == (43, 128, 128)  # ceil: 3 slabs cover the cube
    assert block_shape(128, 16, big) == (32, 128, 128)  # no slab below MIN_SLAB
    assert block_shape(24, 4, big) == (24, 24, 24)  # too thin to split
    # one cube: the cube (its idle threads work inside it)
    assert block_shape(128, 2, (128, 128, 128)) == (128, 128, 128)
    assert block_shape(128, 2, (128, 128, 200)) == (64, 128, 128)  # 2 cubes, 2 threads


def test_blocks_and_scratch_take_the_edges_of_each_axis():
    cores = blocks((70, 50, 40), (32, 50, 24))
    assert len(cores) == 3 * 1 * 2
    covered = np.zeros((70, 50, 40), int)
    for core in cores:
        covered[core] += 1
    assert (covered == 1).all()  # a tiling: every voxel in one block
    with Scratch((32, 50, 24)) as scratch:
        assert scratch.array((2, 70, 50, 40), np.float32).chunks == (2, 32, 50, 24)
        assert scratch.array((70, 50, 40), bool).chunks == (32, 50, 24)


@pytest.mark.parametrize("nz, workers, edges", [(64, 1, (64, 64, 64)), (128, 2, (32, 64, 64)),
                                                (64, 2, (64, 64, 64))])
def test_segment_volume_blocks_are_slabs_per_thread(nz, workers, edges):
    """The scratch results are chunked as the blocks were cut: one cube per process (two
    cubes on two threads: slabs; one cube: the cube)."""
    mu, _, px, _ = _simulated("small")  # 64^3
    mu = np.concatenate([mu] * (nz // 64))
    res = seg.segment_volume(mu, spacing=px, chunk=64, workers=workers)
    try:
        assert res.arrays["mask"].chunks == edges
    finally:
        res.close()


@pytest.fixture(scope="module")
def small():
    return _simulated("small")


def test_slab_blocks_give_the_cube_blocks_results(small):
    """Blocks of unequal edges (z 16, y 24, x 20: slabs, not cubes) on 64^3 with pores and
    cracks crossing their faces: labels and maps identical to cubes of 24."""
    mu, amounts, px, target = small
    kw = dict(spacing=px, amounts=amounts.values, elements=["Mn", "Co", "Ni", "O"],
              target=target, workers=2)
    out = []
    for chunk in (24, (16, 24, 20)):
        res = seg.segment_volume(mu, chunk=chunk, **kw)
        out.append({k: np.asarray(v[ALL]) for k, v in res.arrays.items()})
        res.close()
    cube, slab = out
    assert cube["pores"].max() > 0 and cube["cracks"].max() > 0  # something crosses faces
    for k in cube:
        np.testing.assert_array_equal(slab[k], cube[k], err_msg=k)  # NaN == NaN


def test_profile_tables_on_slab_blocks_equal_the_whole_volume(small):
    mu, amounts, px, _ = small
    mask = seg.particle_mask(mu)
    shell = seg.shells(mask, 5, px)
    values = amounts.sel(element=["Mn", "O"]).assign_attrs(units="atoms/nm^3")
    whole = seg.profile_table(values, shell, by="shell", labels=mask)
    got = seg.profile_table_blocks(values, shell, by="shell", mask=mask, chunk=(16, 32, 24),
                                   workers=2)
    for stat in ("count", "median", "q25", "q75"):  # exact by selection
        np.testing.assert_array_equal(got[stat].values, whole[stat].values, err_msg=stat)
    for stat in ("mean", "std"):  # sums in another order
        np.testing.assert_allclose(got[stat].values, whole[stat].values, rtol=1e-12)


@pytest.mark.parametrize("workers", [1, 2])
def test_block_loops_hand_free_heap_back(monkeypatch, workers):
    """Every block loop run in this process ends with the heap trim (the RSS otherwise
    kept each earlier loop's high-water mark)."""
    calls = []
    monkeypatch.setattr(_blocks, "release_free_memory", lambda: calls.append(1))
    with _blocks.block_workers(workers):
        map_blocks(lambda i: i, range(3))
        map_blocks(lambda i: i, range(3), reduce=lambda a, b: a + b, initial=0)
    assert len(calls) == 2


def test_release_free_memory_runs():
    _blocks.release_free_memory()  # glibc: malloc_trim(0); elsewhere nothing
    assert len(_blocks._TRIM) == 1


def test_masked_smooth_blocks_leave_a_numpy_input_alone():
    """The block reads a view of a numpy input: NaN filling must not write into it."""
    from spectrotomo.segmentation._blockseg import masked_smooth_blocks

    rng = np.random.default_rng(0)
    data = rng.random((2, 20, 20, 20)).astype(np.float32)
    data[0, 5, 5, 5] = np.nan
    mask = np.zeros((20, 20, 20), bool)
    mask[3:17, 3:17, 3:17] = True
    before = data.copy()
    whole = seg.masked_smooth(data, mask, sigma_nm=20, spacing=10.0, surface_nm=30)
    with Scratch((8, 12, 10)) as scratch:
        got = masked_smooth_blocks(data, mask, sigma_nm=20, spacing=np.array([10.0] * 3),
                                   surface_nm=30, chunk=(8, 12, 10), scratch=scratch)[...]
    np.testing.assert_array_equal(data, before)
    np.testing.assert_allclose(got, whole, rtol=1e-6, equal_nan=True)


def test_mean_over_energies_one_at_a_time_is_numpys_mean():
    """MeanOver sums one energy's block at a time: the bits of numpy's float32 mean."""
    from spectrotomo.segmentation._segment import MeanOver

    rng = np.random.default_rng(1)
    a = (rng.random((8, 12, 10, 9)) * rng.choice([1e-3, 1.0, 1e4], (8, 12, 10, 9)))
    a = a.astype(np.float32)
    a[3, 2, 2, 2] = np.nan
    before = a.copy()
    np.testing.assert_array_equal(MeanOver(a)[ALL], a.mean(axis=0))  # NaN == NaN
    np.testing.assert_array_equal(a, before)  # the first energy's view is not summed into


def test_stored_mean_reads_whole_input_tiles():
    """The energy mean is filled in blocks spanning the input's y/x tiles (at most 2 block
    edges): each store tile decoded once, not once per block inside it."""
    import zarr

    from spectrotomo.segmentation._segment import MeanOver, _stored

    z = zarr.create_array(store={}, shape=(3, 32, 64, 64), chunks=(1, 8, 64, 64),
                          dtype=np.float32, zarr_format=3)
    z[...] = np.random.default_rng(2).random(z.shape, dtype=np.float32)
    seen = []

    class Spy(MeanOver):
        def __getitem__(self, sl):
            seen.append(tuple(s.stop - s.start for s in sl))
            return super().__getitem__(sl)

    with Scratch((16, 32, 32)) as scratch:
        got = _stored(Spy(z), scratch)
        assert got.chunks == (16, 32, 32)
        np.testing.assert_array_equal(got[...], z[...].mean(axis=0))
    assert seen and all(s == (16, 64, 64) for s in seen)  # 4 chunks per read, 2 reads
    with Scratch(16) as scratch, pytest.raises(ValueError, match="whole chunks"):
        scratch.filled((32, 32, 32), np.float32, lambda sl: np.zeros(1), block=(16, 24, 16))


def test_profile_first_pass_blocks_span_the_maps_tiles():
    from spectrotomo.segmentation._blockstats import _tiled

    assert _tiled((64, 128, 128), [(16, 256, 256)]) == (16, 256, 256)  # 256^3, 2 threads
    assert _tiled((128, 128, 128), [(16, 256, 256)]) == (32, 256, 256)  # 1 thread
    assert _tiled((128, 128, 128), [(16, 128, 128), None]) == (128, 128, 128)  # aligned
    assert _tiled((64, 128, 128), [(16, 1024, 1024)]) == (16, 256, 256)  # at most 2 edges
    assert _tiled((16, 32, 32), [(8, 64, 64)]) == (8, 64, 64)  # never under 8 rows


def test_profile_tables_on_tile_blocks_equal_the_whole_volume(small):
    """Maps stored in tiles wider than the blocks (64^2 tiles, blocks of 32): first-pass
    blocks of 8 x 64 x 64, statistics as on the whole volume."""
    import dask.array as da

    mu, amounts, px, _ = small
    mask = seg.particle_mask(mu)
    shell = seg.shells(mask, 5, px)
    values = amounts.sel(element=["Mn", "O"]).assign_attrs(units="atoms/nm^3")
    tiled = values.copy(data=da.from_array(values.values, chunks=(1, 8, 64, 64)))
    whole = seg.profile_table(values, shell, by="shell", labels=mask)
    got = seg.profile_table_blocks(tiled, shell, by="shell", mask=mask, chunk=32, workers=2)
    for stat in ("count", "median", "q25", "q75"):
        np.testing.assert_array_equal(got[stat].values, whole[stat].values, err_msg=stat)
    for stat in ("mean", "std"):
        np.testing.assert_allclose(got[stat].values, whole[stat].values, rtol=1e-12)
