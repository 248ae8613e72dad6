"""The ``od`` group of the preprocess step: its store chunks, coordinates and a writer
that fills it energy by energy (or by chunks of angles) and marks it complete last."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ... import io

__all__ = ["od_chunks", "OdWriter", "od_coords"]


def od_chunks(shape: tuple[int, int, int, int], rows: int,
              max_bytes: int = 16 * 2**20) -> tuple[int, int, int, int]:
    """Store chunks of the (energy, angle, y, x) optical density: one energy and the
    reconstruction's row chunk, so a reconstruct task reads only its own rows
    (zarr's default chunks mix energies and rows: ~8x more read per task); angles
    are split only to keep a chunk under ``max_bytes`` (float32)."""
    _, n_a, ny, nx = shape
    rows = min(rows, ny)
    angles = max(1, min(n_a, max_bytes // (4 * rows * nx)))
    return (1, angles, rows, nx)


class OdWriter:
    """The ``od`` group filled energy by energy (rewritable until complete)."""

    def __init__(self, store, shape, chunks, coords, attrs):
        self.store, self.shape, self.chunks = store, tuple(shape), tuple(chunks)
        # the passes rewrite energies in place, so a killed run cannot resume half-way:
        # start from an empty group (no array of an earlier run's options survives)
        io.remove_group(store, "od")
        io.init_array(store, "od", "od", shape=shape, dtype="float32", chunks=chunks,
                      dims=("energy", "angle", "y", "x"), coords=coords, attrs=attrs)

    def write(self, e: int, od_e: np.ndarray) -> None:
        io.write_region(self.store, "od", "od", (slice(e, e + 1),), od_e[None])

    def write_angles(self, e: int, angles: slice, block: np.ndarray) -> None:
        """Angles ``angles`` (a whole number of store chunks) of energy ``e``."""
        io.write_region(self.store, "od", "od", (slice(e, e + 1), angles), block[None])

    def read(self, e: int, rows: slice = slice(None)) -> np.ndarray:
        """Energy ``e`` (angle, y, x), or its detector rows ``rows``."""
        return io.read_region(self.store, "od", "od", (slice(e, e + 1), slice(None), rows),
                              allow_incomplete=True)[0]

    def add(self, name: str, dims, values, attrs) -> None:
        """A small variable (shifts, scores), written whole."""
        values = np.asarray(values)
        io.init_array(self.store, "od", name, shape=values.shape, dtype=values.dtype,
                      chunks=tuple(max(1, s) for s in values.shape), dims=dims, attrs=attrs)
        io.write_region(self.store, "od", name, (), values)

    def finish(self, attrs: dict) -> None:
        io.mark_complete(self.store, "od", attrs=attrs)


def od_coords(ds: xr.Dataset, cfg, phase: bool, pixel_size: float) -> dict:
    """od coordinates: y and x in the registered pixel size (nm)."""
    scale = pixel_size / float(ds.attrs["pixel_size"])
    energy = [cfg.phase.energy_ev] if phase and cfg.phase.energy_ev else ds["energy"].values
    return {"energy": ("energy", energy, ds["energy"].attrs),
            "angle": ("angle", ds["angle"].values, ds["angle"].attrs),
            **{k: (k, ds[k].values * scale, ds[k].attrs) for k in ("y", "x")}}
