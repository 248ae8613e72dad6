import numpy as np

from spectrotomo.simulate import ball, project


def test_uniform_sphere_projection_matches_chord_length():
    r = 20.0
    vol = ball((8, 64, 64), r, center=(3.5, 31.5, 31.5))
    p = project(vol, [0.0, 33.0, -65.0])
    u = np.arange(64) - 31.5
    chord = 2 * np.sqrt(np.clip(r**2 - u**2 - 0.5**2, 0, None))
    inner = np.abs(u) < 0.9 * r
    for k in range(3):  # rows 3 and 4 straddle the centre at +-0.5
        measured = 0.5 * (p[k, 3] + p[k, 4])
        np.testing.assert_allclose(measured[inner], chord[inner], rtol=0.01)


def test_zero_degree_projection_is_sum_along_y(rng):
    vol = np.pad(rng.random((3, 10, 12)), ((0, 0), (2, 2), (2, 2)))  # objects sit inside the field
    np.testing.assert_allclose(project(vol, [0.0])[0], vol.sum(axis=1), atol=1e-9)
