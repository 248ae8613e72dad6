"""Validate exported OME-Zarr images with peers: ome-zarr-models, ngff-zarr (JSON
schemas, strict) and napari's ViewerModel (skipped where a peer is missing)."""

import importlib.util
import warnings

import numpy as np


def _ome_attrs(group, version):
    return dict(group.attrs["ome"]) if version == "0.5" else dict(group.attrs)


def validate_image(path, version="0.5"):
    """Validate one OME-Zarr image and every label image under it; return the
    number of label images checked."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    attrs = _ome_attrs(group, version)
    labels = []
    if "labels" in group:
        labels = _ome_attrs(group["labels"], version)["labels"]
    _models(path, labels, version)
    _ngff_zarr(path, attrs, labels, version)
    _napari(path, attrs, labels)
    return len(labels)


def _models(path, labels, version):
    import zarr

    if importlib.util.find_spec("ome_zarr_models") is None:
        return
    mod = "v05" if version == "0.5" else "v04"
    image_mod = __import__(f"ome_zarr_models.{mod}.image", fromlist=["Image"])
    label_mod = __import__(f"ome_zarr_models.{mod}.image_label", fromlist=["ImageLabel"])
    image_mod.Image.from_zarr(zarr.open_group(str(path), mode="r"))
    for name in labels:
        label_mod.ImageLabel.from_zarr(zarr.open_group(str(path / "labels" / name), mode="r"))


def _ngff_zarr(path, attrs, labels, version):
    import zarr

    if importlib.util.find_spec("ngff_zarr") is None:
        return
    import ngff_zarr

    wrapped = {"ome": attrs} if version == "0.5" else attrs
    ngff_zarr.validate(wrapped, version=version, model="image", strict=True)
    ms = ngff_zarr.from_ngff_zarr(str(path), validate=True)
    assert ms.images[0].data.shape == zarr.open_group(str(path), mode="r")["0"].shape
    for name in labels:
        group = zarr.open_group(str(path / "labels" / name), mode="r")
        label_attrs = _ome_attrs(group, version)
        wrapped = {"ome": label_attrs} if version == "0.5" else label_attrs
        ngff_zarr.validate(wrapped, version=version, model="label", strict=True)


def _napari(path, attrs, labels):
    """Open the image (and labels) as napari layers through napari-ome-zarr."""
    if importlib.util.find_spec("napari") is None or \
            importlib.util.find_spec("napari_ome_zarr") is None:
        return
    with warnings.catch_warnings():
        # napari 0.9 still declares pydantic v1-style json_encoders (its own deprecation)
        warnings.simplefilter("ignore", DeprecationWarning)
        from napari.components import ViewerModel
        from napari_ome_zarr import napari_get_reader

    reader = napari_get_reader(str(path))
    assert reader is not None, f"napari-ome-zarr does not read {path}"
    viewer = ViewerModel()
    layers = []
    with warnings.catch_warnings():
        # napari-ome-zarr hands napari a label colour dict without a default entry
        # (napari: "Missing keys will be transparent"), as it does for any file
        warnings.filterwarnings("ignore", "color_dict did not provide", UserWarning)
        for data, meta, kind in reader(str(path)):
            added = getattr(viewer, f"add_{kind}")(data, **meta)  # a list for channels
            layers += added if isinstance(added, list) else [added]
    n_channels = len(attrs["omero"]["channels"])
    images = [ly for ly in layers if ly._type_string == "image"]
    assert len(images) == n_channels, (path, [ly.name for ly in layers])
    window = attrs["omero"]["channels"][0]["window"]
    np.testing.assert_allclose(images[0].contrast_limits, [window["start"], window["end"]],
                               rtol=1e-5)
    assert len([ly for ly in layers if ly._type_string == "labels"]) == len(labels)
