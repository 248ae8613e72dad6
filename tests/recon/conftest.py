import pytest


@pytest.fixture(scope="session")
def small_particle():
    """The simulator's small particle (64^3), built once per session."""
    from spectrotomo.simulate import particle

    return particle("small", seed=0)
