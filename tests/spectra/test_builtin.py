import numpy as np
import pytest

from spectrotomo.spectra import EDGES, builtin_cross_section, builtin_references, cross_section

CONTRACT_RANGES = {"O": (525, 555), "Mn": (635, 665), "Co": (775, 805), "Ni": (848, 880)}


def test_edges_follow_the_contract():
    assert set(EDGES) == set(CONTRACT_RANGES)
    for el, edge in EDGES.items():
        assert edge["range"] == CONTRACT_RANGES[el]
        assert edge["range"][0] <= edge["below"] < edge["above"] <= edge["range"][1]
        assert edge["below"] < edge["edge"] < edge["above"]


@pytest.mark.parametrize("element", list(EDGES))
def test_model_equals_xraydb_at_the_dual_energy_pair(element):
    pair = [EDGES[element]["below"], EDGES[element]["above"]]
    tab = cross_section(element, pair)
    spectra = builtin_references([element], energies=pair, normalized=False)
    np.testing.assert_allclose(spectra.values, np.broadcast_to(tab, spectra.shape), rtol=1e-4)
    # just inside the window the model (not the xraydb fallback) is evaluated
    inside = builtin_references([element], energies=[pair[0] + 1e-6, pair[1] - 1e-6],
                                normalized=False).values
    jump_model = inside[:, 1] - inside[:, 0]
    np.testing.assert_allclose(jump_model, tab[1] - tab[0], rtol=0.01)


def test_absolute_units_and_metadata():
    spectra = builtin_references(normalized=False)
    assert spectra.dims == ("state", "energy")
    assert spectra.attrs["synthetic"] is True and spectra.attrs["units"] == "nm^2"
    assert spectra["energy"].attrs["units"] == "eV"
    assert list(np.unique(spectra["state_element"].values)) == ["Co", "Mn", "Ni", "O"]
    assert np.all(spectra.values > 0)
    # order of magnitude of a soft X-ray cross section per atom: 1e-6..1e-3 nm^2
    assert 1e-6 < spectra.values.min() and spectra.values.max() < 1e-3
    mn = builtin_references(["Mn"], normalized=False)
    # the default grid reaches 5 eV past the scan range: room for a calibration offset
    assert mn.sizes["state"] == 3 and mn.energy.min() == 630 and mn.energy.max() == 670


@pytest.mark.parametrize("element", list(EDGES))
def test_normalized_edge_step_is_one(element):
    pair = [EDGES[element]["below"], EDGES[element]["above"]]
    norm = builtin_references([element], energies=pair, normalized=True)
    np.testing.assert_allclose(norm.values[:, 0], 0.0, atol=1e-4)
    np.testing.assert_allclose(norm.values[:, 1], 1.0, atol=1e-4)
    assert norm.attrs["units"] == "1"


@pytest.mark.parametrize("element, window", [("Mn", (636, 648)), ("Co", (776, 790)),
                                             ("Ni", (849, 862)), ("O", (526, 534))])
def test_white_line_shifts_up_with_valence(element, window):
    energies = np.arange(*window, 0.05)
    norm = builtin_references([element], energies=energies, normalized=True)
    order = np.argsort(norm["state_valence"].values)
    peaks = energies[norm.values.argmax(axis=1)][order]
    assert np.all(np.diff(peaks) > 0.4), peaks


def test_outside_the_window_the_model_is_xraydb():
    energies = np.array([600.0, 700.0, 900.0])
    np.testing.assert_allclose(builtin_cross_section("Mn3+", energies), cross_section("Mn", energies))


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="elements"):
        builtin_references(["Fe"], normalized=False)
    with pytest.raises(ValueError, match="energies"):
        builtin_references(energies=[-1.0, 2.0], normalized=False)
