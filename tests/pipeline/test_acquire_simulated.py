"""The acquire step of a simulated preset: its truth computed and written by slabs
(``sample(lazy_truth=True)``) is the eager simulator's, in numpy's zarr layout."""

import numpy as np
import zarr

from spectrotomo import io
from spectrotomo.simulate import particle, sample


def test_simulated_acquire_writes_the_eager_truth_in_numpys_layout(tmp_path):
    from zarr.core.chunk_grids import _guess_chunks

    from spectrotomo.pipeline import Config, run_pipeline

    cfg = Config()
    cfg.input.path, cfg.input.seed, cfg.output.store = "simulate:tiny", 3, str(tmp_path / "s.zarr")
    run_pipeline(cfg, steps=["acquire"], report_dir=str(tmp_path / "report"), log=lambda m: None)
    eager = particle("tiny", seed=3)
    stored = io.read_group(cfg.output.store, "truth").compute()
    for name, var in eager.variables.items():
        assert stored[name].dtype == var.dtype, name
        np.testing.assert_array_equal(stored[name].values, var.values, err_msg=name)
        if name in eager.data_vars:  # the chunks a numpy array gets, not the lazy slabs'
            arr = zarr.open_array(f"{cfg.output.store}/truth/{name}", mode="r")
            assert arr.chunks == _guess_chunks(var.shape, var.dtype.itemsize), name
    raw = io.read_group(cfg.output.store, "raw")
    ts = sample("tiny", seed=3)["tilt_series"].to_dataset()
    for name in ("projections", "true_od", "flats"):
        np.testing.assert_array_equal(raw[name].values, ts[name].values, err_msg=name)
