import numpy as np

from spectrotomo import recon
from spectrotomo.simulate import holotomo_series

E_EV, PIXEL_M = 17000.0, 20e-9


def test_effective_geometry():
    z, p, m = recon.phase.effective_geometry(0.5, 0.5, 1e-6)
    assert (z, p, m) == (0.25, 0.5e-6, 2.0)
    z, p, m = recon.phase.effective_geometry(0.1, [1e-3, 2e-3], 1e-6)
    np.testing.assert_allclose(m, [1.01, 1.02])


def test_magnification_and_shift_correction_recover_parallel_phase():
    from spectrotomo.simulate import ball

    n = 96
    d = np.zeros((2, n, n))
    d[:] = np.pad(ball((40, 40), 14), 28) * 1.5e-12
    d[1] = d[1].T
    d[1, 40:50, 30:36] = 0  # a void
    b = d / 56.0
    z1, z2 = 0.1, np.array([1e-3, 1.8e-3])
    true_shift = [[0.0, 0.0], [2.3, -1.4]]
    ds = holotomo_series(d, b, energy_ev=E_EV, distances_m=z2, pixel_size_m=PIXEL_M,
                         source_to_sample_m=z1, shifts_px=true_shift)
    inten = ds.projections.values[0].astype(float)
    z_eff, _, mag = recon.phase.effective_geometry(z1, z2, PIXEL_M * 1.01)
    inten = recon.phase.correct_magnification(inten, mag)
    shifts = recon.phase.register_distances(inten, energy_ev=E_EV, distances_m=z_eff,
                                      pixel_size_m=PIXEL_M, delta_beta=56.0)
    assert shifts.shape == (2, 2, 2)
    np.testing.assert_allclose(shifts[1].mean(0), true_shift[1], atol=0.3)
    aligned = inten.copy()
    aligned[1] = recon.phase.shift_images(inten[1], -shifts[1])
    truth = ds.true_phase.values
    phi = recon.phase.ctf_retrieval(aligned, distances_m=z_eff, pixel_size_m=PIXEL_M,
                              energy_ev=E_EV, delta_beta=56.0)
    naive = recon.phase.ctf_retrieval(ds.projections.values[0], distances_m=z_eff,
                                pixel_size_m=PIXEL_M, energy_ev=E_EV, delta_beta=56.0)
    err = np.sqrt(np.mean((phi - truth) ** 2) / np.mean(truth ** 2))
    err_naive = np.sqrt(np.mean((naive - truth) ** 2) / np.mean(truth ** 2))
    assert err < 0.25 and err < 0.7 * err_naive


def test_phase_to_delta_and_electron_density():
    import xarray as xr
    import xraydb

    from spectrotomo import volume

    delta, _, _ = xraydb.xray_delta_beta("LiMn2O4", 4.28, E_EV)
    lam = recon.phase.wavelength_m(E_EV)
    vox_nm = 20.0
    phase_per_voxel = -2 * np.pi / lam * delta * vox_nm * 1e-9
    vol = volume(np.full((1, 2, 2, 2), phase_per_voxel), energies=[E_EV], voxel_size=vox_nm,
                 units="rad/voxel")
    got = recon.phase.phase_to_delta(vol, energy_ev=E_EV, voxel_size_nm=vox_nm)
    assert isinstance(got, xr.DataArray) and got.attrs["units"] == "1"
    np.testing.assert_allclose(got.values, delta, rtol=1e-9)
    rho = recon.phase.delta_to_electron_density(got, energy_ev=E_EV)
    assert rho.attrs["units"] == "e/nm^3"
    # LiMn2O4: 4.28 g/cm^3, 84 electrons per 180.8 g/mol -> ~1198 e/nm^3 (f1 ~ Z at 17 keV
    # except Mn, whose anomalous f' lowers delta by ~2 %).
    expected = 4.28 / 180.81 * 6.02214076e23 * 84 / 1e21
    assert abs(float(rho.values.mean()) / expected - 1) < 0.04


def test_unit_helpers_reject_bad_input():
    import pytest

    from spectrotomo._model import ValidationError

    with pytest.raises(ValidationError, match="source_to_sample_m"):
        recon.phase.effective_geometry(0.0, 1e-3, 1e-6)
    with pytest.raises(ValidationError, match="detector_pixel_m"):
        recon.phase.effective_geometry(0.1, 1e-3, 6.5)
    with pytest.raises(ValidationError, match="voxel_size_nm"):
        recon.phase.phase_to_delta(np.ones(3), energy_ev=E_EV, voxel_size_nm=0)
    with pytest.raises(ValidationError, match="magnifications"):
        recon.phase.correct_magnification(np.ones((2, 3, 8, 8)), [1.0])
    # A plain array: radians per voxel -> delta.
    lam = recon.phase.wavelength_m(E_EV)
    np.testing.assert_allclose(recon.phase.phase_to_delta(np.array([-2 * np.pi]), energy_ev=E_EV,
                                                    voxel_size_nm=10.0), lam / 10e-9)
