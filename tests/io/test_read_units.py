"""Units in files: case-sensitive tables (meV is not MeV), sidecar unit keys."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from _writers import make_truth, write_dxchange

import spectrotomo.io as sio
from spectrotomo.io._units import UnitError, unit_factor


@pytest.mark.parametrize("units, factor", [
    ("eV", 1.0), ("keV", 1e3), ("meV", 1e-3), ("MeV", 1e6), ("KEV", 1e3), ("ev", 1.0),
    ("J", 1 / 1.602176634e-19)])
def test_energy_units_are_case_sensitive(units, factor):
    assert unit_factor("energy", units) == pytest.approx(factor, rel=1e-15)


@pytest.mark.parametrize("units, factor", [
    ("nm", 1.0), ("um", 1e3), ("µm", 1e3), ("μm", 1e3), ("micron", 1e3), ("mm", 1e6),
    ("m", 1e9), ("Å", 0.1), ("NM", 1.0), (b"um", 1e3)])
def test_length_units(units, factor):
    assert unit_factor("length", units) == pytest.approx(factor, rel=1e-15)


@pytest.mark.parametrize("units, factor", [("deg", 1.0), ("degree", 1.0), ("rad", 180 / np.pi),
                                           ("mrad", 0.18 / np.pi)])
def test_angle_units(units, factor):
    assert unit_factor("angle", units) == pytest.approx(factor, rel=1e-15)


@pytest.mark.parametrize("units", ["mev", "MEV", "Mev"])
def test_case_folded_energy_that_could_be_milli_or_mega_is_refused(units):
    with pytest.raises(UnitError, match=r"ambiguous.*MeV vs meV"):
        unit_factor("energy", units)


def test_mev_in_a_file_is_read_as_milli_ev_and_names_the_accepted_spellings(tmp_path):
    t = make_truth(energy=640.0)
    path = write_dxchange(tmp_path / "e.h5", t, energy_units="eV")
    import h5py

    with h5py.File(path, "a") as fh:
        dset = fh["measurement/instrument/monochromator/energy"]
        dset[...] = 640.0e3
        dset.attrs["units"] = "meV"
    assert sio.read(path)["energy"].values.tolist() == pytest.approx([640.0])
    with h5py.File(path, "a") as fh:
        fh["measurement/instrument/monochromator/energy"].attrs["units"] = "mev"
    with pytest.raises(sio.ReaderError, match=r"e\.h5.*monochromator/energy.*units.*"
                                              r"case-sensitive.*keV.*got 'mev', ambiguous"):
        sio.read(path)


def _stack(tmp_path, meta, n_frames=6):
    t = make_truth(n_angles=n_frames)
    tifffile.imwrite(tmp_path / "s.tif", t["projections"], photometric="minisblack")
    (tmp_path / "s.json").write_text(json.dumps(meta))
    return tmp_path / "s.tif"


def test_sidecar_energy_units_apply_to_an_energies_list(tmp_path):
    # was ignored: energies became 0.64 and 0.65 eV
    path = _stack(tmp_path, {"energies": [0.65, 0.64], "energy_units": "keV",
                             "angles": [-60.0, 0.0, 60.0], "pixel_size": 10.0})
    np.testing.assert_allclose(sio.read(path)["energy"].values, [640.0, 650.0], rtol=1e-12)
    path = _stack(tmp_path, {"energies": [0.65, 0.64], "energies_units": "keV",
                             "angles": [-60.0, 0.0, 60.0], "pixel_size": 10.0})
    np.testing.assert_allclose(sio.read(path)["energy"].values, [640.0, 650.0], rtol=1e-12)


def test_sidecar_pixel_sizes_and_angles_take_their_singular_unit_key(tmp_path):
    path = _stack(tmp_path, {"energies": [640.0, 650.0], "angles": [-1.0, 0.0, 1.0],
                             "angle_units": "rad", "pixel_sizes": [0.0100, 0.0101],
                             "pixel_size_units": "um"})
    ds = sio.read(path)
    np.testing.assert_allclose(ds["angle"].values, np.rad2deg([-1.0, 0.0, 1.0]), rtol=1e-12)
    np.testing.assert_allclose(ds["pixel_size_energy"].values, [10.0, 10.1], rtol=1e-12)


def test_conflicting_unit_keys_are_refused(tmp_path):
    path = _stack(tmp_path, {"energies": [0.64, 0.65], "energy_units": "keV",
                             "energies_units": "eV", "angles": [-60.0, 0.0, 60.0],
                             "pixel_size": 10.0})
    with pytest.raises(sio.ReaderError, match=r"s\.json.*energies_units.*same unit as "
                                              r"energy_units \('keV'\).*'eV'"):
        sio.read(path)
