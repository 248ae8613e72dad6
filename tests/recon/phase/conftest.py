import numpy as np
import pytest


@pytest.fixture(scope="session")
def holo_objects():
    """{"homogeneous"|"mixed": holotomography Dataset} (phantoms in _phase_phantoms.py)."""
    from _phase_phantoms import holo_series_pair

    return holo_series_pair(np.array([0.0, 90.0]))
