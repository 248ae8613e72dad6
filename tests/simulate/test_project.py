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


def test_joseph_matches_ray_sampling_on_a_smooth_volume(rng):
    from scipy import ndimage

    vol = ndimage.gaussian_filter(rng.random((3, 40, 46)) * ball((3, 40, 46), 15), (0, 2, 2))
    angles = [0.0, 10.0, 33.0, 45.0, 46.0, -65.0, 90.0, 120.0]
    for kw in ({}, {"center": 21.3, "n_cols": 52}):
        fast = project(vol, angles, **kw)
        slow = project(vol, angles, method="sampled", step=0.1, **kw)
        np.testing.assert_allclose(fast, slow, atol=0.01 * slow.max())


def test_joseph_keeps_float32_and_2d_input(rng):
    vol = rng.random((20, 20)).astype(np.float32)
    p = project(vol, [0.0, 30.0])
    assert p.shape == (2, 20) and p.dtype == np.float32


def test_system_matrix_shape_and_row_sums():
    from spectrotomo.simulate._project import system_matrix

    A = system_matrix((30, 30), [0.0, 30.0, 60.0])
    assert A.shape == (90, 900)
    # the central ray through a uniform 30 x 30 square is 30 / max(|cos|, |sin|) long
    sums = np.asarray(A.sum(axis=1)).reshape(3, 30)
    theta = np.deg2rad([0.0, 30.0, 60.0])
    chord = 30 / np.maximum(np.abs(np.cos(theta)), np.abs(np.sin(theta)))
    np.testing.assert_allclose(sums[:, 14:16].mean(1), chord, rtol=0.02)


def test_ball_volume_and_agreement_with_a_direct_supersampling():
    shape, r, c = (12, 14, 16), 4.7, (5.2, 6.9, 7.6)
    b = ball(shape, r, center=c)
    s = 4
    off = (np.arange(s) + 0.5) / s - 0.5
    g = [np.repeat(np.arange(n), s) + np.tile(off, n) - ci for n, ci in zip(shape, c)]
    d2 = g[0][:, None, None] ** 2 + g[1][None, :, None] ** 2 + g[2][None, None, :] ** 2
    direct = (d2 <= r * r).reshape(shape[0], s, shape[1], s, shape[2], s).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(b, direct)
    assert abs(b.sum() / (4 / 3 * np.pi * r**3) - 1) < 0.01


def test_system_matrix_in_blocks_of_angles_is_the_one_block_matrix(monkeypatch):
    from spectrotomo.simulate import _project

    angles = tuple(np.arange(-65, 66.0, 7.0).tolist())
    whole = _project._matrix_rows(24, 30, angles, 14.2, 30, "<f4")
    monkeypatch.setattr(_project, "_BLOCK_ENTRIES", 3 * 30 * 30)  # 3 angles a block
    _project._cached_matrix.cache_clear()
    try:
        blocks = _project.system_matrix((24, 30), angles, center=14.2, dtype=np.float32)
    finally:
        _project._cached_matrix.cache_clear()
    for part in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(whole, part), getattr(blocks, part))
