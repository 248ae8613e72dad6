"""Data Exchange files laid out the way APS's own writers lay them out, not by
this project's test writers: ``dxfile.dxtomo.File`` + ``Entry`` objects
(dxfile 392ba20) and ``dxchange.write_dxf`` (dxchange 93c0f11). Neither is
installable from PyPI, so the layouts are rebuilt here with h5py exactly as
those tools write them (checked against files they wrote, session 8,
gpu_bench/RESULTS.io.md): a scalar ``/implements`` string dataset, every
dataset's attributes copied from the ``Entry`` dict as passed (``units`` of
the user's choice or none at all; ``str``, ``bytes`` or one-element arrays),
scalar metadata datasets, ``exchange/data`` with ``axes = "theta:y:x"``."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from spectrotomo import io
from spectrotomo.pipeline import ConfigError, run_pipeline
from spectrotomo.pipeline._config import config_from_dict

EV_PER_J = 1.0 / 1.602176634e-19
ANGLES = np.linspace(-60.0, 60.0, 21)
PIXEL_NM = 36.0
ENERGY = "measurement/instrument/monochromator/energy"
SAMPLE_PX = "measurement/instrument/detector/actual_pixel_size_x"


def member(energy, seed=0, ny=6, nx=7):
    rng = np.random.default_rng(seed)
    return {"projections": rng.integers(20000, 40000, (ANGLES.size, ny, nx), dtype=np.uint16),
            "flats": rng.integers(45000, 50000, (4, ny, nx), dtype=np.uint16),
            "darks": rng.integers(90, 110, (2, ny, nx), dtype=np.uint16),
            "energy": float(energy)}


def _attr(text, kind):
    """An attribute value as the beamline code passed it to ``Entry``."""
    return {"str": text,
            "bytes": text.encode(),  # h5py 3 stores and reads back a str
            "np_bytes": np.bytes_(text.encode()),  # fixed-length S, read back as numpy.bytes_
            "array1": np.array([text.encode()])}[kind]  # fixed-length S, shape (1,)


def write_like_dxfile(path, m, *, attr="str", theta_units="degrees", energy_units="eV",
                      energy_value=None, pixel="actual", pixel_units="m", pixel_value=None,
                      flats=True, metadata=True):
    """What ``dxfile.dxtomo.File(path, mode="w")`` and ``add_entry`` of
    ``Entry.data(data=..., data_white=..., data_dark=..., theta=...)``,
    ``Entry.sample(name=...)``, ``Entry.monochromator(energy=...)``,
    ``Entry.detector(actual_pixel_size_x=..., ...)`` / ``Entry.objective(magnification=...)``
    write: every ``Entry`` dict key but ``value`` becomes an attribute as given."""
    def entry(group, name, value, **attrs):
        ds = group.create_dataset(name, data=value)
        for key, text in attrs.items():
            if text is not None:
                ds.attrs[key] = _attr(text, attr)
        return ds

    size_m = PIXEL_NM * 1e-9
    with h5py.File(path, "w") as fh:
        fh.create_group("exchange")
        fh.create_dataset("implements", data="exchange")  # vlen str scalar
        ex = fh["exchange"]
        entry(ex, "data", m["projections"], units="counts", axes="theta:y:x")
        if flats:
            entry(ex, "data_white", m["flats"], units="counts")
        entry(ex, "data_dark", m["darks"], units="counts")
        rad = theta_units in ("rad", "radians")
        entry(ex, "theta", np.deg2rad(ANGLES) if rad else ANGLES, units=theta_units)
        if not metadata:
            return path
        del fh["implements"]  # create_top_level_group("measurement") rewrites it
        fh.create_dataset("implements", data="exchange:measurement")
        meas = fh.create_group("measurement")
        entry(meas.require_group("sample"), "name", "tiny")
        inst = meas.require_group("instrument")
        entry(inst, "name", "TXM")
        entry(inst.require_group("source"), "name", "APS")
        entry(inst["source"], "beamline", "32-ID")
        if energy_value is None:
            energy_value = m["energy"] * {"eV": 1.0, "keV": 1e-3, "J": 1 / EV_PER_J,
                                          None: 1 / EV_PER_J}[energy_units]
        entry(inst.require_group("monochromator"), "energy", energy_value, units=energy_units)
        det = inst.require_group("detector")
        if pixel == "actual":
            if pixel_value is None:
                pixel_value = size_m * {"m": 1.0, "um": 1e6, "nm": 1e9, None: 1.0}[pixel_units]
            for axis in "xy":
                entry(det, f"actual_pixel_size_{axis}", pixel_value, units=pixel_units)
        else:  # the camera's pixel and the objective's magnification
            for axis in "xy":
                entry(det, f"pixel_size_{axis}", 6.5e-6, units="m")
            objective = inst.require_group("detection_system/objective")
            entry(objective, "magnification", 6.5e-6 / size_m)  # {"value": ...}: no units
    return path


def write_like_write_dxf(path, projections):
    """``dxchange.write_dxf(data, fname)``: ``/exchange/data`` and ``/implements`` only."""
    with h5py.File(path, "w") as fh:
        fh.create_dataset("implements", data="exchange")
        d = fh.create_dataset("exchange/data", data=projections)
        d.attrs.update({"units": "counts", "description": "transmission", "axes": "theta:y:x"})
    return path


VARIANTS = {
    # dxfile's demo (doc/demo/full.py): energy in keV, sample pixel in um, theta in degrees
    "keV-um-degrees-str": {"energy_units": "keV", "pixel_units": "um", "theta_units": "degrees"},
    "eV-m-deg-bytes": {"energy_units": "eV", "pixel_units": "m", "theta_units": "deg",
                       "attr": "bytes"},
    # the spec's defaults: energy without units is J; theta in rad declared
    "J-nounits-nm-rad-npbytes": {"energy_units": None, "pixel_units": "nm",
                                 "theta_units": "rad", "attr": "np_bytes"},
    # attributes written as one-element string arrays (the old reader refused the axes)
    "J-m-degree-array1": {"energy_units": "J", "pixel_units": "m", "theta_units": "degree",
                          "attr": "array1"},
    "camera-and-magnification": {"pixel": "camera"},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pair_written_like_dxfile_reads_back_exactly(tmp_path, variant):
    members = [member(665.0, seed=1), member(635.0, seed=2)]
    paths = [write_like_dxfile(tmp_path / f"e{i}.h5", m, **VARIANTS[variant])
             for i, m in enumerate(members)]
    ds = io.read_series(paths)
    np.testing.assert_allclose(ds["energy"].values, [635.0, 665.0], rtol=1e-12)
    np.testing.assert_allclose(ds["angle"].values, ANGLES, rtol=0, atol=1e-9)
    assert ds.attrs["pixel_size"] == pytest.approx(PIXEL_NM, rel=1e-12)
    for name in ("projections", "flats", "darks"):
        assert ds[name].dtype == np.uint16
        np.testing.assert_array_equal(ds[name].values,
                                      np.stack([members[1][name], members[0][name]]))


def test_one_element_array_units_are_read(tmp_path):
    path = write_like_dxfile(tmp_path / "a.h5", member(635.0), attr="array1",
                             energy_units="keV", pixel_units="um", theta_units="rad")
    ds = io.read(path)
    assert ds["energy"].values.tolist() == pytest.approx([635.0], rel=1e-12)
    np.testing.assert_allclose(ds["angle"].values, ANGLES, atol=1e-9)
    assert ds.attrs["pixel_size"] == pytest.approx(PIXEL_NM, rel=1e-12)


@pytest.mark.parametrize("value, shown", [(635.0, "635"), (0.635, "0.635")])
def test_energy_without_units_that_is_no_photon_energy_is_refused(tmp_path, value, shown):
    """eV (or keV) written without units: DX says J, i.e. ~4e21 eV; refused, not read."""
    path = write_like_dxfile(tmp_path / "e.h5", member(635.0), energy_units=None,
                             energy_value=value)
    with pytest.raises(io.ReaderError, match=rf"e\.h5: field '{ENERGY}' must be a photon "
                       rf"energy within 1-1e\+07 eV.*energy=.*got {shown} with no units "
                       r"attribute, so 'J'"):
        io.read(path)
    assert io.read(path, energy=635.0)["energy"].values.tolist() == [635.0]


@pytest.mark.parametrize("units, value, got", [
    (None, 0.036, r"got 0\.036 with no units attribute, so 'm' .* = 3\.6e\+07 nm"),  # um
    ("m", 36.0, r"got 36 with units 'm' = 3\.6e\+10 nm"),  # nm labelled m
    ("um", 36e-9, r"got 3\.6e-08 with units 'um' = 3\.6e-05 nm"),  # m labelled um
])
def test_pixel_size_unit_mistakes_are_refused(tmp_path, units, value, got):
    path = write_like_dxfile(tmp_path / "p.h5", member(635.0), pixel_units=units,
                             pixel_value=value)
    with pytest.raises(io.ReaderError, match=rf"p\.h5: field '{SAMPLE_PX}' must be a "
                       rf"sample-plane pixel size within 0\.1-1e\+06 nm.*pixel_size=.*{got}"):
        io.read(path)
    assert io.read(path, pixel_size=PIXEL_NM).attrs["pixel_size"] == PIXEL_NM


def test_camera_pixel_without_units_is_refused_through_the_magnification(tmp_path):
    path = write_like_dxfile(tmp_path / "c.h5", member(635.0), pixel="camera")
    with h5py.File(path, "a") as fh:  # the camera's 6.5 (um) without units: metres
        fh["measurement/instrument/detector/pixel_size_x"][()] = 6.5
        del fh["measurement/instrument/detector/pixel_size_x"].attrs["units"]
    with pytest.raises(io.ReaderError, match=r"c\.h5: field 'measurement/instrument/detector/"
                       r"pixel_size_x' must be a camera pixel that, divided by .*magnification"
                       r" = 180\.556.*got 6\.5 with no units attribute"):
        io.read(path)


def test_write_dxf_file_names_every_missing_field(tmp_path):
    m = member(635.0)
    path = write_like_write_dxf(tmp_path / "proj.h5", m["projections"])
    with pytest.raises(io.ReaderError, match=r"proj\.h5: fields 'exchange/theta', "
                       rf"'{ENERGY}', '{SAMPLE_PX}' must be present, or passed as angles=.*"
                       r"energy=.*pixel_size=.*; got missing"):
        io.read(path)
    with pytest.raises(io.ReaderError, match=rf"fields '{ENERGY}', '{SAMPLE_PX}'"):
        io.read(path, angles=ANGLES)
    ds = io.read(path, angles=ANGLES, energy=635.0, pixel_size=PIXEL_NM)
    np.testing.assert_array_equal(ds["projections"].values[0], m["projections"])
    assert "flats" not in ds


def _config(tmp_path, path, store="s.zarr"):
    return config_from_dict({"input": {"path": str(path)},
                             "output": {"store": str(tmp_path / store), "figures": False},
                             "preprocess": {"align": False}})


def test_pipeline_refuses_a_file_without_flats_at_plan_time(tmp_path):
    """Raw counts without data_white passed validation and acquire, then preprocess
    failed on a bare KeyError 'flats'; now the plan names the file and field."""
    path = write_like_dxfile(tmp_path / "nf.h5", member(635.0), flats=False)
    with pytest.raises(ConfigError, match=r"nf\.h5: field 'exchange/data_white' must be "
                                          r"flat-field \(open-beam\) frames"):
        run_pipeline(_config(tmp_path, path), steps=["acquire", "preprocess"],
                     report_dir=tmp_path / "rep", log=lambda m: None)
    assert not (tmp_path / "s.zarr").exists()
    # acquire alone (raw counts into the store) does not need them
    run_pipeline(_config(tmp_path, path), steps=["acquire"], dry_run=True, log=lambda m: None)


def test_pipeline_acquire_on_a_dxfile_pair(tmp_path):
    members = [member(635.0, seed=3), member(665.0, seed=4)]
    for i, m in enumerate(members):
        write_like_dxfile(tmp_path / f"tomo_{i}.h5", m, energy_units=None, theta_units="rad",
                          attr="np_bytes")
    run_pipeline(_config(tmp_path, tmp_path / "tomo_*.h5"), steps=["acquire"],
                 report_dir=tmp_path / "rep", log=lambda m: None)
    raw = io.read_group(tmp_path / "s.zarr", "raw")
    np.testing.assert_allclose(raw["energy"].values, [635.0, 665.0], rtol=1e-12)
    np.testing.assert_allclose(raw["angle"].values, ANGLES, atol=1e-9)
    assert raw.attrs["pixel_size"] == pytest.approx(PIXEL_NM, rel=1e-12)
    for name in ("projections", "flats", "darks"):
        np.testing.assert_array_equal(raw[name].values, np.stack([m[name] for m in members]))


def test_degrees_labelled_radians_warn_at_plan_time(tmp_path):
    """theta in degrees with units 'rad' (a copy-paste of dxfile's mirror angle entry)
    reads 57.3x too large: +-65 deg becomes +-3724 deg; the plan warns."""
    path = write_like_dxfile(tmp_path / "r.h5", member(635.0))
    with h5py.File(path, "a") as fh:
        fh["exchange/theta"].attrs["units"] = "rad"
    lines = []
    result = run_pipeline(_config(tmp_path, path), steps=["acquire", "preprocess"],
                          dry_run=True, log=lines.append)
    assert any("r.h5: angles span 6875.49 deg (19.1 turns)" in w and "degrees labelled radians"
               in w for w in result["warnings"]), result["warnings"]
    assert any("warning:" in line and "labelled radians" in line for line in lines)
