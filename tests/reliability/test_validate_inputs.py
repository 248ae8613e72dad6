"""Bad inputs are refused at plan time, before anything is written, with one
ConfigError naming the file or key, the value and what is expected; what a
user may mean warns into run.log (see pipeline/_validate.py for the limits)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _validate_inputs import FORMATS, plausible, write

from spectrotomo import io, tilt_series
from spectrotomo.pipeline import ConfigError, run_pipeline
from spectrotomo.pipeline._config import config_from_dict

TOMO = ["acquire", "preprocess", "reconstruct"]
HDF5_AND_TIFF = ["dxchange", "nxtomo", "tiff-folder"]


def _config(tmp_path, path, **sections):
    data = {"input": {"path": str(path)}, "output": {"store": str(tmp_path / "s.zarr")}}
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data)


def refused(tmp_path, path, match, *, steps=TOMO, **sections) -> ConfigError:
    """The run refuses with ``match`` and leaves neither a store nor a report."""
    cfg = _config(tmp_path, path, **sections)
    with pytest.raises(ConfigError, match=match) as info:
        run_pipeline(cfg, steps=steps, report_dir=tmp_path / "rep", log=lambda m: None)
    assert not (tmp_path / "s.zarr").exists()
    assert not (tmp_path / "rep").exists()
    return info.value


def warned(tmp_path, path, match, *, steps=TOMO, **sections) -> list[str]:
    """A dry run that passes validation and warns ``match`` (also into its log)."""
    lines = []
    result = run_pipeline(_config(tmp_path, path, **sections), steps=steps, dry_run=True,
                          log=lines.append)
    assert any(__import__("re").search(match, w) for w in result["warnings"]), result["warnings"]
    assert any("warning:" in line and __import__("re").search(match, line) for line in lines)
    return result["warnings"]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_plausible_file_passes(tmp_path, fmt):
    path = write(fmt, tmp_path / "in", plausible())
    result = run_pipeline(_config(tmp_path, path), steps=TOMO, dry_run=True, log=lambda m: None)
    assert result["warnings"] == []


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_too_few_angles(tmp_path, fmt):
    path = write(fmt, tmp_path / "in", plausible(n_angles=10))
    refused(tmp_path, path, r"10 angles over 130 deg; a tomogram needs at least 20 angles "
                            r"spanning at least 60 deg")


@pytest.mark.parametrize("fmt", ["dxchange", "tiff-multipage"])
def test_too_small_angular_range(tmp_path, fmt):
    path = write(fmt, tmp_path / "in", plausible(span_deg=30.0))
    refused(tmp_path, path, r"40 angles over 30 deg")


def test_one_projection_per_energy_is_refused(tmp_path):
    path = write("dxchange", tmp_path / "in", plausible(n_angles=1))
    refused(tmp_path, path, r"1 angles over 0 deg")


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_all_zero_frame(tmp_path, fmt):
    t = plausible()
    t["projections"][7] = 0
    path = write(fmt, tmp_path / "in", t)
    refused(tmp_path, path, r"1 all-zero frame\(s\) \(energy 8350 eV, angle -41\.6667 deg\)")


@pytest.mark.parametrize("fmt", HDF5_AND_TIFF)
def test_saturated_frame(tmp_path, fmt):
    t = plausible()
    t["projections"][0] = 65535
    path = write(fmt, tmp_path / "in", t)
    refused(tmp_path, path, r"1 saturated frame\(s\) \(energy 8350 eV, angle -65 deg.*65535")


def test_some_saturated_pixels_warn(tmp_path):
    t = plausible()
    t["projections"][0, :2] = 65535  # 2 of 8 rows of one frame
    path = write("dxchange", tmp_path / "in", t)
    warned(tmp_path, path, r"25\.0% of a frame's pixels at the detector maximum")


@pytest.mark.parametrize("fmt", HDF5_AND_TIFF)
def test_flats_not_brighter_than_darks(tmp_path, fmt):
    t = plausible()
    t["flats"], t["darks"] = t["darks"], t["flats"]
    path = write(fmt, tmp_path / "in", t)
    refused(tmp_path, path, r"flats are not brighter than darks at energies \[8350\] eV")


@pytest.mark.parametrize("fmt", ["dxchange", "xradia"])
def test_many_non_positive_counts(tmp_path, fmt):
    t = plausible()
    t["projections"][:, :4] = 0 if fmt == "xradia" else 90  # half the pixels at/below dark
    t["projections"][:, 4:, 0] = 7  # keep frames non-zero
    path = write(fmt, tmp_path / "in", t)
    refused(tmp_path, path, r"5\d\.\d% of counts are non-positive \(after dark subtraction\); "
                            r"expected at most 20%")


def test_few_non_positive_counts_warn(tmp_path):
    t = plausible()
    t["projections"][:4, 0] = 50  # 4 rows of 40 frames: 1.25 %
    path = write("dxchange", tmp_path / "in", t)
    warned(tmp_path, path, r"1\.2% of counts are non-positive after dark subtraction")


def test_nan_counts_are_counted_into_run_log(tmp_path):
    t = plausible()
    t["projections"] = t["projections"].astype(np.float32)
    t["projections"][3, 2, 2] = np.nan
    t["projections"][5, 1, :3] = np.inf
    path = write("tiff-folder", tmp_path / "in", t)
    lines = []
    result = run_pipeline(_config(tmp_path, path), steps=["acquire"],
                          report_dir=tmp_path / "rep", log=lines.append)
    assert any("NaN/Inf counts {'projections': 4}" in w for w in result["warnings"])
    assert "NaN/Inf counts {'projections': 4}" in (tmp_path / "rep" / "run.log").read_text()


@pytest.mark.parametrize("fmt", ["nxtomo", "tiff-folder"])
def test_repeated_angles(tmp_path, fmt):
    t = plausible()
    t["angles"][5] = t["angles"][4]
    path = write(fmt, tmp_path / "in", t)
    refused(tmp_path, path, r"cannot read the input: .*'angle'.* must be free of duplicates")


@pytest.mark.parametrize("energies, match", [
    ([8.35], r"energies \[8\.35\] eV are outside the soft/hard X-ray range 100-100000 eV "
             r"\(these look like keV"),
    ([2.0e6], r"energies \[2e\+06\] eV are outside the soft/hard X-ray range"),
    ([30.0], r"energies \[30\] eV are outside .* \(these look like keV"),
])
def test_energies_outside_the_xray_range(tmp_path, energies, match):
    path = write("dxchange", tmp_path / "in", plausible())
    refused(tmp_path, path, match, input={"energies_ev": energies})


def test_energies_not_covering_the_requested_edges(tmp_path):
    path = write("dxchange", tmp_path / "in", plausible())
    refused(tmp_path, path, r"\[spectra\] elements = \['O', 'Mn'\]: the energies of .*scan\.h5 "
                            r"\(\[8350\] eV\) do not cover the edge of \['O', 'Mn'\]; expected "
                            r"two energies around each edge \(O 520-560 eV, Mn 630-670 eV\)",
            steps=["acquire", "preprocess", "reconstruct", "quantify"],
            spectra={"elements": ["O", "Mn"]})


def test_energy_count_override_mismatch(tmp_path):
    path = write("dxchange", tmp_path / "in", plausible())
    refused(tmp_path, path, r"\[input\] path = .*scan\.h5.*cannot read the input.*energ",
            input={"energies_ev": [640.0, 655.0]})


def test_center_outside_the_detector(tmp_path):
    path = write("tiff-multipage", tmp_path / "in", plausible())
    refused(tmp_path, path, r"\[preprocess\] center = 50 is outside the detector of .*scan\.tif; "
                            r"expected \"auto\" or a column index within \[-0\.5, 7\.5\] "
                            r"\(8 columns\)", preprocess={"center": 50.0})


def test_missing_input_file(tmp_path):
    refused(tmp_path, tmp_path / "nope.h5", r"\[input\] path = .*nope\.h5.*no such file")


def test_garbage_input_file(tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    exc = refused(tmp_path, path, r"\[input\] path = .*garbage\.h5.*cannot read the input")
    assert isinstance(exc, io.ReaderError)  # the reader's refusal keeps its type too


def test_radian_angles_in_a_sidecar(tmp_path):
    t = plausible()
    folder = write("tiff-folder", tmp_path / "in", t)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["angles"] = np.deg2rad(t["angles"]).tolist()
    (folder / "metadata.json").write_text(json.dumps(meta))
    refused(tmp_path, folder, r"cannot read the input.*angles.*radians")


def test_every_problem_is_listed_at_once(tmp_path):
    t = plausible(n_angles=10)
    t["projections"][2] = 0
    path = write("dxchange", tmp_path / "in", t)
    cfg = _config(tmp_path, path, preprocess={"center": 99.0})
    cfg.reconstruct.iterations = 0  # edited in Python: checked at run time too
    cfg.segmentation.depth_bins_nm = [50.0, 10.0]
    with pytest.raises(ConfigError) as info:
        run_pipeline(cfg, steps=TOMO, log=lambda m: None)
    text = "\n".join(info.value.problems)
    for part in ("[reconstruct] iterations must be an integer >= 1", "got 0",
                 "[segmentation] depth_bins_nm must be", "got [50.0, 10.0]",
                 "center = 99 is outside", "10 angles over", "all-zero frame"):
        assert part in text
    assert len(info.value.problems) == 5
    assert str(info.value).startswith("5 problems:\n  - ")
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize("section, value, match", [
    ("path", "simulate:huge", r"unknown simulator preset 'huge'; expected one of"),
    ("energies_ev", [640.0], r"\[input\] energies_ev = \[640\.0\] applies to measured files "
                             r"only"),
    ("pixel_size_nm", 12.0, r"\[input\] pixel_size_nm = 12\.0 applies to measured files only"),
    ("binning", 2, r"\[input\] binning = 2: crop/binning apply to measured files only"),
])
def test_simulated_input_keys(tmp_path, section, value, match):
    data = {"input": {"path": "simulate:tiny", section: value}}
    refused(tmp_path, data["input"].pop("path"), match, input=data["input"])


def test_complete_raw_group_of_the_store_is_the_input(tmp_path):
    rng = np.random.default_rng(0)
    ts = tilt_series(30000 * rng.random((1, 8, 6, 6)) + 100, angles=np.linspace(-60, 60, 8),
                     energies=[8350.0], pixel_size=20.0,
                     flats=np.full((1, 2, 6, 6), 30000.0), darks=np.full((1, 2, 6, 6), 100.0))
    io.write(tmp_path / "s.zarr", "raw", ts)
    cfg = _config(tmp_path, "simulate:tiny")
    with pytest.raises(ConfigError, match=r"s\.zarr \(group raw\): angles: 8 angles over 120 "
                                          r"deg; a tomogram needs at least 20"):
        run_pipeline(cfg, steps=TOMO, log=lambda m: None)
    assert set(io.list_groups(tmp_path / "s.zarr")) == {"raw"}


@pytest.mark.parametrize("table, match", [
    ("energy,Mn3+\n630,1\n640,2\n650,3\n", r"Mn has 1 state\(s\) \['Mn3\+'\] of one valence; "
                                          r"a valence map needs at least two"),
    ("energy,Mn3+,Mn3+b\n630,1,2\n640,2,3\n", r"must be named <element><valence><sign>"),
])
def test_references_that_cannot_define_a_valence(tmp_path, table, match):
    refs = tmp_path / "refs.csv"
    refs.write_text(table)
    refused(tmp_path, "simulate:tiny", rf"\[spectra\] references = '.*refs\.csv': .*{match}",
            steps=["acquire", "valence"], spectra={"references": str(refs)})


def test_missing_references_file(tmp_path):
    refused(tmp_path, "simulate:tiny", r"\[spectra\] references = .*no file .*missing\.csv",
            steps=["acquire", "valence"], spectra={"references": str(tmp_path / "missing.csv")})


def test_energy_override_of_a_single_energy_file_is_used(tmp_path):
    """``[input] energies_ev`` with one value overrides a one-energy file (was a TypeError)."""
    path = write("dxchange", tmp_path / "in", plausible())
    run_pipeline(_config(tmp_path, path, input={"energies_ev": [8400.0]}), steps=["acquire"],
                 report_dir=tmp_path / "rep", log=lambda m: None)
    assert io.read_group(tmp_path / "s.zarr", "raw")["energy"].values.tolist() == [8400.0]
