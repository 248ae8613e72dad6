"""profile_tables_blocks: each input read once per block, pieces, whole-volume equality."""

import numpy as np
import pytest

from spectrotomo import segmentation as seg
from spectrotomo._model import ValidationError
from spectrotomo.segmentation import _blockstats
from spectrotomo.segmentation._blocks import blocks

SHAPE = (40, 36, 30)
BINS = [0.0, 2.0, 5.0, 9.0, 20.0]


class Counted:
    """A numpy array that counts the block reads it serves."""

    def __init__(self, arr):
        self.arr, self.shape, self.dtype, self.reads = arr, arr.shape, arr.dtype, 0

    def __getitem__(self, sl):
        self.reads += 1
        return self.arr[sl]


def _inputs():
    from scipy import ndimage

    rng = np.random.default_rng(3)
    grid = np.indices(SHAPE) - (np.array(SHAPE) - 1)[:, None, None, None] / 2
    mask = (grid ** 2).sum(axis=0) < 15.0 ** 2
    depth = ndimage.distance_transform_edt(mask).astype(np.float32)
    shell = np.where(mask, np.minimum(depth // 3 + 1, 5), 0).astype(np.uint8)
    classes = np.where(mask, rng.integers(1, 4, SHAPE), 0).astype(np.uint8)
    amounts = rng.normal(1.0, 0.2, (3,) + SHAPE).astype(np.float32)
    amounts[0, ::5, 4] = np.nan  # missing values are left out
    ratio = rng.normal(0.5, 0.1, SHAPE)  # float64: five radix passes
    return mask, {"shell": shell, "depth": depth, "class": classes}, \
        {"amount": amounts, "ratio": ratio}


@pytest.mark.parametrize("piece", [_blockstats.PIECE, 97])
def test_each_input_read_once_per_block(monkeypatch, piece):
    """6 tables (2 maps x 3 groupings) read the mask and the shells once per block, every
    other region image and map once per block holding particle voxels, and equal the whole-volume tables (pieces of 97 voxels: many per
    block, cut anywhere)."""
    monkeypatch.setattr(_blockstats, "PIECE", piece)
    mask, regions, maps = _inputs()
    counted = {name: Counted(a) for name, a in {"mask": mask, **regions, **maps}.items()}
    jobs = [dict(values=counted[v], regions=counted[by], by=by, mask=counted["mask"],
                 **({"bins": BINS} if by == "depth" else {}))
            for v in maps for by in regions]
    tables = seg.profile_tables_blocks(jobs, chunk=16, workers=2)
    cores = blocks(SHAPE, 16)  # 3 x 3 x 2
    filled = sum(bool(mask[core].any()) for core in cores)
    assert 0 < filled < len(cores)
    want = {name: len(cores) if name in ("mask", "shell") else filled for name in counted}
    assert {name: c.reads for name, c in counted.items()} == want
    for job, table in zip(jobs, tables):
        whole = seg.profile_table(job["values"].arr, job["regions"].arr, by=job["by"],
                                  labels=mask, bins=job.get("bins"))
        assert whole["count"].values.sum() > 0
        for stat in ("count", "median", "q25", "q75"):  # integers, selected values: exact
            np.testing.assert_array_equal(table[stat].values, whole[stat].values)
        for stat in ("mean", "std"):  # sums in another order
            np.testing.assert_allclose(table[stat].values, whole[stat].values, rtol=1e-12)


def test_pieces_do_not_change_the_tables(monkeypatch):
    """The same tables, bit for bit, whatever the piece size and the threads."""
    mask, regions, maps = _inputs()
    jobs = [dict(values=maps["amount"], regions=regions["depth"], by="depth", mask=mask,
                 bins=BINS)]
    ref = seg.profile_tables_blocks(jobs, chunk=16, workers=1)[0]
    monkeypatch.setattr(_blockstats, "PIECE", 1000)
    got = seg.profile_tables_blocks(jobs, chunk=16, workers=2)[0]
    for stat in ("count", "median", "q25", "q75"):
        np.testing.assert_array_equal(got[stat].values, ref[stat].values)
    np.testing.assert_allclose(got["mean"].values, ref["mean"].values, rtol=1e-12)


def test_bad_depth_bins_raise_before_reading():
    mask, regions, maps = _inputs()
    values = Counted(maps["ratio"])
    with pytest.raises(ValidationError, match="bins"):
        seg.profile_tables_blocks([dict(values=values, regions=regions["depth"], by="depth",
                                        mask=mask, bins=[0.0, 5.0, 3.0])], chunk=16)
    assert values.reads == 0


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_tables_of_different_masks_in_one_call_equal_their_own_calls(order):
    # each mask's particle files in its own directory (they shared names: the second
    # mask's first pass overwrote the first's, silently or with a reshape error)
    rng = np.random.default_rng(0)
    shape = (20, 20, 20)
    masks = [np.zeros(shape, np.uint8) for _ in range(2)]
    masks[0][2:18, 2:18, 2:18] = 1
    masks[1][5:10, 5:10, 5:10] = 1
    regions = rng.integers(1, 4, shape).astype(np.int32)
    values = rng.random(shape).astype(np.float32)
    jobs = [dict(values=values, regions=regions, by="shell", mask=masks[k]) for k in order]
    together = seg.profile_tables_blocks(jobs, chunk=16, workers=1)
    for job, table in zip(jobs, together):
        alone = seg.profile_table_blocks(chunk=16, workers=1, **job)
        for var in ("count", "mean", "median"):
            np.testing.assert_array_equal(table[var].values, alone[var].values)
