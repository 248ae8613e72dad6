"""ChunkFiles (the segmentation's scratch arrays): numpy basic indexing on chunk files."""

import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from spectrotomo.segmentation._blocks import Scratch, blocks
from spectrotomo.segmentation._chunkfiles import ChunkFiles


@pytest.mark.parametrize("compress", [True, False])
def test_reads_and_writes_as_numpy(tmp_path, compress):
    rng = np.random.default_rng(0)
    ref = np.full((2, 13, 10, 7), np.nan, np.float32)
    arr = ChunkFiles(tmp_path / "a", ref.shape, np.float32, (1, 4, 5, 3), fill=np.nan,
                     compress=compress)
    assert arr.shape == ref.shape and arr.ndim == 4 and arr.chunks == (1, 4, 5, 3)
    np.testing.assert_array_equal(arr[...], ref)  # never written: the fill
    for key in [(slice(None), slice(2, 9), slice(1, 10), slice(0, 5)),  # partial chunks
                (1, slice(3, 4)), (Ellipsis, -1), (0, 12, 9, 6), (slice(None),)]:
        value = rng.random(ref[key].shape).astype(np.float32)
        ref[key] = value
        arr[key] = value
        np.testing.assert_array_equal(arr[key], ref[key])
    arr[0, :, 2] = 0.5  # a scalar broadcast
    ref[0, :, 2] = 0.5
    np.testing.assert_array_equal(arr[...], ref)
    np.testing.assert_array_equal(arr[1, 5:11, ..., 4], ref[1, 5:11, ..., 4])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(arr))[:, 3:7], ref[:, 3:7])
    with pytest.raises(IndexError):
        arr[::2]


def test_whole_chunks_from_threads_and_release(tmp_path):
    """Blocks written at once from threads (each whole chunks) read back as one array;
    Scratch.release and discard_except remove the arrays' files."""
    vol = np.random.default_rng(1).integers(0, 1000, (20, 17, 9)).astype(np.int64)
    with Scratch(8, tmp_path) as scratch:
        arr = scratch.array(vol.shape, np.int64)
        other, kept = scratch.array(vol.shape, bool), scratch.array(vol.shape, np.uint8)

        def put(core):
            arr[core] = vol[core]

        with ThreadPoolExecutor(3) as pool:
            list(pool.map(put, blocks(vol.shape, 8)))
        np.testing.assert_array_equal(arr[...], vol)
        scratch.release(other)
        assert not other.path.exists()
        scratch.discard_except([kept])
        scratch._discarding.join()
        assert kept.path.exists() and not arr.path.exists()
