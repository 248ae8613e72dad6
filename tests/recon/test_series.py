import numpy as np
import pytest

from spectrotomo._model import ValidationError, provenance, tilt_series
from spectrotomo.recon import reconstruct, reconstruct_series
from spectrotomo.simulate import ball, project


@pytest.fixture(scope="module")
def od_series():
    n = 32
    vol = ball((4, n, n), 10.0, center=(1.5, 15.0, 16.0))
    angles = np.arange(-65.0, 66.0, 5.0)
    mu = np.array([0.01, 0.03])  # attenuation per voxel at two energies
    od = np.stack([project(vol * m, angles) for m in mu])  # (energy, angle, row, col)
    ts = tilt_series(od, angles=angles, energies=[640.0, 660.0], pixel_size=20.0)
    return ts, vol, mu, angles


def test_series_volume_units_coords_and_provenance(od_series):
    ts, vol, mu, angles = od_series
    out = reconstruct_series(ts, algorithm="fbp")
    assert out.dims == ("energy", "z", "y", "x") and out.shape == (2, 4, 32, 32)
    assert out.attrs["units"] == "1/nm" and out.attrs["pixel_size"] == 20.0
    np.testing.assert_allclose(out.energy, [640.0, 660.0])
    ref = reconstruct(ts.projections.values[1], angles) / 20.0
    np.testing.assert_allclose(out.values[1], ref, rtol=1e-5, atol=1e-8)
    # The ratio of the two energies is the ratio of attenuation coefficients.
    inside = vol > 0.99
    ratio = out.values[1][inside].mean() / out.values[0][inside].mean()
    assert ratio == pytest.approx(mu[1] / mu[0], rel=0.02)
    assert provenance(out)[-1]["step"] == "recon.reconstruct_series"
    assert provenance(out)[-1]["parameters"]["algorithm"] == "fbp"


def test_series_per_energy_centre_and_dask(od_series):
    ts, *_ = od_series
    lazy = ts.chunk({"y": 2})
    out = reconstruct_series(lazy, center=[15.5, 15.5], algorithm="sirt", iterations=5)
    assert type(out.data).__module__.startswith("dask")
    eager = reconstruct_series(ts, center=15.5, algorithm="sirt", iterations=5)
    np.testing.assert_allclose(out.values, eager.values, rtol=1e-5, atol=1e-7)


def test_series_rejects_raw_counts(od_series):
    ts, *_ = od_series
    raw = ts.assign(flats=(("energy", "flat", "y", "x"), np.ones((2, 1, 4, 32))))
    with pytest.raises(ValidationError, match="optical density"):
        reconstruct_series(raw)
    with pytest.raises(ValidationError, match="dims"):
        reconstruct_series(ts.projections.transpose("angle", "energy", "y", "x"))
