"""Fit-then-reconstruct (LCF on projections, reconstruct k component maps) vs
reconstruct-then-fit (reconstruct every energy, LCF per voxel).

Line integrals are linear: OD(E) = sum_s sigma_s(E) * integral(n_s), so the
projected state amounts are themselves non-negative line integrals and the two
orders agree exactly for the unconstrained fit (both maps are linear in the
data) and closely with constraints, at k instead of n_energies reconstructions.
"""

import numpy as np
import pytest

from spectrotomo.spectra import (builtin_references, effective_valence, fit_energy_offset, lcf,
                                 shifted_references)


@pytest.fixture(scope="module")
def mn_scan(truth_small):
    from spectrotomo.simulate import tilt_series

    energies = np.arange(635.0, 665.1, 2.0)  # 16 energies across Mn L3/L2
    angles = np.arange(0.0, 180.0, 2.0)
    ts = tilt_series(truth_small, energies=energies, angles=angles, photons=None)
    return energies, angles, ts["true_od"].values  # (energy, angle, y, x)


def _recon_stack(sinos, angles, px):
    from spectrotomo.recon import reconstruct

    return np.stack([reconstruct(np.ascontiguousarray(s), angles, pixel_size=px) for s in sinos])


def _aligned_references(od, energies):
    """The Mn references (nm^2) moved by the energy offset fitted on the projections: the
    simulated scan has the default calibration offset and broadening."""
    refs = builtin_references(["Mn"], normalized=False)
    fit = fit_energy_offset(np.moveaxis(od, 0, -1), energies, refs)
    return shifted_references(refs, energies, fit.offset_ev).values


def test_fit_then_reconstruct_matches_reconstruct_then_fit(truth_small, mn_scan):
    pytest.importorskip("spectrotomo.recon")
    energies, angles, od = mn_scan
    px = truth_small.attrs["pixel_size"]
    refs = _aligned_references(od, energies)  # nm^2
    # reconstruct-then-fit: 16 reconstructions, then LCF of every voxel (1/nm vs nm^2)
    vols = _recon_stack(od, angles, px)  # (energy, z, y, x)
    rtf = lcf(np.moveaxis(vols, 0, -1), refs, background=2)
    # fit-then-reconstruct: LCF of every projection pixel (atoms/nm^2), 3 reconstructions
    proj_fit = lcf(np.moveaxis(od, 0, -1), refs, background=2)
    ftr = np.moveaxis(_recon_stack(np.moveaxis(proj_fit.fractions, -1, 0), angles, px), 0, -1)
    assert ftr.shape == rtf.fractions.shape == (*truth_small["occupancy"].shape, 3)

    solid = truth_small["occupancy"].values > 0.9
    true_v = truth_small["valence"].sel(element="Mn").values[solid]
    v_rtf = effective_valence(rtf.fractions, [2, 3, 4])[solid]
    v_ftr = effective_valence(ftr, [2, 3, 4])[solid]
    assert np.median(np.abs(v_rtf - true_v)) < 0.03
    assert np.median(np.abs(v_ftr - true_v)) < 0.03
    assert np.median(np.abs(v_ftr - v_rtf)) < 1e-3
    true_n = truth_small["density"].sel(element="Mn").values[solid]
    for amounts in (rtf.fractions.sum(-1)[solid], ftr.sum(-1)[solid]):
        assert np.median(np.abs(amounts / true_n - 1)) < 0.05  # FBP resolution at 20 nm voxels


def test_orders_commute_without_constraints(truth_small, mn_scan):
    energies, angles, od = mn_scan
    px = truth_small.attrs["pixel_size"]
    refs = builtin_references(["Mn"], energies=energies, normalized=False).values
    rtf = lcf(np.moveaxis(_recon_stack(od, angles, px), 0, -1), refs, nonneg=False, background=2)
    fit = lcf(np.moveaxis(od, 0, -1), refs, nonneg=False, background=2).fractions
    ftr = np.moveaxis(_recon_stack(np.moveaxis(fit, -1, 0), angles, px), 0, -1)
    scale = np.abs(rtf.fractions).max()
    assert np.abs(ftr - rtf.fractions).max() < 1e-3 * scale  # NUFFT tolerance 1e-4
