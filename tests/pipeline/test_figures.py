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


def test_robust_limits_ignore_outliers_outside_the_particle(rng):
    """The TM/O map's colours come from the particle (1-99 %), not the +-1e5 noise of
    the empty surroundings; NaN is drawn transparent."""
    from spectrotomo.pipeline._figures import masked_cmap, robust_limits

    values = rng.normal(0, 1e5, (8, 10, 12))
    mask = np.zeros(values.shape, bool)
    mask[2:6, 3:7, 3:9] = True
    values[mask] = rng.normal(0.4, 0.02, int(mask.sum()))
    lo, hi = robust_limits(values, mask)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(values[mask], [1, 99])))
    assert 0.3 < lo < hi < 0.5
    assert robust_limits(np.full(4, np.nan)) == (0.0, 1.0)
    assert masked_cmap("viridis").get_bad()[3] == 0.0


def test_orthoslices_with_mask(tmp_path, rng):
    da = _map(rng)
    mask = np.zeros(da.shape, bool)
    mask[1:5, 2:6, 2:8] = True
    assert orthoslices(da, tmp_path / "m.png", mask=mask).stat().st_size > 1000


def test_one_pixel_thick_plane_draws_without_warning(tmp_path):
    """A ``--slice`` preview's volume is one row thick: its side views get the other
    axis's pixel height (centre to centre they had none: a singular-limits warning,
    an error under the tests' filterwarnings)."""
    import xarray as xr

    from spectrotomo.pipeline._figures import _extent, orthoslices

    da = xr.DataArray(np.arange(30.0).reshape(1, 5, 6), dims=("z", "y", "x"), name="m",
                      coords={"z": [40.0], "y": np.arange(5) * 20.0, "x": np.arange(6) * 20.0})
    assert _extent(da.isel(z=0)) == [-10.0, 110.0, 90.0, -10.0]  # edges, in nm
    assert _extent(da.isel(y=2)) == [-10.0, 110.0, 50.0, 30.0]  # z: x's 20 nm step
    assert orthoslices(da, tmp_path / "m.png").stat().st_size > 0


def test_figures_drawn_in_threads_equal_those_drawn_one_by_one(tmp_path, rng):
    # the report draws its figures in a thread pool: bare Agg figures, no pyplot state
    import matplotlib.pyplot as plt
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    maps = [_map(rng) for _ in range(4)]
    one = [orthoslices(m, tmp_path / f"one_{i}.png", mask=m.values > 0.2)
           for i, m in enumerate(maps)]
    open_before = plt.get_fignums()
    with ThreadPoolExecutor(3) as pool:
        many = list(pool.map(lambda i: orthoslices(maps[i], tmp_path / f"many_{i}.png",
                                                   mask=maps[i].values > 0.2), range(4)))
    assert plt.get_fignums() == open_before  # nothing registered with pyplot
    for a, b in zip(one, many):
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_orthoslices_along_elements_are_the_single_figures(tmp_path, rng):
    """The element maps read together draw the figures each map draws alone, to the
    byte (one read of a chunk that holds every element)."""
    import xarray as xr

    from spectrotomo.pipeline._figures import orthoslices_along

    amount = xr.concat([_map(rng) for _ in range(3)], dim="element").assign_coords(
        element=["Mn", "Co", "O"]).chunk({"element": 3, "z": 2})
    mask = amount.isel(element=0) > 0.2
    paths = orthoslices_along(amount, "element", [tmp_path / f"a_{i}.png" for i in range(3)],
                              titles=[f"{el} amount" for el in amount.element.values],
                              mask=mask)
    for i, el in enumerate(amount.element.values):
        alone = orthoslices(amount.sel(element=el), tmp_path / f"b_{i}.png",
                            title=f"{el} amount", mask=mask)
        assert paths[i].read_bytes() == alone.read_bytes()


def test_mask_takes_the_chunks_of_the_values_it_masks():
    """A lazy mask of other chunks than the values (segmentation cubes vs chemistry slabs)
    is read in the values' (z, y, x) chunks: each values' chunk is then read once; the
    masked values are the same."""
    import dask.array as da

    from spectrotomo.pipeline._figures import _as_bool

    rng = np.random.default_rng(0)
    values = da.from_array(rng.random((3, 8, 16, 16)).astype(np.float32), chunks=(3, 2, 16, 16))
    mask = da.from_array(rng.random((8, 16, 16)) > 0.5, chunks=(8, 8, 8))
    aligned = _as_bool(mask, like=values)
    assert aligned.chunks == values.chunks[1:]
    assert aligned.dtype == bool
    np.testing.assert_array_equal(da.where(aligned, values, np.nan).compute(),
                                  np.where(mask.compute(), values.compute(), np.nan))
    assert isinstance(_as_bool(np.ones((2, 2)), like=values), np.ndarray)  # numpy stays numpy
    assert _as_bool(mask).chunks == mask.chunks  # nothing to align to: as stored
