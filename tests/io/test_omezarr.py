import json

import numpy as np
import pytest

from spectrotomo import spatial_map, volume
from spectrotomo.io import write_ome_zarr

from _ome_validate import validate_image


@pytest.fixture
def volume_and_labels(rng):
    vol = rng.random((12, 35, 33), dtype=np.float32)
    vol[0, 0, 0] = np.nan
    labels = (np.nan_to_num(vol) > 0.5).astype(np.uint8) + (np.nan_to_num(vol) > 0.8)
    return vol, labels


def _zarr_json(path):
    return json.loads((path / "zarr.json").read_text())


def _write_both(root, vol, labels, version="0.5"):
    image = write_ome_zarr(root / "p.ome.zarr", vol, voxel_size_nm=(20.0, 12.5, 12.5),
                           name="tm_o_ratio", n_levels=3, version=version)
    lab = write_ome_zarr(image, labels, voxel_size_nm=(20.0, 12.5, 12.5), name="classes",
                         kind="labels", label_names={0: "background", 1: "target",
                                                     2: "oxygen-poor"},
                         label_colors={2: (255, 0, 0)}, n_levels=3, version=version)
    return image, lab


def test_v05_required_keys_and_values(tmp_path, volume_and_labels):
    vol, labels = volume_and_labels
    image, lab = _write_both(tmp_path, vol, labels)
    meta = _zarr_json(image)
    assert meta["zarr_format"] == 3 and meta["node_type"] == "group"
    ome = meta["attributes"]["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [(a["name"], a["type"], a["unit"]) for a in ms["axes"]] == \
        [("z", "space", "nanometer"), ("y", "space", "nanometer"), ("x", "space", "nanometer")]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]
    for k, d in enumerate(ms["datasets"]):
        scale = d["coordinateTransformations"][0]
        assert scale["type"] == "scale"
        assert scale["scale"] == [20.0 * 2**k, 12.5 * 2**k, 12.5 * 2**k]
        arr = _zarr_json(image / d["path"])
        assert arr["node_type"] == "array" and arr["data_type"] == "float32"
        assert arr["dimension_names"] == ["z", "y", "x"]
    assert ms["datasets"][1]["coordinateTransformations"][1]["translation"] == [10.0, 6.25, 6.25]

    import zarr

    g = zarr.open_group(str(image), mode="r")
    np.testing.assert_array_equal(g["0"][...], vol)  # NaN kept, bit-exact level 0
    assert g["1"].shape == (6, 18, 17) and g["2"].shape == (3, 9, 9)
    np.testing.assert_allclose(g["1"][1, 2, 3], vol[2:4, 4:6, 6:8].mean(), rtol=1e-6)
    np.testing.assert_allclose(g["1"][1, 17, 16], vol[2:4, 34, 32].mean(), rtol=1e-6)  # edge pad

    labels_meta = _zarr_json(image / "labels")["attributes"]["ome"]
    assert labels_meta == {"version": "0.5", "labels": ["classes"]}
    lab_ome = _zarr_json(lab)["attributes"]["ome"]
    il = lab_ome["image-label"]
    assert il["source"] == {"image": "../../"}
    colors = {c["label-value"]: c["rgba"] for c in il["colors"]}
    assert colors[0][3] == 0 and colors[2] == [255, 0, 0, 255] and set(colors) == {0, 1, 2}
    assert {p["label-value"]: p["name"] for p in il["properties"]}[2] == "oxygen-poor"
    assert lab_ome["multiscales"][0]["type"] == "nearest"
    lg = zarr.open_group(str(lab), mode="r")
    assert lg["0"].dtype == np.uint8
    np.testing.assert_array_equal(lg["0"][...], labels)
    np.testing.assert_array_equal(lg["1"][...], labels[::2, ::2, ::2])
    assert lg["2"].shape == g["2"].shape


def test_v04_is_zarr_v2_with_versioned_metadata(tmp_path, volume_and_labels):
    vol, labels = volume_and_labels
    image, lab = _write_both(tmp_path, vol, labels.astype(np.uint16), version="0.4")
    attrs = json.loads((image / ".zattrs").read_text())
    assert attrs["multiscales"][0]["version"] == "0.4"
    assert [a["unit"] for a in attrs["multiscales"][0]["axes"]] == ["nanometer"] * 3
    zarray = json.loads((image / "0" / ".zarray").read_text())
    assert zarray["zarr_format"] == 2 and zarray["dimension_separator"] == "/"
    assert json.loads((image / "labels" / ".zattrs").read_text()) == {"labels": ["classes"]}
    lab_attrs = json.loads((lab / ".zattrs").read_text())
    assert lab_attrs["image-label"]["version"] == "0.4"
    assert json.loads((lab / "0" / ".zarray").read_text())["dtype"] == "<u2"


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_validates_with_ome_zarr_models(tmp_path, volume_and_labels, version):
    pytest.importorskip("ome_zarr_models")
    import zarr

    mod = "v05" if version == "0.5" else "v04"
    image_mod = __import__(f"ome_zarr_models.{mod}.image", fromlist=["Image"])
    label_mod = __import__(f"ome_zarr_models.{mod}.image_label", fromlist=["ImageLabel"])
    vol, labels = volume_and_labels
    image, lab = _write_both(tmp_path, vol, labels, version=version)
    model = image_mod.Image.from_zarr(zarr.open_group(str(image), mode="r"))
    attrs = model.attributes.ome if version == "0.5" else model.attributes
    assert [a.unit for a in attrs.multiscales[0].axes] == ["nanometer"] * 3
    label = label_mod.ImageLabel.from_zarr(zarr.open_group(str(lab), mode="r"))
    assert label is not None


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_reopens_with_ome_zarr_reader(tmp_path, volume_and_labels, version):
    pytest.importorskip("ome_zarr")
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    vol, labels = volume_and_labels
    image, _ = _write_both(tmp_path, vol, labels, version=version)
    fmt = FormatV05() if version == "0.5" else FormatV04()
    nodes = list(Reader(parse_url(str(image), fmt=fmt))())
    img = next(n for n in nodes if n.load(Multiscales) and not n.load(Label))
    lab = next(n for n in nodes if n.load(Label))
    assert [d.shape for d in img.data] == [(12, 35, 33), (6, 18, 17), (3, 9, 9)]
    np.testing.assert_array_equal(np.asarray(img.data[0]), vol)
    np.testing.assert_array_equal(np.asarray(lab.data[0]), labels)
    assert img.metadata["coordinateTransformations"][0][0]["scale"] == [20.0, 12.5, 12.5]
    assert lab.metadata["properties"][2]["name"] == "oxygen-poor"


def test_dataarray_input_and_2d(tmp_path, rng):
    da = spatial_map(rng.random((40, 30)), voxel_size=15.0, units="1", name="mn_valence")
    path = write_ome_zarr(tmp_path / "m.ome.zarr", da, name="mn_valence")
    ms = _zarr_json(path)["attributes"]["ome"]["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["y", "x"]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [15.0, 15.0]
    assert len(ms["datasets"]) == 1  # default levels: below 64 px already
    from_coords = da.copy()
    from_coords.attrs.pop("pixel_size")
    from_coords = from_coords.assign_coords(y=from_coords.y * 2)  # 30 nm rows, 15 nm columns
    from_coords.y.attrs["units"] = "nm"
    path = write_ome_zarr(tmp_path / "c.ome.zarr", from_coords, name="m")
    ms = _zarr_json(path)["attributes"]["ome"]["multiscales"][0]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [30.0, 15.0]
    from_coords.x.attrs["units"] = "px"
    with pytest.raises(ValueError, match="voxel_size_nm is required"):
        write_ome_zarr(tmp_path / "d.ome.zarr", from_coords, name="m")


def test_bad_input_errors(tmp_path, volume_and_labels):
    vol, labels = volume_and_labels
    with pytest.raises(ValueError, match="labels need an OME-Zarr 0.5 image"):
        write_ome_zarr(tmp_path / "none", labels, voxel_size_nm=10, name="c", kind="labels")
    image = write_ome_zarr(tmp_path / "i.ome.zarr", vol, voxel_size_nm=10)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_ome_zarr(image, vol, voxel_size_nm=10)
    write_ome_zarr(image, vol[:4], voxel_size_nm=10, overwrite=True)
    with pytest.raises(ValueError, match="differs from the image"):
        write_ome_zarr(image, labels, voxel_size_nm=10, name="c", kind="labels")
    with pytest.raises(ValueError, match="integer or boolean"):
        write_ome_zarr(image, labels[:4].astype(np.float32), voxel_size_nm=10, name="c",
                       kind="labels")
    with pytest.raises(ValueError, match="negative values"):
        write_ome_zarr(image, labels[:4].astype(np.int32) - 1, voxel_size_nm=10, name="c",
                       kind="labels")
    assert not (image / "labels" / "c").exists()  # a refused label image leaves nothing
    with pytest.raises(ValueError, match="mask shape"):
        write_ome_zarr(tmp_path / "k", vol, voxel_size_nm=1, mask=labels[:2] > 0)
    with pytest.raises(ValueError, match="no channel axis"):
        write_ome_zarr(image, volume(labels[None], energies=[700.0], voxel_size=10.0),
                       name="c", kind="labels")
    with pytest.raises(ValueError, match="voxel_size_nm"):
        write_ome_zarr(tmp_path / "j", vol, voxel_size_nm=-1)
    with pytest.raises(ValueError, match="voxel_size_nm is required"):
        write_ome_zarr(tmp_path / "j", vol)
    with pytest.raises(ValueError, match="version"):
        write_ome_zarr(tmp_path / "j", vol, voxel_size_nm=1, version="0.3")
    with pytest.raises(ValueError, match="2-D"):
        write_ome_zarr(tmp_path / "j", vol[None, None], voxel_size_nm=1)


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_unnamed_and_int32_labels_are_valid(tmp_path, volume_and_labels, version):
    """Default (unnamed) label values and int32 instance labels (pores) validate with
    ome-zarr-models, ngff-zarr's strict schemas and open in napari; int32 -> uint32."""
    import zarr

    vol, labels = volume_and_labels
    image = write_ome_zarr(tmp_path / "i.ome.zarr", vol, voxel_size_nm=10, version=version)
    pores = labels.astype(np.int32) * 30_000
    write_ome_zarr(image, pores, voxel_size_nm=10, name="pores", kind="labels",
                   version=version)
    write_ome_zarr(image, labels > 0, voxel_size_nm=10, name="mask", kind="labels",
                   version=version)
    assert validate_image(image, version) == 2
    g = zarr.open_group(str(image / "labels" / "pores"), mode="r")
    assert g["0"].dtype == np.uint32
    np.testing.assert_array_equal(g["0"][...], pores)
    assert zarr.open_group(str(image / "labels" / "mask"), mode="r")["0"].dtype == np.uint8


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_spectral_volume_has_channel_axis(tmp_path, rng, version):
    """(energy, z, y, x) -> axes c, z, y, x; one OMERO channel per energy labelled in eV;
    channels are never averaged together."""
    import zarr

    data = (rng.random((3, 9, 20, 18)) + np.arange(3)[:, None, None, None]).astype(np.float32)
    da = volume(data, energies=[640.0, 642.5, 660.0], voxel_size=25.0, name="mu")
    image = write_ome_zarr(tmp_path / "mu.ome.zarr", da, name="mu", n_levels=2,
                           version=version)
    validate_image(image, version)
    g = zarr.open_group(str(image), mode="r")
    attrs = g.attrs["ome"] if version == "0.5" else g.attrs
    ms = attrs["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "z", "y", "x"]
    assert ms["axes"][0]["type"] == "channel"
    assert ms["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.0, 50.0, 50.0, 50.0]
    assert [c["label"] for c in attrs["omero"]["channels"]] == ["640 eV", "642.5 eV", "660 eV"]
    assert g["1"].shape == (3, 5, 10, 9)
    np.testing.assert_allclose(g["1"][2, 0, 0, 0], data[2, :2, :2, :2].mean(), rtol=1e-6)
    np.testing.assert_array_equal(g["0"][...], data)


def test_window_from_percentiles_inside_mask(tmp_path, rng):
    """Outliers outside the particle (the -1e5..2e5 TM/O of empty voxels) do not set the
    display window: it is the 1st..99th percentile inside the mask."""
    import zarr

    vol = rng.normal(0.4, 0.02, (16, 24, 24)).astype(np.float32)
    mask = np.zeros(vol.shape, bool)
    mask[4:12, 6:18, 6:18] = True
    vol[~mask] = rng.normal(0, 5e4, int((~mask).sum()))
    image = write_ome_zarr(tmp_path / "r.ome.zarr", vol, voxel_size_nm=10, mask=mask)
    window = zarr.open_group(str(image), mode="r").attrs["ome"]["omero"]["channels"][0][
        "window"]
    lo, hi = np.percentile(vol[mask], [1, 99])
    assert window["start"] == pytest.approx(lo, rel=1e-6)
    assert window["end"] == pytest.approx(hi, rel=1e-6)
    assert window["min"] == pytest.approx(float(vol.min()))
    assert window["max"] == pytest.approx(float(vol.max()))


def test_dask_input_written_in_slabs(tmp_path, rng):
    """A dask-backed DataArray (a store variable) is read slab by slab: same result."""
    import dask.array as dsk
    import zarr

    data = rng.random((21, 16, 16)).astype(np.float32)
    da = spatial_map(dsk.from_array(data, chunks=(5, 16, 16)), voxel_size=10.0, units="1",
                     name="m")
    image = write_ome_zarr(tmp_path / "d.ome.zarr", da, name="m", n_levels=3, chunks=(3, 8, 8))
    g = zarr.open_group(str(image), mode="r")
    ref = write_ome_zarr(tmp_path / "n.ome.zarr", data, voxel_size_nm=10, n_levels=3)
    for k in range(3):
        np.testing.assert_array_equal(g[str(k)][...], zarr.open_group(str(ref))[str(k)][...])
