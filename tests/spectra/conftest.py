"""Synthetic XANES-like references for the spectra tests (no simulator needed)."""

import numpy as np
import pytest


def model_references(energies, valences=(2.0, 3.0, 4.0), *, edge=640.0, shift_per_valence=1.5,
                     width=1.2):
    """Arctan edge + Gaussian white line, both shifted by ``shift_per_valence``
    eV per unit valence: shape (len(valences), len(energies)), step -> 1."""
    e = np.asarray(energies, dtype=float)[None, :]
    v = np.asarray(valences, dtype=float)[:, None]
    e0 = edge + shift_per_valence * (v - 2)
    step = 0.5 + np.arctan((e - e0) / width) / np.pi
    white = (1.5 + 0.3 * v) * np.exp(-0.5 * ((e - e0 - 1.0) / (0.8 * width)) ** 2)
    return step + white


@pytest.fixture
def refs3():
    energies = np.linspace(630.0, 660.0, 100)
    return energies, model_references(energies)


@pytest.fixture
def make_refs():
    return model_references


@pytest.fixture(scope="session")
def truth_small():
    """A reduced simulated particle (24 x 32 x 32 voxels of 20 nm), shared by tests."""
    from spectrotomo.simulate import particle

    return particle("small", seed=1, shape=(24, 32, 32), radius_nm=200.0, n_grains=8,
                    n_voids=1, n_cracks=1)
