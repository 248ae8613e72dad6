import numpy as np
import pytest

from spectrotomo.recon import reconstruct, reconstruct_dask
from spectrotomo.simulate import ball, project

da = pytest.importorskip("dask.array")


@pytest.fixture(scope="module")
def stack():
    n = 40
    vol = ball((6, n, n), 12.0, center=(2.5, 18.0, 21.0))
    angles = np.arange(0.0, 180.0, 3.0)
    return vol, angles, project(vol, angles).astype(np.float32)


@pytest.mark.parametrize("algorithm", ["fbp", "cgls"])
def test_dask_chunks_match_numpy(stack, algorithm):
    vol, angles, proj = stack
    lazy = da.from_array(proj, chunks=(20, 2, 40))  # chunked along angles too: merged inside
    rec = reconstruct(lazy, angles, algorithm=algorithm, iterations=5)
    assert isinstance(rec, da.Array)
    assert rec.chunks == ((2, 2, 2), (40,), (40,))
    np.testing.assert_allclose(rec.compute(), reconstruct(proj, angles, algorithm=algorithm,
                                                          iterations=5), atol=1e-5)


def test_dask_writes_into_zarr_by_region(stack, tmp_path):
    zarr = pytest.importorskip("zarr")
    vol, angles, proj = stack
    out = zarr.create_array(tmp_path / "v.zarr", shape=(6, 40, 40), chunks=(3, 40, 40),
                            dtype="float32")
    res = reconstruct_dask(da.from_array(proj, chunks=(-1, 3, -1)), angles, out=out)
    assert res is out
    # Odd chunks grid their last row alone, not packed with a neighbour (see
    # ParallelBeamOperator._grid): equal to the NUFFT tolerance (eps 1e-4).
    np.testing.assert_allclose(out[...], reconstruct(proj, angles), atol=2e-4)


def test_dask_bad_input_raises_early(stack):
    from spectrotomo._model import ValidationError

    vol, angles, proj = stack
    with pytest.raises(ValidationError, match="along axis 0"):
        reconstruct(da.from_array(proj), angles[:-2])
