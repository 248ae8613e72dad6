"""Block-wise segmentation (segment_volume, profile_table_blocks) equals the
whole-volume functions: labels identical, statistics within 1e-12 relative."""

import numpy as np
import pytest

from spectrotomo import segmentation as seg
from spectrotomo.spectra import EDGES
from spectrotomo.segmentation._blocklabel import label_blocks
from spectrotomo.segmentation._blocks import Scratch

ALL = (slice(None),) * 3


def _simulated(preset: str):
    """Attenuation + 3 % noise and amounts x (1 + 5 % noise) of a simulator preset."""
    simulate = pytest.importorskip("spectrotomo.simulate")
    truth = simulate.particle(preset, seed=3)
    mu = simulate.attenuation(truth, [EDGES["Mn"]["above"]]).values[0]
    rng = np.random.default_rng(11)
    mu = (mu + rng.normal(0, 0.03 * mu.max(), mu.shape)).astype(np.float32)
    amounts = truth["density"].sel(element=["Mn", "Co", "Ni", "O"])
    amounts = (amounts * (1 + rng.normal(0, 0.05, amounts.shape))).astype(np.float32)
    return mu, amounts, float(truth.attrs["pixel_size"]), float(truth.attrs["target_tm_o"])


@pytest.fixture(scope="module")
def sample():
    return _simulated("small")


def _whole(mu, amounts, px, target):
    mask = seg.particle_mask(mu)
    depth = seg.depth(mask, spacing=px)
    pores = seg.find_pores(mu, mask, spacing=px)
    cracks = seg.find_cracks(mu, mask, spacing=px)
    a = amounts.values
    stack = np.stack([a[:3].sum(axis=0), a[3]])
    solid = mask & (pores == 0) & (cracks == 0)
    tm, o = seg.masked_smooth(stack, solid, sigma_nm=30, spacing=px, surface_nm=40)
    defined = solid & np.isfinite(tm) & np.isfinite(o) & (o > 0)
    ratio = np.where(defined, tm / np.where(defined, o, 1.0), np.nan).astype(np.float32)
    ratio = seg.surface_layer_pooling(ratio, stack[0], stack[1], depth, mask=solid, spacing=px,
                                      surface_nm=40, pooling=0.6)  # segment_volume's default
    defined = np.isfinite(ratio)
    return {"mask": mask, "depth": depth, "pores": pores, "cracks": cracks,
            "shell": seg.shells(mask, 5, px, depth_map=depth), "tm_o_ratio_smoothed": ratio,
            "composition_class": seg.composition_classes(ratio, target, 0.05, mask=defined)}


@pytest.fixture(scope="module")
def both(sample):
    mu, amounts, px, target = sample
    ref = _whole(mu, amounts, px, target)
    # 24-voxel blocks: 27 blocks on 64^3, every structure crosses block faces
    res = seg.segment_volume(mu, spacing=px, chunk=24, amounts=amounts.values,
                             elements=["Mn", "Co", "Ni", "O"], target=target)
    got = {k: np.asarray(v[ALL]) for k, v in res.arrays.items()}
    res.close()
    return ref, got


@pytest.mark.parametrize("name", ["mask", "shell", "pores", "cracks", "composition_class"])
def test_labels_identical(both, name):
    ref, got = both
    assert ref[name].max() > 0  # something to compare
    np.testing.assert_array_equal(got[name], ref[name])


@pytest.mark.parametrize("name", ["depth", "tm_o_ratio_smoothed"])
def test_maps_equal(both, name):
    ref, got = both
    np.testing.assert_array_equal(np.isnan(got[name]), np.isnan(ref[name]))
    np.testing.assert_allclose(got[name], ref[name], rtol=1e-6, equal_nan=True)


def test_executors_give_identical_results(tmp_path):
    """Serial, 3 threads and a 2-process dask cluster: the same bits, labels, maps and
    profile statistics (block results are folded in block order, whoever ran them).
    The 32^3 preset in 8 blocks: what is compared is the executors, not the algorithms."""
    import xarray as xr
    from distributed import Client, LocalCluster

    mu, amounts, px, target = _simulated("tiny")
    kw = dict(spacing=px, chunk=16, amounts=amounts.values, elements=["Mn", "Co", "Ni", "O"],
              target=target, scratch_dir=tmp_path)
    values = xr.DataArray(amounts.values, dims=("element", "z", "y", "x"),
                          coords={"element": ["Mn", "Co", "Ni", "O"]}, attrs={"units": "1"})

    def run(**where):
        res = seg.segment_volume(mu, **kw, **where)
        arrays = {k: np.asarray(v[ALL]) for k, v in res.arrays.items()}
        res.close()
        table = seg.profile_table_blocks(values, arrays["shell"], by="shell",
                                         mask=arrays["mask"], chunk=16, **where)
        return arrays, table

    serial, serial_table = run(workers=1)
    assert serial["pores"].max() > 0 and serial["cracks"].max() > 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        on_dask, dask_table = run(client=client)
    for arrays, table in (run(workers=3), (on_dask, dask_table)):
        assert arrays.keys() == serial.keys()
        for k in serial:
            np.testing.assert_array_equal(arrays[k], serial[k], err_msg=k)  # NaN == NaN
        xr.testing.assert_identical(table, serial_table)


@pytest.mark.parametrize("by", ["shell", "depth", "class"])
def test_profile_table_blocks(both, sample, by):
    import xarray as xr

    ref, _ = both
    _, amounts, px, _ = sample
    values = xr.DataArray(amounts.values, dims=("element", "z", "y", "x"),
                          coords={"element": ["Mn", "Co", "Ni", "O"]}, name="amount",
                          attrs={"units": "atoms/nm^3"})
    regions = {"shell": ref["shell"], "depth": ref["depth"],
               "class": ref["composition_class"]}[by]
    bins = [0.0, 30.0, 100.0, 200.0, 400.0] if by == "depth" else None
    whole = seg.profile_table(values, regions, by=by, labels=ref["mask"], bins=bins)
    blocked = seg.profile_table_blocks(values, regions, by=by, mask=ref["mask"], chunk=24,
                                       bins=bins)
    assert whole.attrs == blocked.attrs
    for stat in ("count", "median", "q25", "q75"):  # exact: integer sums, selected values
        np.testing.assert_array_equal(blocked[stat].values, whole[stat].values)
    for stat in ("mean", "std"):  # sums in another order
        np.testing.assert_allclose(blocked[stat].values, whole[stat].values, rtol=1e-12)
    stats = ["mean", "std", "median", "q25", "q75"]
    xr.testing.assert_identical(blocked.drop_vars(stats), whole.drop_vars(stats))


@pytest.mark.parametrize("connectivity,structure", [(6, None), (26, np.ones((3, 3, 3)))])
def test_label_blocks_numbered_like_scipy(connectivity, structure):
    from scipy import ndimage

    rng = np.random.default_rng(0)
    mask = ndimage.gaussian_filter(rng.random((40, 37, 30)), 1.5) > 0.52
    ref, n = ndimage.label(mask, structure=structure)
    with Scratch(8) as scratch:
        lab = label_blocks(mask, chunk=8, scratch=scratch, connectivity=connectivity)
        assert lab.n == n > 20
        np.testing.assert_array_equal(lab[ALL], ref)


def test_depth_exact_beyond_the_halo():
    """A sphere much deeper than a block (depth 22 voxels, chunk 8): the separable passes
    on pencils give scipy's depth exactly."""
    from spectrotomo.segmentation._blockseg import depth_blocks

    grid = np.indices((48, 48, 48)) - 23.5
    mask = np.sqrt((grid ** 2).sum(axis=0)) <= 22
    ref = seg.depth(mask, spacing=(10.0, 10.0, 10.0))
    with Scratch(8) as scratch:
        got = depth_blocks(mask, spacing=(10.0, 10.0, 10.0), chunk=8, scratch=scratch)[ALL]
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("workers", [1, 2])
def test_block_loops_read_zarr_with_few_chunks_at_once(workers):
    """Inside the block loops zarr decodes ZARR_CONCURRENCY chunks per read (a halo read of
    27 chunks held 10 decoded at once); the caller's setting comes back afterwards."""
    import zarr

    from spectrotomo.segmentation._blocks import ZARR_CONCURRENCY, block_workers, map_blocks

    before = zarr.config.get("async.concurrency")
    assert before != ZARR_CONCURRENCY  # zarr's default: the test must see a change
    with block_workers(workers):
        seen = map_blocks(lambda _: zarr.config.get("async.concurrency"), range(4))
    assert seen == [ZARR_CONCURRENCY] * 4
    assert zarr.config.get("async.concurrency") == before


def test_metal_oxygen_reads_tiles_of_rows():
    """The metal/O view of chunked amounts (dask, tiles of 3 z rows) read over z ranges
    across tile boundaries: the metals' sum (same bits) and O."""
    da = pytest.importorskip("dask.array")
    from spectrotomo.segmentation._segment import MetalOxygen

    rng = np.random.default_rng(4)
    amounts = rng.random((4, 11, 6, 5), dtype=np.float32)
    amounts[1, 2] = np.nan
    view = MetalOxygen(da.from_array(amounts, chunks=(4, 3, 6, 5)), ["O", "Mn", "Co", "Ni"])
    want = np.stack([amounts[1:].sum(axis=0), amounts[0]])
    for sl in [(slice(None), slice(1, 10), slice(0, 6), slice(2, 5)),
               (slice(1, 2), slice(3, 6), slice(None), slice(None))]:
        np.testing.assert_array_equal(view[sl], want[sl])  # NaN == NaN


def test_unique_pairs_is_numpy_unique_rows():
    """Face pairs packed into one int64 give np.unique(axis=0)'s rows; labels >= 2^31
    fall back to it."""
    from spectrotomo.segmentation._blocklabel import _unique_pairs

    rng = np.random.default_rng(2)
    for pairs in (rng.integers(0, 40, (500, 2)), np.zeros((0, 2), np.int64),
                  np.array([[1 << 40, 3], [2, 5], [2, 5]])):
        pairs = pairs.astype(np.int64)
        np.testing.assert_array_equal(_unique_pairs(pairs), np.unique(pairs, axis=0))
