import numpy as np
import pytest


@pytest.fixture(scope="session")
def phantom128():
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    return resize(shepp_logan_phantom(), (128, 128), anti_aliasing=True)


@pytest.fixture(scope="session")
def sino180(phantom128):
    from spectrotomo.simulate import project

    angles = np.arange(0.0, 180.0, 1.0)
    return angles, project(phantom128, angles)


@pytest.fixture(scope="session")
def small_particle():
    """The simulator's small particle (64^3), built once per session."""
    from spectrotomo.simulate import particle

    return particle("small", seed=0)
