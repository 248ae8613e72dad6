import numpy as np
import pytest

from spectrotomo import ValidationError
from spectrotomo.segmentation import composition_classes, plot_profile, profile_table

from .phantoms import sphere


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize("by", ["shell", "depth", "class"])
def test_profile_png_written(tmp_path, by, rng):
    mask, r, radius = sphere(24, 9.0, 10.0)
    values = np.where(mask, r, np.nan)
    regions = composition_classes(0.4 * rng.uniform(0.9, 1.1, mask.shape), 0.4, mask=mask) \
        if by == "class" else None
    table = profile_table(values, regions, by=by, labels=mask, spacing=10.0)
    path = plot_profile(table, tmp_path / "figs" / f"{by}.png", dpi=50)
    width, height = _png_size(path)
    assert (width, height) == (int(5.5 * 50), int(3.8 * 50))


def test_per_particle_lines(tmp_path):
    mask, r, _ = sphere(20, 7.0)
    labels = np.concatenate([mask, 2 * mask], axis=2).astype(np.int32)
    values = np.concatenate([r, r], axis=2)
    table = profile_table(values, by="shell", labels=labels, per_particle=True)
    plot_profile(table, tmp_path / "p.png", title="two particles")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_rejects_other_tables(tmp_path):
    import xarray as xr

    with pytest.raises(ValidationError, match="profile_table"):
        plot_profile(xr.Dataset({"a": ("x", [1.0])}), tmp_path / "a.png")
