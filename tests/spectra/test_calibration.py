"""Energy calibration: a fitted global offset between the references and the scan."""

import numpy as np
import pytest

from spectrotomo import ValidationError
from spectrotomo.spectra import (builtin_references, fit_energy_offset, shift_energy,
                                 shifted_references, valence_maps)

MN_ENERGIES = np.concatenate([[635.0, 636.5, 638.0], np.arange(639.0, 646.01, 0.5),
                              [647.0, 649.0, 651.0, 655.0, 658.0, 661.0, 665.0]])


def _shifted_scan(truth, offset, rng, noise=0.005):
    """Attenuation (energy, z, y, x) whose spectra are the model's moved up by ``offset`` eV."""
    from spectrotomo.simulate import attenuation

    mu = attenuation(truth, MN_ENERGIES - offset)
    mu = mu.assign_coords(energy=("energy", MN_ENERGIES, {"units": "eV"}))
    return mu.copy(data=mu.values + rng.normal(scale=noise * float(mu.max()), size=mu.shape))


def _mn_mae(maps, truth):
    solid = truth["occupancy"].values > 0.9
    err = maps["valence"].sel(element="Mn").values[solid] - \
        truth["valence"].sel(element="Mn").values[solid]
    return float(np.nanmean(np.abs(err)))


@pytest.mark.parametrize("offset", [-0.5, 0.45])
def test_offset_is_recovered(truth_small, rng, offset):
    scan = _shifted_scan(truth_small, offset, rng)
    refs = builtin_references(["Mn"], normalized=False)
    fit = fit_energy_offset(np.moveaxis(scan.values, 0, -1), MN_ENERGIES, refs)
    assert abs(fit.offset_ev - offset) < 0.05  # measured: within 0.01 eV
    assert not fit.at_limit and 100 < fit.n_spectra <= 4096
    assert fit.grid_ev.size == fit.cost.size == 31
    assert abs(fit.grid_ev[fit.cost.argmin()] - offset) <= 0.1 + 1e-9  # the grid brackets it


def test_valence_maps_fitted_offset_equals_the_aligned_fit(truth_small, rng):
    scan = _shifted_scan(truth_small, 0.5, rng)
    refs = builtin_references(["Mn"], normalized=False)
    kw = dict(min_amount=0.5, r_factor_max=1.0)
    aligned = valence_maps(scan, shift_energy(refs, 0.5), **kw)
    ignored = valence_maps(scan, refs, **kw)
    fitted = valence_maps(scan, refs, energy_offset="fit", **kw)
    fixed = valence_maps(scan, refs, energy_offset=0.5, **kw)
    assert abs(fitted.attrs["energy_offset_ev"][0] - 0.5) < 0.05
    assert fitted.attrs["energy_offset_fitted"] == 1 and fixed.attrs["energy_offset_fitted"] == 0
    assert ignored.attrs["energy_offset_ev"] == [0.0]
    mae = {k: _mn_mae(m, truth_small) for k, m in
           (("aligned", aligned), ("ignored", ignored), ("fitted", fitted), ("fixed", fixed))}
    assert mae["ignored"] > mae["aligned"] + 0.05  # the offset alone costs ~0.1 e
    assert abs(mae["fitted"] - mae["aligned"]) < 0.01
    np.testing.assert_allclose(fixed["valence"].values, aligned["valence"].values, atol=1e-6)


def test_references_must_cover_the_search(truth_small, rng):
    scan = _shifted_scan(truth_small, 0.0, rng)
    narrow = builtin_references(["Mn"], energies=np.arange(635.0, 665.01, 0.1), normalized=False)
    with pytest.raises(ValidationError, match=r"cover \[635.00, 665.00\] eV.*needs \[633.50, "):
        fit_energy_offset(np.moveaxis(scan.values, 0, -1), MN_ENERGIES, narrow)
    with pytest.raises(ValidationError, match="energy_offset"):
        valence_maps(scan, narrow, energy_offset="auto")


def test_shifted_references_move_features_up():
    refs = builtin_references(["Mn"], normalized=True)
    e = np.arange(636.0, 648.0, 0.05)
    peak = e[shifted_references(refs, e, 0.7).values.argmax(axis=1)]
    peak0 = e[shifted_references(refs, e, 0.0).values.argmax(axis=1)]
    np.testing.assert_allclose(peak - peak0, 0.7, atol=0.051)
