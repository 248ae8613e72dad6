"""Store chunks of the volume groups (``recon``, ``chemistry``, ``valence3d``,
``density``): bounded whatever the detector size.

A chunk holds one energy / element / state, ``rows`` z rows (the reconstruct
step's chunk rows) and a y/x tile of at most :data:`TILE_PX` pixels. The compute
tasks still work on whole slabs of rows: a task's region spans every tile of its
rows (``io.missing_regions(whole=("y", "x"))``), its z range is one chunk's, so no
two tasks write one chunk. Readers that want less than a slab -- one element's
plane (report), a block (segment, profile) -- decode only the tiles they touch: before, one element's plane at 2048^2 decoded quantify's
whole (4 elements, 16 rows, 2048^2) chunk, 1 GiB.
"""

from __future__ import annotations

from ... import io

__all__ = ["TILE_PX", "volume_chunks", "kept_chunks"]

#: Largest y / x edge of a volume chunk, pixels. 256: chunks of 1-4 MiB at the usual
#: 4-16 rows (zarr's per-chunk cost stays small next to the decode), planes up to 256^2
#: in one tile (the demo's), and 8192 chunks per energy of a 2048^3 volume at 16 rows (a
#: 128 px tile: 32768, as many done-marker files). Measured at 256^3 (report_scale.py,
#: RESULTS.pipeline.md session 7): 128 px tiles saved 20 MiB of the report's 0.34 GiB.
TILE_PX = 256

_SPATIAL = ("z", "y", "x")


def volume_chunks(dims, shape, rows: int, *, tile: int | None = None) -> tuple[int, ...]:
    """Chunk shape of a volume variable of ``dims`` / ``shape``: ``rows`` along z,
    at most ``tile`` (default :data:`TILE_PX`) along y and x, one along any other dim
    (energy, element, state).

    >>> volume_chunks(("element", "z", "y", "x"), (4, 2048, 2048, 2048), 16)
    (1, 16, 256, 256)
    """
    tile = TILE_PX if tile is None else int(tile)
    size = {"z": int(rows), "y": tile, "x": tile}
    return tuple(max(1, min(int(n), size[d])) if d in _SPATIAL else 1
                 for d, n in zip(dims, shape))


def kept_chunks(ctx, group: str, name: str, planned: tuple[int, ...]) -> tuple[int, ...]:
    """``planned``, or the chunks of an unfinished ``group/name`` a killed run left (a
    resumed step keeps its stored layout: its written chunks stay valid, whatever this
    version or the config would choose now; ``overwrite`` starts afresh)."""
    stored = None if ctx.overwrite else io.stored_chunks(ctx.store, group, name)
    return stored if stored is not None and len(stored) == len(planned) else tuple(planned)
