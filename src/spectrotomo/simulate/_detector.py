"""The detector of the forward model: illumination, gain errors, counts of the
projections, flats and darks (Poisson), one energy at a time."""

from __future__ import annotations

import numpy as np

__all__ = ["DARK_LEVEL"]

DARK_LEVEL = 100.0  # mean dark counts per pixel and frame


def _beam_profile(ny, nx):
    """Smooth illumination in (0.8, 1]: a broad Gaussian with a slight gradient."""
    y = (np.arange(ny) - (ny - 1) / 2) / ny
    x = (np.arange(nx) - (nx - 1) / 2) / nx
    prof = np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / 2.0) * (1 - 0.05 * (x[None, :] + 0.5))
    return (prof / prof.max()).astype(np.float32)


def _detector_frames(rng, od, photons, n_flats, n_darks, ring_strength) -> dict:
    """Projections, flats, darks (counts) and the gain error the flats do not record.

    Every frame carries the dark signal: a projection's counts are one Poisson draw
    of ``beam * gain * exp(-od) + DARK_LEVEL`` (the sum of the two independent
    Poisson signals is Poisson with the summed mean), flats of ``beam +
    DARK_LEVEL``. Each energy draws from its own child of ``rng``
    (``Generator.spawn``), in threads: the counts depend on the seed only, not on
    the number of threads (numpy's samplers release the GIL). Counts are uint16 when
    every frame's fit, else uint32 (float32 expectations without ``photons``).
    """
    from concurrent.futures import ThreadPoolExecutor

    from .._backend import host_threads

    n_e, n_a, nz, nx = od.shape
    gain = np.exp(ring_strength * (0.8 * rng.normal(size=(1, nx)) + 0.6 * rng.normal(size=(nz, nx))))
    gain = gain.astype(np.float32)
    beam = np.float32(photons if photons is not None else 2e4) * _beam_profile(nz, nx)
    dark = np.float32(DARK_LEVEL)
    frames = _Frames({"projections": od.shape, "flats": (n_e, n_flats, nz, nx),
                      "darks": (n_e, n_darks, nz, nx)},
                     np.float32 if photons is None else np.uint16)
    children = rng.spawn(n_e)

    def one(e):  # expected counts, then (with photons) one Poisson draw per frame set
        means = {"projections": (beam * gain) * np.exp(-od[e]) + dark,
                 "flats": np.broadcast_to(beam + dark, (n_flats, nz, nx)),
                 "darks": np.broadcast_to(dark, (n_darks, nz, nx))}
        for name, mean in means.items():  # the draw order fixes each seed's noise
            frames.put(name, e, mean if photons is None else children[e].poisson(mean))

    with ThreadPoolExecutor(max(1, min(host_threads(), n_e))) as pool:
        list(pool.map(one, range(n_e)))
    return {**frames.arrays, "gain": gain}


class _Frames:
    """Detector frames filled one energy at a time in the narrowest count dtype.

    Counts go straight into uint16 arrays (a quarter of the int64 draws' stack, 550
    MiB at 256^3, and no cast of the whole stack); the first energy whose counts
    exceed 65535 turns all three into uint32 (the same dtype rule as one cast of the
    whole stacks: every frame kind uint16 when all counts fit, else uint32).
    """

    def __init__(self, shapes: dict, dtype):
        from threading import Lock

        self.arrays = {name: np.empty(shape, dtype) for name, shape in shapes.items()}
        self._lock = Lock()

    def put(self, name: str, e: int, values: np.ndarray) -> None:
        """Store ``values`` as energy ``e`` of frame kind ``name`` (threads: one lock)."""
        top = int(values.max()) if values.dtype.kind in "iu" else None
        with self._lock:
            if top is not None and top > np.iinfo(self.arrays[name].dtype).max:
                self.arrays = {k: v.astype(np.uint32) for k, v in self.arrays.items()}
            self.arrays[name][e] = values
