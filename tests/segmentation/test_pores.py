import numpy as np
import pytest

from spectrotomo import ValidationError
from spectrotomo.segmentation import (defect_sizes, defect_table, find_cracks, find_pores,
                                      particle_mask)

from .phantoms import porous_cracked_particle


def _recall_precision(found, truth):
    tp = np.logical_and(found, truth).sum()
    return tp / truth.sum(), tp / max(found.sum(), 1)


def test_pores_and_cracks_found_in_noisy_phantom():
    vol, envelope, pores, crack = porous_cracked_particle(noise=0.05)
    mask = particle_mask(vol)
    assert np.logical_xor(mask, envelope).sum() < 0.01 * envelope.sum()
    found_pores = find_pores(vol, mask, spacing=10.0)
    found_cracks = find_cracks(vol, mask, spacing=10.0)
    assert found_pores.max() == 4 and found_cracks.max() == 1
    # Stated performance: pores recall/precision >= 0.95, cracks >= 0.9 at 5 % noise.
    recall, precision = _recall_precision(found_pores > 0, pores)
    assert recall >= 0.95 and precision >= 0.95
    recall, precision = _recall_precision(found_cracks > 0, crack)
    assert recall >= 0.9 and precision >= 0.9
    assert not np.any((found_pores > 0) & (found_cracks > 0))


def test_subvoxel_crack_partial_volume_found():
    # A crack thinner than a voxel only dims its voxels (partial volume).
    vol, envelope, pores, crack = porous_cracked_particle(noise=0.03, crack_value=0.45)
    found = find_cracks(vol, envelope, spacing=10.0)
    recall, precision = _recall_precision(found > 0, crack)
    assert recall >= 0.85 and precision >= 0.9
    # ...and a plain half-way threshold (what find_pores uses) misses it entirely.
    assert (find_pores(vol, envelope) > 0)[crack].mean() < 0.05


def test_defect_sizes_and_table():
    vol, envelope, pores, crack = porous_cracked_particle(noise=0.0)
    found_pores = find_pores(vol, envelope, spacing=10.0)
    found_cracks = find_cracks(vol, envelope, spacing=10.0)
    sizes = defect_sizes(found_pores, spacing=10.0, labels=envelope)
    true_vox = np.sort(np.bincount(__import__("scipy").ndimage.label(pores)[0].ravel())[1:])
    np.testing.assert_array_equal(np.sort(sizes["voxels"].values), true_vox)
    # Equivalent diameter of the digital ball of radius 3 voxels (136 voxels): ~63.8 nm.
    assert float(sizes["equivalent_diameter"].max()) == pytest.approx(
        np.cbrt(6 * 136 * 1000 / np.pi), rel=1e-6)
    assert np.all(sizes["aspect"] < 2.5) and np.all(sizes["particle"] == 1)
    csize = defect_sizes(found_cracks, spacing=10.0)
    assert float(csize["thickness"][0]) <= 20.0 and float(csize["extent"][0]) > 200.0
    assert float(csize["aspect"][0]) > 10
    table = defect_table(envelope, pores=found_pores, cracks=found_cracks, spacing=10.0)
    assert float(table["porosity"][0]) == pytest.approx(pores.sum() / envelope.sum())
    assert float(table["crack_fraction"][0]) == pytest.approx(
        (crack & ~pores).sum() / envelope.sum(), rel=0.1)
    assert int(table["n_pores"][0]) == 4 and int(table["n_cracks"][0]) == 1
    assert float(table["volume"][0]) == pytest.approx(envelope.sum() * 1000.0)


def test_no_defects_in_solid_particle(rng):
    vol, envelope, _, _ = porous_cracked_particle(noise=0.0)
    solid = envelope.astype(float) + rng.normal(0, 0.05, envelope.shape)
    assert find_pores(solid, envelope).max() == 0
    assert find_cracks(solid, envelope).max() == 0
    table = defect_table(envelope, pores=find_pores(solid, envelope))
    assert float(table["porosity"][0]) == 0 and int(table["n_pores"][0]) == 0


def test_bad_input():
    vol, envelope, _, _ = porous_cracked_particle(n=24, noise=0.0)
    with pytest.raises(ValidationError, match="same shape"):
        find_pores(vol, envelope[:-1])
    with pytest.raises(ValidationError, match="empty"):
        find_cracks(vol, np.zeros_like(envelope))
    with pytest.raises(ValidationError, match="contrast"):
        find_cracks(vol, envelope, contrast=1.5)


def test_2d_pores_and_oblique_crack(rng):
    y, x = np.indices((96, 96)) - 47.5
    envelope = np.hypot(y, x) <= 40
    pores = np.zeros_like(envelope)
    for py, px, pr in [(-10, 5, 3), (15, -20, 4), (20, 20, 2.5)]:
        pores |= (y - py) ** 2 + (x - px) ** 2 <= pr ** 2
    crack = (np.abs(x - 0.5 * y + 8) <= 0.6) & (np.abs(y) < 25)  # corner-connected line
    vol = envelope * 1.0
    vol[pores | crack] = 0.0
    vol += rng.normal(0, 0.05, vol.shape)
    found_pores = find_pores(vol, envelope)
    found_cracks = find_cracks(vol, envelope)
    assert found_pores.max() == 3 and found_cracks.max() == 1
    for found, true in ((found_pores, pores), (found_cracks, crack)):
        recall, precision = _recall_precision(found > 0, true)
        assert recall >= 0.9 and precision >= 0.9


def test_anisotropic_voxels(rng):
    spacing = np.array([20.0, 10.0, 10.0])
    shape = (32, 64, 64)
    g = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)],
                    indexing="ij")
    envelope = np.sqrt(sum(a ** 2 for a in g)) <= 280
    pores = np.zeros_like(envelope)
    for centre, radius in [((-100, 50, -60), 45), ((80, -90, 140), 35)]:
        pores |= np.sqrt(sum((a - b) ** 2 for a, b in zip(g, centre))) <= radius
    crack = (np.abs(g[2] + 0.3 * g[1] - 40) <= 6) & (np.abs(g[0]) < 150) & (np.abs(g[1]) < 160)
    vol = envelope * 1.0
    vol[pores | crack] = 0.0
    vol += rng.normal(0, 0.05, vol.shape)
    mask = particle_mask(vol)
    found_pores = find_pores(vol, mask, spacing=spacing)
    found_cracks = find_cracks(vol, mask, spacing=spacing, max_width=30.0)
    assert found_pores.max() == 2 and found_cracks.max() == 1
    for found, true in ((found_pores, pores), (found_cracks, crack)):
        recall, precision = _recall_precision(found > 0, true)
        assert recall >= 0.9 and precision >= 0.9
