"""export_store: a sample store -> OME-Zarr images/labels or ImageJ TIFF stacks."""

import json

import numpy as np
import pytest
import xarray as xr

from spectrotomo import io, spatial_map, volume

from _ome_validate import validate_image


#: CF flag attributes of the class image (names and colours unlike any built-in table)
_LEGEND = {"flag_values": [0, 1, 2, 3], "flag_meanings": "none fine poor rich",
           "flag_colors": "#000000 #0a0b0c #d62728 #7f7f7f"}


@pytest.fixture
def store(tmp_path, rng):
    """A store with a spectral volume, a ratio map with wild outliers outside the
    particle, int32 pores and a uint8 class image (like a pipeline's groups)."""
    shape = (10, 24, 22)
    zz, yy, xx = np.indices(shape)
    mask = (zz - 5) ** 2 / 16 + (yy - 12) ** 2 / 64 + (xx - 11) ** 2 / 64 < 1
    ratio = np.where(mask, rng.normal(0.4, 0.02, shape), rng.normal(0, 1e5, shape))
    mu = volume(rng.random((2, *shape)).astype(np.float32), energies=[640.0, 660.0],
                voxel_size=20.0, name="mu")
    chem = xr.Dataset({"tm_o_ratio": spatial_map(ratio, voxel_size=20.0, units="1",
                                                 name="tm_o_ratio")},
                      attrs={"pixel_size": 20.0})
    pores = np.zeros(shape, np.int32)
    pores[4:6, 10:12, 10:12] = 1
    pores[5, 14, 6] = 2
    classes = (mask * (1 + (yy > 12))).astype(np.uint8)
    seg = xr.Dataset({n: spatial_map(a, voxel_size=20.0, units="1", name=n) for n, a in
                      (("mask", mask), ("pores", pores), ("composition_class", classes),
                       ("depth", np.where(mask, 1.0, 0.0)))}, attrs={"pixel_size": 20.0})
    seg["composition_class"].attrs.update(_LEGEND)
    path = tmp_path / "s.zarr"
    io.write_groups(path, {"recon": mu.to_dataset(), "chemistry": chem, "segmentation": seg,
                           "raw": xr.Dataset({"projections": (("energy", "angle", "y", "x"),
                                                              np.zeros((2, 3, 4, 4)))})})
    return path, mask, ratio


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_ome_zarr_export_validates(tmp_path, store, version):
    path, mask, ratio = store
    out = tmp_path / "out"
    written = io.export_store(path, out, version=version)
    kinds = {(e["group"], e["variable"]): e["kind"] for e in written}
    assert kinds == {("recon", "mu"): "image", ("chemistry", "tm_o_ratio"): "image",
                     ("segmentation", "depth"): "image", ("segmentation", "mask"): "labels",
                     ("segmentation", "pores"): "labels",
                     ("segmentation", "composition_class"): "labels"}  # raw: not by default
    images = sorted({e.get("image", e["path"]) for e in written})
    assert sum(validate_image(__import__("pathlib").Path(p), version) for p in images) == 3
    index = json.loads((out / "index.json").read_text())
    assert index["version"] == version and len(index["files"]) == 6
    import zarr

    g = zarr.open_group(str(out / "chemistry" / "tm_o_ratio.ome.zarr"), mode="r")
    attrs = g.attrs["ome"] if version == "0.5" else g.attrs
    window = attrs["omero"]["channels"][0]["window"]
    lo, hi = np.percentile(ratio[mask].astype(np.float32), [1, 99])
    assert window["start"] == pytest.approx(lo, rel=1e-5)
    assert window["end"] == pytest.approx(hi, rel=1e-5)
    assert g.attrs["spectrotomo"]["units"] == "1"
    mu = zarr.open_group(str(out / "recon" / "mu.ome.zarr"), mode="r")
    assert mu.attrs["spectrotomo"]["channel_values"] == [640.0, 660.0]
    assert mu.attrs["spectrotomo"]["channel_units"] == "eV"
    seg_image = out / "segmentation" / "depth.ome.zarr"
    pores = zarr.open_group(str(seg_image / "labels" / "pores"), mode="r")
    assert pores["0"].dtype == np.uint32
    cls = zarr.open_group(str(seg_image / "labels" / "composition_class"), mode="r")
    cls_attrs = cls.attrs["ome"] if version == "0.5" else cls.attrs
    names = {p["label-value"]: p.get("name") for p in cls_attrs["image-label"]["properties"]}
    colors = {c["label-value"]: c["rgba"] for c in cls_attrs["image-label"]["colors"]}
    assert names == {0: "none", 1: "fine", 2: "poor", 3: "rich"}  # the store's legend
    assert colors[1] == [10, 11, 12, 255] and colors[2] == [214, 39, 40, 255]
    with pytest.raises(FileExistsError, match="overwrite"):
        io.export_store(path, out, version=version)
    io.export_store(path, out, version=version, overwrite=True)


def test_tiff_export_has_voxel_size_and_window(tmp_path, store):
    import tifffile

    path, mask, ratio = store
    written = io.export_store(path, tmp_path / "t", format="tiff", groups=["recon",
                                                                          "chemistry",
                                                                          "segmentation"])
    assert {e["variable"] for e in written} == {"mu", "tm_o_ratio", "depth", "mask", "pores",
                                                "composition_class"}
    with tifffile.TiffFile(tmp_path / "t" / "recon" / "mu.tif") as tif:
        meta = tif.imagej_metadata
        data = tif.asarray()
        x_res = tif.pages[0].tags["XResolution"].value
    assert data.shape == (10, 2, 24, 22) and data.dtype == np.float32  # Z C Y X
    mu = io.read_group(path, "recon")["mu"].values
    np.testing.assert_array_equal(data, mu.transpose(1, 0, 2, 3))
    assert meta["unit"] == "nm" and meta["spacing"] == pytest.approx(20.0)
    assert x_res[1] / x_res[0] == pytest.approx(20.0, rel=1e-6)  # pixels per nm -> 20 nm
    assert meta["channels"] == 2 and meta["Labels"][:2] == ["640 eV", "660 eV"]
    with tifffile.TiffFile(tmp_path / "t" / "chemistry" / "tm_o_ratio.tif") as tif:
        ranges = tif.imagej_metadata["Ranges"]
    np.testing.assert_allclose(ranges, np.percentile(ratio[mask].astype(np.float32), [1, 99]),
                               rtol=1e-5)
    pores = tifffile.imread(tmp_path / "t" / "segmentation" / "pores.tif")
    assert pores.dtype == np.uint8 and pores.max() == 2


def test_bad_requests(tmp_path, store):
    path = store[0]
    with pytest.raises(ValueError, match="no complete group"):
        io.export_store(path, tmp_path / "o", groups=["valence"])
    with pytest.raises(ValueError, match="format"):
        io.export_store(path, tmp_path / "o", format="png")


def _class_store(tmp_path, attrs):
    """A store whose segmentation group holds only a class image with ``attrs``."""
    classes = np.zeros((3, 6, 5), np.uint8)
    classes[1, 2:4, 1:4] = [[1, 2, 3], [2, 2, 1]]
    var = spatial_map(classes, voxel_size=20.0, units="1", name="composition_class")
    var.attrs.update(attrs)
    path = tmp_path / "c.zarr"
    io.write_groups(path, {"segmentation": xr.Dataset({"composition_class": var},
                                                      attrs={"pixel_size": 20.0})})
    return path


def _label_properties(out):
    import zarr

    g = zarr.open_group(str(out / "segmentation" / "composition_class.ome.zarr" / "labels" /
                            "composition_class"), mode="r")
    return g.attrs["ome"]["image-label"]


def test_class_names_follow_the_store(tmp_path):
    """flag_values default to 0, 1, ... (the segment step writes flag_meanings only);
    no flag attributes at all (older stores): values without names."""
    path = _class_store(tmp_path, {"flag_meanings": "background target oxygen_poor "
                                                    "oxygen_rich"})
    io.export_store(path, tmp_path / "a")
    label = _label_properties(tmp_path / "a")
    assert {p["label-value"]: p.get("name") for p in label["properties"]} == {
        0: "background", 1: "target", 2: "oxygen_poor", 3: "oxygen_rich"}
    path = _class_store(tmp_path / "old", {})
    io.export_store(path, tmp_path / "b")
    label = _label_properties(tmp_path / "b")
    assert sorted(p["label-value"] for p in label["properties"]) == [0, 1, 2, 3]
    assert not any("name" in p for p in label["properties"])


@pytest.mark.parametrize("attrs, match", [
    ({"flag_meanings": "a b c", "flag_values": [0, 1]}, "flag_values has 2 entries"),
    ({"flag_meanings": "a b", "flag_colors": "#000000 red"}, "flag_colors must be"),
])
def test_inconsistent_flags_are_named(tmp_path, attrs, match):
    from spectrotomo import ValidationError

    path = _class_store(tmp_path, attrs)
    with pytest.raises(ValidationError, match=f"segmentation/composition_class: {match}"):
        io.export_store(path, tmp_path / "o")
