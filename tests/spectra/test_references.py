import numpy as np
import pytest
import xarray as xr

from spectrotomo import ValidationError
from spectrotomo.spectra import (load_athena, load_references, normalize_edge_step, references, resample,
                                 shift_energy)


def _write_table(path, energies, values, header="# energy, Mn2, Mn3, Mn4", sep=","):
    lines = ["# beamline export", header] if header else []
    lines += [sep.join(f"{x:.10g}" for x in row) for row in np.column_stack([energies, values.T])]
    path.write_text("\n".join(lines) + "\n")


def test_load_csv_with_header(tmp_path, refs3):
    energies, refs = refs3
    _write_table(tmp_path / "refs.csv", energies[::-1], refs[:, ::-1])  # unsorted on disk
    loaded = load_references(tmp_path / "refs.csv", valences=[2, 3, 4], elements=["Mn"] * 3)
    assert loaded.dims == ("state", "energy")
    assert list(loaded.state.values) == ["Mn2", "Mn3", "Mn4"]
    assert loaded.energy.attrs["units"] == "eV"
    np.testing.assert_allclose(loaded.energy, energies, rtol=1e-9)
    np.testing.assert_allclose(loaded.values, refs, rtol=1e-9)
    assert list(loaded.state_valence.values) == [2, 3, 4]


def test_load_whitespace_without_header_and_kev(tmp_path, refs3):
    energies, refs = refs3
    _write_table(tmp_path / "refs.dat", energies / 1e3, refs, header=None, sep="\t")
    loaded = load_references(tmp_path / "refs.dat", energy_units="keV")
    assert list(loaded.state.values) == ["ref0", "ref1", "ref2"]
    np.testing.assert_allclose(loaded.energy, energies, rtol=1e-9)


def test_load_rejects_garbage_without_evaluating(tmp_path):
    (tmp_path / "bad.txt").write_text("E mu\n1 2\n__import__('os').system('false') 3\n")
    with pytest.raises(ValidationError, match="non-numeric line"):
        load_references(tmp_path / "bad.txt")
    (tmp_path / "ragged.txt").write_text("1 2 3\n2 3\n")
    with pytest.raises(ValidationError, match="same number"):
        load_references(tmp_path / "ragged.txt")


def test_normalize_recovers_unit_step(refs3):
    energies, _ = refs3
    e0 = np.array([[639.0], [640.0], [641.5]])
    refs = 0.5 * (1 + np.tanh((energies - e0) / 0.4)) + 2 * np.exp(-0.5 * ((energies - e0 - 1) / 0.8) ** 2)
    # pre-edge 0 and step 1 by construction: add a sloped background and scale
    raw = 3.0 * refs + 0.2 + 0.01 * (energies - 630.0)
    da = references(raw, energies, names=["a", "b", "c"])
    norm = normalize_edge_step(da, e0=640.0, pre=(-np.inf, -6.0), post=(15.0, np.inf))
    pre = energies < 634
    np.testing.assert_allclose(norm.values[:, pre], 0, atol=1e-9)
    post = energies > 655
    np.testing.assert_allclose(norm.values[:, post], 1.0, atol=1e-9)
    assert norm.attrs["units"] == "1"
    with pytest.raises(ValidationError, match="pre-edge"):
        normalize_edge_step(da, e0=630.5)


def test_shift_and_resample(refs3):
    energies, refs = refs3
    da = references(refs, energies, names=["a", "b", "c"])
    shifted = shift_energy(da, 1.5)
    np.testing.assert_allclose(shifted.energy, energies + 1.5)
    target = np.linspace(635.0, 655.0, 41)
    out = resample(da, target)
    assert out.shape == (3, 41) and out.energy.attrs["units"] == "eV"
    expected = np.stack([np.interp(target, energies, r) for r in refs])
    np.testing.assert_allclose(out.values, expected, rtol=1e-12)
    with pytest.raises(ValidationError, match="outside the references' range"):
        resample(da, np.linspace(650.0, 700.0, 11))


# larch's add_group runs its own pre-edge analysis, which warns on these short
# synthetic spectra; only our loader's output is under test
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_athena_project(tmp_path, refs3):
    pytest.importorskip("larch")
    energies, refs = refs3
    from larch import Group
    from larch.io import AthenaProject

    proj = AthenaProject(str(tmp_path / "refs.prj"))
    for name, mu in zip(["Mn2", "Mn3"], refs[:2]):
        proj.add_group(Group(energy=energies, mu=mu, filename=name, groupname=name))
    proj.save()
    loaded = load_athena(tmp_path / "refs.prj")
    assert loaded.shape == (2, energies.size)
    np.testing.assert_allclose(np.sort(loaded.values, axis=0), np.sort(refs[:2], axis=0), rtol=1e-6)


def test_references_shape_checked(refs3):
    energies, refs = refs3
    with pytest.raises(ValidationError, match="shape"):
        references(refs, energies, names=["a", "b"])
    assert isinstance(references(refs, energies, names=list("abc")), xr.DataArray)
