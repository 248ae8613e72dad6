"""Fixtures of the phase-retrieval tests (phantoms in _phase_phantoms.py)."""

import numpy as np
import pytest

from _phase_phantoms import holo_series_pair


@pytest.fixture(scope="session")
def holo_objects():
    """{"homogeneous"|"mixed": tilt series Dataset}, prior delta/beta in attrs."""
    return holo_series_pair(np.array([0.0, 90.0]))
