"""Fast looks: ``--rows`` previews into a separate store, the centre try-stack,
and progress reporting (bars on a terminal, a log line per ~10 % otherwise)."""

from __future__ import annotations

import numpy as np
import pytest

from spectrotomo import io
from spectrotomo.pipeline import run_pipeline
from spectrotomo.pipeline._config import config_from_dict
from spectrotomo.pipeline._monitor import Progress, dask_progress
from spectrotomo.pipeline._preview import (center_candidates, parse_rows, preview_paths,
                                           run_center, run_rows, try_centers)
from spectrotomo.recon import reconstruct


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("preview")
    cfg = config_from_dict({"input": {"path": "simulate:tiny"},
                            "output": {"store": str(root / "s.zarr"), "figures": False},
                            "preprocess": {"align": False},
                            "reconstruct": {"algorithm": "fbp"}})
    return root, cfg


def test_rows_preview_leaves_the_main_store_without_recon(tiny):
    root, cfg = tiny
    result = run_rows(cfg, (10, 14), log=lambda m: None)
    preview = result["preview_store"]
    assert preview == preview_paths(cfg, (10, 14))[0] == root / "s-rows10-14.zarr"
    groups = io.list_groups(cfg.output.store)
    assert "od" in groups and io.is_complete(cfg.output.store, "od")
    assert not {"recon", "chemistry", "segmentation"} & set(groups)
    for group in ("recon", "chemistry", "valence", "segmentation", "profiles"):
        assert io.is_complete(preview, group), group
    mu = io.read_group(preview, "recon")["mu"]
    assert mu.shape == (8, 4, 32, 32)
    # FBP slices are independent: the preview rows equal those of the full reconstruction
    run_pipeline(cfg, steps=["reconstruct"], log=lambda m: None)
    full = io.read_group(cfg.output.store, "recon")["mu"].values[:, 10:14]
    np.testing.assert_allclose(mu.values, full, rtol=0, atol=1e-5 * np.abs(full).max())
    np.testing.assert_array_equal(mu["z"].values, io.read_group(cfg.output.store, "recon")
                                  ["z"].values[10:14])
    assert (root / "s-rows10-14-report" / "summary.json").is_file()


def test_parse_rows_and_errors(tiny):
    assert parse_rows("3:9") == (3, 9) and parse_rows(slice_row=5) == (5, 6)
    with pytest.raises(ValueError, match=r"--rows must be START:STOP"):
        parse_rows("3-9")
    with pytest.raises(ValueError, match=r"need 0 <= START < STOP"):
        parse_rows("9:3")
    root, cfg = tiny
    with pytest.raises(ValueError, match=r"rows 30:40 exceed the 32 detector rows"):
        run_rows(cfg, (30, 40), log=lambda m: None)


def test_try_centers_slices_match_reconstructions_at_each_centre(rng):
    n, a = 48, 90
    angles = np.linspace(0, 180, a, endpoint=False)
    img = np.zeros((n, n), np.float32)
    img[14:30, 18:26] = 1.0
    from spectrotomo.recon import ParallelBeamOperator

    true_center = (n - 1) / 2 + 2.5  # the axis 2.5 columns right of the detector centre
    sino = np.asarray(ParallelBeamOperator(angles, n, center=true_center).forward(img[None]))
    sino = sino[:, 0]
    candidates = center_candidates(true_center, 2.0, 0.5)
    assert candidates.size == 9 and candidates[4] == pytest.approx(true_center)
    slices = try_centers(sino, angles, candidates)
    assert slices.shape == (9, n, n)
    for i in (0, 4, 8):
        direct = reconstruct(sino[:, None], angles, center=float(candidates[i]))[0]
        err = np.linalg.norm(slices[i] - direct) / np.linalg.norm(direct)
        assert err < 0.02, (i, err)
    # the true axis gives the sharpest slice: least energy outside the object
    outside = [np.abs(s[img == 0]).mean() for s in slices]
    assert int(np.argmin(outside)) == 4


def test_center_writes_tiff_stack_and_montage(tiny, tmp_path):
    import tifffile

    _, cfg = tiny
    out = run_center(cfg, search=1.0, step=0.5, row=12, out_dir=tmp_path, log=lambda m: None)
    assert out["row"] == 12 and out["candidates"].size == 5
    with tifffile.TiffFile(out["tiff"]) as tif:
        assert tif.series[0].shape == (5, 32, 32)
        labels = tif.imagej_metadata["Labels"]
    assert labels == [f"center {c:.2f}" for c in out["candidates"]]
    assert out["png"].stat().st_size > 0
    od = io.read_group(cfg.output.store, "od")
    assert out["center"] == pytest.approx(float(od.attrs["center"]))
    with pytest.raises(ValueError, match=r"--search and --step must be > 0"):
        run_center(cfg, search=1.0, step=0.0, log=lambda m: None)


def test_progress_logs_one_line_per_ten_percent():
    lines = []
    bar = Progress(40, "reconstruct", log=lines.append, terminal=False, min_seconds=0.0)
    for _ in range(40):
        bar.update()
    bar.close()
    assert len(lines) == 10
    assert lines[0].startswith("reconstruct:  10 % (4/40 task)")
    assert lines[-1].startswith("reconstruct: 100 % (40/40 task)")
    quiet = []
    bar = Progress(40, "quick", log=quiet.append, terminal=False, min_seconds=60.0)
    for _ in range(40):
        bar.update()
    assert quiet == []  # a step shorter than min_seconds stays quiet


def test_dask_progress_reports_dask_computations():
    import dask.array as da

    lines = []
    x = da.ones((40, 10), chunks=(1, 10)).sum(axis=1)
    with dask_progress("acquire", lines.append, minimum=0.0, terminal=False):
        x.compute(scheduler="sync")
    assert lines and lines[-1].startswith("acquire: 100 %")
    assert 5 <= len(lines) <= 12
