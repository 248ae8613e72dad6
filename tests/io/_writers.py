"""Writers of tiny files in every supported format, with known content.

Each ``write_<format>(tmp_path, truth, **variant)`` writes ``truth`` (see
:func:`make_truth`) in that format's own units and returns the path; the
readers must give ``truth`` back exactly (values) or to float64 rounding
(unit conversions).
"""

from __future__ import annotations

import json

import numpy as np

from _cfb import write_cfb

EV_PER_J = 1.0 / 1.602176634e-19


def make_truth(*, n_angles=5, ny=6, nx=7, n_flats=2, n_darks=3, energy=8350.0,
               pixel_size=15.625, dtype="<u2", seed=0):
    """Tilt-series content: frames differ in every pixel (catches transposes/flips)."""
    rng = np.random.default_rng(seed)
    hi = 60000 if np.dtype(dtype).kind == "u" else 1.0

    def frames(n):
        return (rng.random((n, ny, nx)) * hi).astype(dtype)

    return {
        "projections": frames(n_angles),
        "flats": frames(n_flats),
        "darks": frames(n_darks),
        "angles": np.linspace(-60.0, 60.0, n_angles),  # exact in float32
        "energy": float(energy),
        "pixel_size": float(pixel_size),  # 2**-6 um: exact in float32
    }


# --------------------------------------------------------------------------- #
# HDF5 formats
# --------------------------------------------------------------------------- #
def write_dxchange(path, t, *, axes=None, energy_units=None, theta_rad=False,
                   with_energy=True, theta=None):
    import h5py

    with h5py.File(path, "w") as fh:
        for name, key in (("data", "projections"), ("data_white", "flats"),
                          ("data_dark", "darks")):
            frames = t[key].transpose(1, 0, 2) if axes == "y:theta:x" else t[key]
            d = fh.create_dataset(f"exchange/{name}", data=frames)
            if axes:  # the spec's labels for reference stacks
                d.attrs["axes"] = axes.replace("theta", {"data": "theta",
                                                         "data_white": "theta_flat",
                                                         "data_dark": "theta_dark"}[name])
        angles = t["angles"] if theta is None else theta
        th = fh.create_dataset("exchange/theta", data=np.deg2rad(angles) if theta_rad else angles)
        th.attrs["units"] = "rad" if theta_rad else "deg"
        if with_energy:
            if energy_units is None:  # spec default: joules, no attribute
                fh["measurement/instrument/monochromator/energy"] = t["energy"] / EV_PER_J
            else:
                factor = {"keV": 1e-3, "eV": 1.0}[energy_units]
                e = fh.create_dataset("measurement/instrument/monochromator/energy",
                                      data=t["energy"] * factor)
                e.attrs["units"] = energy_units
        px = fh.create_dataset("measurement/instrument/detector/actual_pixel_size_x",
                               data=t["pixel_size"] * 1e-3)
        px.attrs["units"] = "um"
    return path


#: A camera pixel (6.5 um) and the optics' magnification onto it: a sample-plane
#: pixel of 15.625 nm would need 416x; the writers record both alongside.
CAMERA_PIXEL_M = 6.5e-6


def _nx_entry(group, t, *, layout, energy_kev=True, distance=None, rotation=None,
              with_energy=True, pixel="sample"):
    """Frames ordered dark, flat, projections, invalid, alignment; keys accordingly.

    ``pixel``: ``"sample"`` (``sample/x_pixel_size`` and the camera's
    ``instrument/detector/x_pixel_size``), ``"magnification"`` (camera pixel +
    ``instrument/detector/magnification``) or ``"detector"`` (camera pixel only).
    """
    junk = np.full((1, *t["projections"].shape[1:]), 7, t["projections"].dtype)
    frames = np.concatenate([t["darks"], t["flats"][:1], t["projections"], junk, junk,
                             t["flats"][1:]])
    keys = np.concatenate([np.full(len(t["darks"]), 2), [1], np.zeros(len(t["projections"])),
                           [3], [0], np.ones(len(t["flats"]) - 1)]).astype(np.int32)
    control = keys.copy()
    control[len(t["darks"]) + 1 + len(t["projections"]) + 1] = -1  # alignment frame
    angles = np.concatenate([np.zeros(len(t["darks"]) + 1), t["angles"], [0, 0],
                             np.zeros(len(t["flats"]) - 1)])
    group.attrs["NX_class"] = "NXentry"
    group["definition"] = "NXtomo"
    det = "instrument/detector" if layout == "esrf" else "data"
    group[f"{det}/data"] = frames
    group["instrument/detector/image_key"] = np.where(control == -1, 0, keys)
    if layout == "esrf":
        group["instrument/detector/image_key_control"] = control
        rot = group.create_dataset("sample/rotation_angle",
                                   data=angles if rotation is None else rotation)
    else:  # DLS keeps no image_key_control: mark the alignment frame invalid instead
        group["instrument/detector/image_key"][...] = np.where(control == -1, 3, keys)
        rot = group.create_dataset("sample/rotation_angle",
                                   data=angles if rotation is None else rotation)
    rot.attrs["units"] = "degree"
    cam = group.create_dataset("instrument/detector/x_pixel_size", data=CAMERA_PIXEL_M)
    cam.attrs["units"] = "m"
    if pixel == "sample":
        px = group.create_dataset("sample/x_pixel_size", data=t["pixel_size"] * 1e-9)
        px.attrs["units"] = "m"
    elif pixel == "magnification":
        group["instrument/detector/magnification"] = CAMERA_PIXEL_M / (t["pixel_size"] * 1e-9)
    if with_energy:
        path = "instrument/beam/incident_energy" if layout == "esrf" else \
            "instrument/monochromator/energy"
        e = group.create_dataset(path, data=t["energy"] / (1e3 if energy_kev else 1.0))
        e.attrs["units"] = "keV" if energy_kev else "eV"
    if distance is not None:
        d = group.create_dataset("sample/propagation_distance", data=distance * 1e3)
        d.attrs["units"] = "mm"


def write_nxtomo(path, t, *, layout="esrf", entries=None, **kw):
    """``entries``: list of (name, truth, extra kwargs) for several entries."""
    import h5py

    with h5py.File(path, "w") as fh:
        if entries is None:
            name = "entry0000" if layout == "esrf" else "entry1/tomo_entry"
            entries = [(name, t, kw)]
        for name, truth, extra in entries:
            _nx_entry(fh.require_group(name), truth, layout=layout, **extra)
    return path


def write_fxi(path, t, *, pixel_text=True, with_energy=True):
    import h5py

    with h5py.File(path, "w") as fh:
        fh["img_tomo"] = t["projections"]
        fh["img_bkg"] = t["flats"]
        fh["img_dark"] = t["darks"]
        fh["angle"] = t["angles"]
        if with_energy:
            fh["X_eng"] = t["energy"] / 1e3
        if pixel_text:
            fh["Pixel Size"] = f"{t['pixel_size']}nm"
        else:
            fh["Pixel Size"] = t["pixel_size"]
    return path


# --------------------------------------------------------------------------- #
# Xradia (OLE2)
# --------------------------------------------------------------------------- #
DTYPE_CODES = {np.dtype("<u2"): 5, np.dtype("<f4"): 10}


def _zeiss_streams(n, ny, nx, *, version, exposures, reference_exposure):
    """Streams real Zeiss files carry beside the images (layout as read by txrm2tiff):
    version information, images taken, per-image exposures and dates, mosaic
    fields, and (version 5) the reference's own ImageInfo."""
    streams = {
        "Version": np.float32(version).tobytes(),
        "exeVersion": b"16.1.14271\x00",
        "ImageInfo/ImagesTaken": np.uint32(n).tobytes(),
        "ImageInfo/ExpTimes": np.asarray(exposures, "<f4").tobytes(),
        "ImageInfo/Date": b"".join(b"12/03/2026 10:%02d:00.00\x00" % (i % 60) for i in range(n)),
        "ImageInfo/MosiacColumns": np.int32(0).tobytes(),
        "ImageInfo/MosiacRows": np.int32(0).tobytes(),
        "ImageInfo/MosiacMode": np.int32(0).tobytes(),
        "ImageInfo/CamPixelSize": np.float32(13.5).tobytes(),
        "ImageInfo/ObjectiveName": b"ZP 25 nm\x00",
    }
    if version >= 5:
        streams.update({
            "ReferenceData/ImageInfo/ImageWidth": np.int32(nx).tobytes(),
            "ReferenceData/ImageInfo/ImageHeight": np.int32(ny).tobytes(),
            "ReferenceData/ImageInfo/DataType": np.int32(10).tobytes(),
            "ReferenceData/ImageInfo/ExpTimes": np.float32(reference_exposure).tobytes(),
        })
    else:
        streams["ReferenceData/ExpTime"] = np.float32(reference_exposure).tobytes()
    return streams


def xradia_streams(t, *, data_type=None, energy_stream=True, motors=False, version=5.0,
                   exposures=1.0, reference_exposure=None, images_taken=None):
    """Streams of an Xradia file holding ``t``; ``version=None`` gives the minimal
    layout (image streams and ImageInfo sizes only), else the streams real Zeiss
    files carry (:func:`_zeiss_streams`). ``images_taken`` < n: an aborted scan
    (NoOfImages says n, only the first images exist)."""
    proj = t["projections"]
    n, ny, nx = proj.shape
    code = DTYPE_CODES[proj.dtype] if data_type is None else data_type
    energies = t.get("energies", np.full(n, t["energy"]))
    streams = {
        "ImageInfo/NoOfImages": np.uint32(n).tobytes(),
        "ImageInfo/ImageWidth": np.uint32(nx).tobytes(),
        "ImageInfo/ImageHeight": np.uint32(ny).tobytes(),
        "ImageInfo/DataType": np.uint32(code).tobytes(),
        # one value per file, or per image where t gives "pixel_sizes" (nm)
        "ImageInfo/PixelSize": (np.asarray(t.get("pixel_sizes", t["pixel_size"]), float)
                                / 1e3).astype("<f4").tobytes(),
        "ImageInfo/Angles": np.asarray(t["angles"], "<f4").tobytes(),
        "ImageInfo/Energy": (np.asarray(energies, "<f4") if energy_stream
                             else np.zeros(n, "<f4")).tobytes(),
        "ReferenceData/Image": t["flats"][0].astype("<f4").tobytes(),
        "ReferenceData/DataType": np.uint32(10).tobytes(),
    }
    if version is not None:
        exposures = np.broadcast_to(np.asarray(exposures, float), (n,))
        streams.update(_zeiss_streams(n, ny, nx, version=version, exposures=exposures,
                                      reference_exposure=(exposures[0] if reference_exposure
                                                          is None else reference_exposure)))
    if motors:
        names = ["Sample X", "Sample Y", "Energy", "Detector Z"]
        streams["PositionInfo/AxisNames"] = "\x00".join(names).encode() + b"\x00"
        streams["PositionInfo/AxisUnits"] = b"um\x00um\x00eV\x00um\x00"
        streams["PositionInfo/TotalAxis"] = np.int32(len(names)).tobytes()
        pos = np.zeros((n, len(names)), "<f4")
        pos[:, 2] = energies
        streams["PositionInfo/MotorPositions"] = pos.tobytes()
    if images_taken is not None:
        streams["ImageInfo/ImagesTaken"] = np.uint32(images_taken).tobytes()
        n = images_taken
    for i in range(n):
        streams[f"ImageData{i // 100 + 1}/Image{i + 1}"] = proj[i].tobytes()
    return streams


def write_xradia(path, t, **kw):
    write_cfb(path, xradia_streams(t, **kw))
    return path


# --------------------------------------------------------------------------- #
# TIFF
# --------------------------------------------------------------------------- #
def write_tiff_multipage(path, t, *, toml=False):
    import tifffile

    tifffile.imwrite(path, t["projections"], photometric="minisblack")
    tifffile.imwrite(path.with_name("flats.tif"), t["flats"], photometric="minisblack")
    tifffile.imwrite(path.with_name("darks.tif"), t["darks"], photometric="minisblack")
    meta = {"angles": t["angles"].tolist(), "energy": t["energy"] / 1e3, "energy_units": "keV",
            "pixel_size": t["pixel_size"] * 1e-3, "pixel_size_units": "um",
            "flats": "flats.tif", "darks": "darks.tif"}
    if toml:
        lines = [f"angles = {meta['angles']}", f"energy = {meta['energy']}",
                 'energy_units = "keV"', f"pixel_size = {meta['pixel_size']}",
                 'pixel_size_units = "um"', 'flats = "flats.tif"', 'darks = "darks.tif"']
        path.with_suffix(".toml").write_text("\n".join(lines) + "\n")
    else:
        path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def write_tiff_folder(folder, t):
    import tifffile

    folder.mkdir()
    # Names that sort wrongly as plain strings: natural order must be used.
    for i, frame in enumerate(t["projections"]):
        tifffile.imwrite(folder / f"proj_{i}.tif", frame, photometric="minisblack")
    flats = []
    for i, frame in enumerate(t["flats"]):
        tifffile.imwrite(folder / f"flat_{i}.tif", frame, photometric="minisblack")
        flats.append(f"flat_{i}.tif")
    tifffile.imwrite(folder / "dark.tif", t["darks"], photometric="minisblack")
    meta = {"angles": t["angles"].tolist(), "energy": t["energy"],
            "pixel_size": t["pixel_size"], "flats": flats, "darks": "dark.tif"}
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder
