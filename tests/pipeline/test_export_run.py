"""A whole pipeline run exported: `[output] ome_zarr = true` and `spectrotomo export`
give OME-Zarr images and labels that ome-zarr-models, ngff-zarr and napari accept."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from spectrotomo import io
from spectrotomo.cli import main

_spec = importlib.util.spec_from_file_location(
    "_ome_validate", Path(__file__).parents[1] / "io" / "_ome_validate.py")
_validate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_validate)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-run")
    config = root / "run.toml"
    config.write_text(f'[input]\npath = "simulate:small"\n[output]\nstore = "{root / "s.zarr"}"\n'
                      'figures = false\nome_zarr = true\n[preprocess]\nalign = false\n')
    assert main(["run", str(config), "--report-dir", str(root / "report")]) == 0
    return root


def _images(out: Path) -> list[Path]:
    index = json.loads((out / "index.json").read_text())
    return sorted({Path(e.get("image", e["path"])) for e in index["files"]})


def test_run_exports_every_map_and_label(run_dir):
    out = run_dir / "s-ome"
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    assert summary["ome_zarr"] == str(out)
    index = json.loads((out / "index.json").read_text())
    got = {(e["group"], e["variable"]): e["kind"] for e in index["files"]}
    for key in [("recon", "mu"), ("chemistry", "tm_o_ratio"), ("chemistry", "amount"),
                ("valence", "valence"), ("segmentation", "tm_o_ratio_smoothed")]:
        assert got[key] == "image", key
    for name in ("composition_class", "shell", "pores", "cracks", "mask"):
        assert got[("segmentation", name)] == "labels", name
    assert not any(g in ("raw", "od", "raw_xanes", "references") for g, _ in got)
    n_labels = sum(_validate.validate_image(p, "0.5") for p in _images(out))
    assert n_labels == sum(kind == "labels" for kind in got.values())


def test_window_is_the_particle_percentiles(run_dir):
    """The TM/O window of the export is 1-99 % inside the mask, not the outliers'
    range outside it."""
    import zarr

    store = run_dir / "s.zarr"
    ratio = io.read_group(store, "chemistry")["tm_o_ratio"].values.astype(np.float32)
    mask = io.read_group(store, "segmentation")["mask"].values
    g = zarr.open_group(str(run_dir / "s-ome" / "chemistry" / "tm_o_ratio.ome.zarr"), mode="r")
    window = g.attrs["ome"]["omero"]["channels"][0]["window"]
    inside = ratio[mask & np.isfinite(ratio)]
    np.testing.assert_allclose([window["start"], window["end"]],
                               np.percentile(inside, [1, 99]), rtol=1e-5)
    assert window["end"] - window["start"] < 0.01 * (window["max"] - window["min"])


def test_cli_export_v04_and_tiff(run_dir, capsys):
    store, out = run_dir / "s.zarr", run_dir / "v04"
    assert main(["export", str(store), str(out), "--ome-version", "0.4",
                 "--groups", "segmentation", "recon"]) == 0
    assert "labels  segmentation/composition_class" in capsys.readouterr().out
    for path in _images(out):
        _validate.validate_image(path, "0.4")
    assert main(["export", str(store), str(out), "--groups", "segmentation"]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main(["export", str(store), str(run_dir / "tif"), "--format", "tiff",
                 "--groups", "chemistry"]) == 0
    import tifffile

    with tifffile.TiffFile(run_dir / "tif" / "chemistry" / "amount.tif") as tif:
        assert tif.series[0].shape == (64, 4, 64, 64)
        assert tif.imagej_metadata["spacing"] == pytest.approx(
            io.read_group(store, "chemistry").attrs["pixel_size"])
    assert main(["export", str(store), str(run_dir / "x"), "--groups", "nope"]) == 2


def test_class_labels_carry_the_legend_names_and_colours(run_dir):
    """The segment step writes the class image's CF flags (values, meanings, colours)
    and the export draws the labels with them, as the report's figures do."""
    from spectrotomo.segmentation import CLASS_LEGEND

    index = json.loads((run_dir / "s-ome" / "index.json").read_text())
    entry = next(e for e in index["files"]
                 if (e["group"], e["variable"]) == ("segmentation", "composition_class"))
    zattrs = json.loads((Path(entry["path"]) / "zarr.json").read_text())["attributes"]
    label = zattrs["ome"]["image-label"]
    rgba = {c["label-value"]: c["rgba"][:3] for c in label["colors"]}
    names = {p["label-value"]: p.get("name") for p in label["properties"]}
    for value, (name, colour) in CLASS_LEGEND.items():
        assert rgba[value] == [int(colour[i:i + 2], 16) for i in (1, 3, 5)], value
        if value:
            assert names[value] == name
