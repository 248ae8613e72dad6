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
