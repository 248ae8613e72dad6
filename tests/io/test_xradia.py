"""Xradia .txrm/.xrm specifics: folders of 100 images, flip, energy fallbacks, bad files."""

from __future__ import annotations

import numpy as np
import olefile
import pytest
from _cfb import write_cfb
from _writers import make_truth, write_xradia, xradia_streams

import spectrotomo.io as sio
from spectrotomo import provenance, validate_tilt_series
from spectrotomo.io._xradia import energy_from_name, image_stream


def _t(**kw):
    t = make_truth(n_darks=0, n_flats=1, **kw)
    t["flats"] = t["flats"].astype("<f4")
    return t


def test_image_folders_hold_100_images(tmp_path):
    t = _t(n_angles=203, ny=2, nx=3)
    t["angles"] = np.arange(203, dtype=float) - 101
    path = write_xradia(tmp_path / "long.txrm", t)
    with olefile.OleFileIO(str(path)) as ole:
        assert ole.exists("ImageData2/Image200") and ole.exists("ImageData3/Image201")
    assert image_stream(99) == "ImageData1/Image100" and image_stream(100) == "ImageData2/Image101"
    ds = sio.read(path)
    np.testing.assert_array_equal(ds["projections"].values[0], t["projections"])
    np.testing.assert_array_equal(ds["angle"].values, t["angles"])


def test_flip_vertical_flips_projections_and_reference(tmp_path):
    t = _t()
    path = write_xradia(tmp_path / "a.txrm", t)
    ds = sio.read_xradia(path, flip_vertical=True)
    np.testing.assert_array_equal(ds["projections"].values[0], t["projections"][:, ::-1])
    np.testing.assert_array_equal(ds["flats"].values[0], t["flats"][:, ::-1])
    lazy = sio.read_xradia(path, flip_vertical=True, lazy=True)
    np.testing.assert_array_equal(lazy["projections"].values, ds["projections"].values)
    assert provenance(ds)[-1]["parameters"]["flip_vertical"] is True


def test_single_image_xrm(tmp_path):
    t = _t(n_angles=1)
    ds = sio.read(write_xradia(tmp_path / "single.xrm", t))
    assert ds["projections"].shape == (1, 1, *t["projections"].shape[1:])
    np.testing.assert_array_equal(ds["projections"].values[0], t["projections"])


def test_energy_from_motor_positions(tmp_path):
    t = _t(energy=853.25)
    path = write_xradia(tmp_path / "m.txrm", t, energy_stream=False, motors=True)
    ds = sio.read(path)
    assert ds["energy"].values.tolist() == [853.25]
    assert provenance(ds)[-1]["parameters"]["energy_source"] == "PositionInfo/MotorPositions"


@pytest.mark.parametrize("name, expected", [
    ("particle3_852.5eV.txrm", 852.5), ("Mn_L3_7p1keV_b.txrm", 7100.0),
    ("scan_640.txrm", 640.0), ("p2_tomo_0001.txrm", None), ("s_1_2.txrm", None),
    ("a_530_540.txrm", None)])
def test_energy_from_file_name(name, expected):
    assert energy_from_name(name) == expected


def test_energy_from_file_name_used_when_stream_and_motor_missing(tmp_path):
    path = write_xradia(tmp_path / "particle3_852.5eV.txrm", _t(), energy_stream=False)
    ds = sio.read(path)
    assert ds["energy"].values.tolist() == [852.5]
    assert provenance(ds)[-1]["parameters"]["energy_source"] == "file name"


def test_energy_override_when_missing_everywhere(tmp_path):
    path = write_xradia(tmp_path / "particle3.txrm", _t(), energy_stream=False)
    with pytest.raises(sio.ReaderError, match=r"particle3\.txrm.*ImageInfo/Energy.*energy="):
        sio.read(path)
    assert sio.read(path, energy=530.0)["energy"].values.tolist() == [530.0]


def test_energy_scan_at_one_angle_becomes_energy_axis(tmp_path):
    t = _t(n_angles=4)
    t["angles"] = np.zeros(4)
    t["energies"] = np.array([650.0, 640.0, 660.0, 645.0])
    ds = sio.read(write_xradia(tmp_path / "xanes.xrm", t))
    validate_tilt_series(ds)
    order = np.argsort(t["energies"])
    assert ds["projections"].shape == (4, 1, *t["projections"].shape[1:])
    np.testing.assert_array_equal(ds["energy"].values, t["energies"][order])
    np.testing.assert_array_equal(ds["projections"].values[:, 0], t["projections"][order])
    np.testing.assert_array_equal(ds["flats"].values[2, 0], t["flats"][0])


def test_varying_energy_and_angle_is_rejected(tmp_path):
    t = _t(n_angles=3)
    t["energies"] = np.array([640.0, 650.0, 660.0])
    with pytest.raises(sio.ReaderError, match=r"ImageInfo/Energy.*one energy per file"):
        sio.read(write_xradia(tmp_path / "mixed.txrm", t))


def test_unknown_data_type_code(tmp_path):
    path = write_xradia(tmp_path / "weird.txrm", _t(), data_type=7)
    with pytest.raises(sio.ReaderError, match=r"weird\.txrm.*ImageInfo/DataType.*5 uint16.*got 7"):
        sio.read(path)


def test_short_image_stream_names_stream(tmp_path):
    streams = xradia_streams(_t())
    streams["ImageData1/Image2"] = streams["ImageData1/Image2"][:-2]
    write_cfb(tmp_path / "short.txrm", streams)
    with pytest.raises(sio.ReaderError, match=r"short\.txrm.*ImageData1/Image2.*84 bytes"):
        sio.read(tmp_path / "short.txrm")


def test_missing_image_stream(tmp_path):
    streams = xradia_streams(_t())
    del streams["ImageData1/Image5"]
    write_cfb(tmp_path / "gap.txrm", streams)
    with pytest.raises(sio.ReaderError, match=r"gap\.txrm.*ImageData1/Image5"):
        sio.read(tmp_path / "gap.txrm")


def test_angle_count_differs_from_image_count(tmp_path):
    streams = xradia_streams(_t())
    streams["ImageInfo/Angles"] = np.zeros(3, "<f4").tobytes()
    write_cfb(tmp_path / "few.txrm", streams)
    with pytest.raises(sio.ReaderError, match=r"few\.txrm.*ImageInfo/Angles.*5.*got 3"):
        sio.read(tmp_path / "few.txrm")


def test_corrupt_ole_file(tmp_path):
    path = tmp_path / "broken.txrm"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x07" * 3000)
    with pytest.raises(sio.ReaderError, match=r"broken\.txrm.*OLE2"):
        sio.read(path)


def test_energy_scan_with_a_pixel_size_per_image(tmp_path):
    t = _t(n_angles=3)
    t["angles"] = np.zeros(3)
    t["energies"] = np.array([650.0, 640.0, 660.0])
    t["pixel_sizes"] = np.array([15.625, 15.5, 15.75])  # nm, follows the images
    ds = sio.read(write_xradia(tmp_path / "xanes.xrm", t))
    validate_tilt_series(ds)
    np.testing.assert_allclose(ds["pixel_size_energy"].values, [15.5, 15.625, 15.75], rtol=1e-6)
    assert ds.attrs["pixel_size"] == pytest.approx(15.5, rel=1e-6)
    t["pixel_sizes"] = np.full(3, 15.625)  # one repeated value: no per-energy information
    assert "pixel_size_energy" not in sio.read(write_xradia(tmp_path / "b.xrm", t)).coords


# --------------------------------------------------------------------------- #
# the streams real Zeiss files carry (version, ImagesTaken, reference ImageInfo)
# --------------------------------------------------------------------------- #
def test_version_and_software_streams_reach_attrs(tmp_path):
    ds = sio.read(write_xradia(tmp_path / "v5.txrm", _t(), version=5.0))
    assert ds.attrs["xradia_version"] == 5.0 and ds.attrs["xradia_software"] == "16.1.14271"
    assert provenance(ds)[-1]["parameters"]["images_taken"] == 5
    minimal = sio.read(write_xradia(tmp_path / "old.txrm", _t(), version=None))
    assert "xradia_version" not in minimal.attrs  # files without them still read


def test_images_taken_of_an_aborted_scan(tmp_path):
    t = _t(n_angles=6)
    path = write_xradia(tmp_path / "aborted.txrm", t, images_taken=4)
    ds = sio.read(path)
    assert ds.sizes["angle"] == 4
    np.testing.assert_array_equal(ds["projections"].values[0], t["projections"][:4])
    np.testing.assert_array_equal(ds["angle"].values, t["angles"][:4])
    assert provenance(ds)[-1]["parameters"]["images_planned"] == 6
    streams = xradia_streams(t)
    streams["ImageInfo/ImagesTaken"] = np.uint32(9).tobytes()
    write_cfb(tmp_path / "more.txrm", streams)
    with pytest.raises(sio.ReaderError, match=r"more\.txrm.*ImagesTaken.*1\.\.6.*got 9"):
        sio.read(tmp_path / "more.txrm")


def test_reference_of_another_size_is_refused(tmp_path):
    streams = xradia_streams(_t())
    streams["ReferenceData/ImageInfo/ImageWidth"] = np.int32(3).tobytes()
    write_cfb(tmp_path / "binned.txrm", streams)
    with pytest.raises(sio.ReaderError, match=r"binned\.txrm.*ReferenceData/ImageInfo/ImageWidth"
                                              r".*7 x 6.*got 3 x 6"):
        sio.read(tmp_path / "binned.txrm")


@pytest.mark.parametrize("version", [3.0, 5.0])
def test_reference_scaled_to_the_image_exposure(tmp_path, version):
    t = _t()
    exposures = np.array([2.0, 2.5, 3.0, 2.5, 2.0])  # the image nearest 0 deg: 3.0 s
    path = write_xradia(tmp_path / "exp.txrm", t, version=version, exposures=exposures,
                        reference_exposure=1.5)
    ds = sio.read(path)
    np.testing.assert_allclose(ds["flats"].values[0, 0], t["flats"][0] * 2.0, rtol=1e-6)
    assert provenance(ds)[-1]["parameters"]["reference_exposure_scale"] == [2.0]


def test_energy_scan_scales_the_reference_per_image(tmp_path):
    t = _t(n_angles=3)
    t["angles"] = np.zeros(3)
    t["energies"] = np.array([650.0, 640.0, 660.0])
    ds = sio.read(write_xradia(tmp_path / "x.xrm", t, exposures=[1.0, 2.0, 4.0],
                               reference_exposure=2.0))
    for k, scale in enumerate((1.0, 0.5, 2.0)):  # sorted energies 640, 650, 660
        np.testing.assert_allclose(ds["flats"].values[k, 0], t["flats"][0] * scale, rtol=1e-6)


@pytest.mark.parametrize("version", [3.0, 5.0])
def test_agrees_with_txrm2tiff(tmp_path, version):
    """The same file read by txrm2tiff (Diamond B24's converter), when installed."""
    txrm_main = pytest.importorskip("txrm2tiff.txrm.main")
    t = _t(n_angles=7, energy=8350.0)
    t["angles"] = np.linspace(-60.0, 60.0, 7)
    exposures = np.linspace(1.0, 1.6, 7)
    path = write_xradia(tmp_path / "tomo.txrm", t, version=version, exposures=exposures,
                        reference_exposure=1.2)
    ours = sio.read(path)
    with txrm_main.open_txrm(path, strict=True) as peer:
        assert int(peer.version) == int(version)
        np.testing.assert_array_equal(peer.get_images(), ours["projections"].values[0])
        np.testing.assert_allclose(peer.image_info["Angles"], ours["angle"].values, rtol=1e-6)
        np.testing.assert_allclose(peer.energies, ours["energy"].values[0], rtol=1e-6)
        np.testing.assert_allclose(peer.image_info["PixelSize"][0] * 1e3,
                                   ours.attrs["pixel_size"], rtol=1e-6)
        peer.apply_reference(compensate_exposure=True)  # images * 100 / scaled reference
        referenced = peer.get_output(flip=True)  # flip=True keeps the stored row order
    ratio = ours["projections"].values[0] * 100.0 / ours["flats"].values[0, 0]
    np.testing.assert_allclose(referenced, ratio, rtol=1e-5)
