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


@pytest.mark.parametrize("distances", [[1e-3], [1e-3, 1.8e-3, 2.6e-3, 3.3e-3]])
def test_retrieve_phase_by_chunks_of_angles_equals_whole_stack(distances):
    """Each angle's phase depends on that angle's images only (magnification, the
    per-angle distance registration, per-image Fourier filters): chunks of angles
    give the whole stack's values (float32 rounding of the batched FFTs)."""
    from spectrotomo.simulate import ball, holotomo_series

    n = 64
    d = np.zeros((5, n, n))
    d[:] = np.pad(ball((32, 32), 12), 16) * 1.5e-12
    d[2, 20:30, 24:30] = 0
    ds = holotomo_series(d, d / 56.0, energy_ev=17000.0, distances_m=distances,
                         pixel_size_m=20e-9, angles=np.linspace(0, 160, 5), photons=2e4,
                         seed=2, source_to_sample_m=0.1,
                         shifts_px=[[0, 0], [1.2, -0.7], [-2.0, 1.5], [0.4, 0.9]][:len(distances)])
    inten = ds["projections"].values[0]
    kw = dict(energy_ev=17000.0, distances_m=ds["effective_distance"].values,
              pixel_size_m=20e-9, delta_beta=56.0, magnifications=ds["magnification"].values)
    whole = recon.phase.retrieve_phase(inten, **kw)
    assert whole.shape == (5, n, n) and whole.dtype == np.float32
    series = recon.phase.retrieve_phase_series(ds, delta_beta=56.0)
    np.testing.assert_array_equal(series.values[0], whole)  # the series is one such call
    parts = np.concatenate([recon.phase.retrieve_phase(inten[:, sl], **kw)
                            for sl in (slice(0, 2), slice(2, 3), slice(3, 5))])
    scale = float(np.abs(whole).max())
    assert scale > 0.1  # a real signal (rad)
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-6 * scale)


def test_retrieve_phase_names_the_expected_shape():
    with pytest.raises(ValidationError, match="n_distances=2"):
        recon.phase.retrieve_phase(np.ones((3, 2, 8, 8), np.float32), energy_ev=17000.0,
                                   distances_m=[1e-3, 2e-3], pixel_size_m=20e-9,
                                   delta_beta=56.0)
