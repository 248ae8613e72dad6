import numpy as np
import pytest

import spectrotomo as st
from spectrotomo.pipeline._figures import histogram, label_orthoslices, orthoslices


def _map(rng):
    return st.spatial_map(rng.random((6, 8, 10)).astype("float32"), voxel_size=20.0,
                          units="1/nm", name="mu")


def test_orthoslices_write_png(tmp_path, rng):
    path = orthoslices(_map(rng), tmp_path / "mu.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_label_and_histogram(tmp_path, rng):
    labels = _map(rng).copy(data=rng.integers(0, 4, (6, 8, 10)).astype("uint8"))
    p = label_orthoslices(labels, tmp_path / "cls.png", names={0: "bg", 1: "target"},
                          colors={0: "#000000", 1: "#2ca02c"})
    h = histogram(_map(rng), tmp_path / "h.png", mask=labels.values > 0)
    assert p.stat().st_size > 1000 and h.stat().st_size > 1000


def test_orthoslices_rejects_wrong_dims(tmp_path, rng):
    with pytest.raises(ValueError, match="dims"):
        orthoslices(_map(rng).rename(z="energy"), tmp_path / "x.png")


def test_center_scores_figure(tmp_path):
    import xarray as xr

    from spectrotomo.pipeline._figures import center_scores

    x = np.linspace(28.0, 36.0, 41)
    ds = xr.Dataset({"center_score_x": ("center_candidate", x, {"units": "px",
                                                                "long_name": "column (px)"}),
                     "center_score": ("center_candidate", (x - 31.5) ** 2, {"long_name": "tv"})},
                    attrs={"center": 31.5, "center_method": "sharpness"})
    assert center_scores(ds, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
