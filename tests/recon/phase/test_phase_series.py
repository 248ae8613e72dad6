import numpy as np
import pytest

from spectrotomo import recon
from spectrotomo._model import ValidationError, provenance

from _phase_phantoms import rel_rms


def test_series_ctf_with_noise_and_divergent_beam():
    from spectrotomo.simulate import ball, holotomo_series

    n = 96
    d = np.zeros((3, n, n))
    d[:] = np.pad(ball((40, 40), 14), 28) * 1.5e-12
    d[1, 40:50, 30:36] = 0
    ds = holotomo_series(d, d / 56.0, energy_ev=17000.0, distances_m=[1e-3, 1.8e-3, 2.6e-3],
                         pixel_size_m=20e-9, angles=[0.0, 60.0, 120.0], photons=2e4, seed=1,
                         source_to_sample_m=0.1, shifts_px=[[0, 0], [1.2, -0.7], [-2.0, 1.5]])
    phase = recon.phase.retrieve_phase_series(ds, delta_beta=56.0)
    assert phase.dims == ("energy", "angle", "y", "x") and phase.attrs["units"] == "rad"
    assert provenance(phase)[-1]["parameters"]["method"] == "ctf"
    # Measured 0.218 with 2e4 photons/pixel (0.194 noise-free; the 28 px vacuum margin
    # truncates the 2.6 mm fringes), 0.305 without magnification/shift correction.
    assert rel_rms(phase.values[0], ds.true_phase.values) < 0.25
    unregistered = recon.phase.retrieve_phase_series(ds, delta_beta=56.0, register=False)
    assert rel_rms(phase.values[0], ds.true_phase.values) < 0.8 * rel_rms(
        unregistered.values[0], ds.true_phase.values)
    single = recon.phase.retrieve_phase_series(ds.isel(distance=[0]), delta_beta=56.0)
    assert provenance(single)[-1]["parameters"]["method"] == "paganin"


def test_series_rejects_plain_tilt_series():
    from spectrotomo import tilt_series

    ts = tilt_series(np.ones((1, 2, 8, 8)), angles=[0, 1], energies=[17000.0], pixel_size=20.0)
    with pytest.raises(ValidationError, match="distance"):
        recon.phase.retrieve_phase_series(ts, delta_beta=56.0)
