"""The preprocess step's work on one energy, by chunks: memory follows a chunk, not a stack.

One energy's optical density (angle, y, x) float32 is held whole -- ring removal
needs every angle of a row, warping and jitter removal every row of a frame --
but every stage's work arrays follow a chunk of about :data:`FIXED_CHUNK_BYTES` of
float32 frames (or rows): at 2048^2 x 131 angles an energy is 2 GiB, the
normalisation's work arrays alone were 16x that (measured, tracemalloc), the
registration warp's float64 copies 6x.

Results equal the whole-stack calls: normalisation is per frame (the zinger test
also compares each frame with its neighbours in time: chunks carry one frame of
halo on each side), warping and Fourier shifting are per frame (the shift gets the
whole stack's padding), ring removal per row (``remove_rings(rows=...)``; the
"blind" column offsets are pooled over chunks, to float32 rounding).
The jitter alignment holds the whole mean stack and one copy of it (it reconstructs
and re-projects by slabs of rows, over the copy): above :data:`ALIGN_BYTES` it runs on a binned copy
(:func:`align_bin`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CHUNK_BYTES", "FIXED_CHUNK_BYTES", "MIN_CHUNK_FRAMES", "ALIGN_BYTES", "frame_parts",
           "ring_rows", "normalize_energy", "normalize_frames", "warp_energy",
           "unjitter_energy", "align_bin", "align_bytes", "align_jitter"]

_F4 = 4
#: float32 bytes of frames (or rows) per chunk at most: 8 frames of 2048^2, 131 angles x
#: 128 rows of 2048
CHUNK_BYTES = 128 * 2**20
#: float32 bytes of a chunk below :data:`CHUNK_BYTES`: a fixed size, so that the stages'
#: work arrays (normalize ~65 B per pixel) do not follow the frame size (an energy of
#: the demo, 131 x 128^2, is 3 chunks of frames, of ``simulate:large``, 131 x 256^2, 9).
#: Measured (preprocess, 2026-12-04 session 9, gpu_bench/RESULTS.pipeline.md): peak RSS
#: at 131 x 256^2 1.15-1.26 GiB with one 128 MiB chunk, 0.53-0.56 with 8 MiB, 0.44-0.45
#: with 4 MiB (0.42 at 128^2), CPU within the load's noise
FIXED_CHUNK_BYTES = 4 * 2**20
#: frames (or rows) per chunk at least (up to :data:`CHUNK_BYTES`): normalize reads two
#: halo frames per chunk, <= 1/8 more work with 16 frames
MIN_CHUNK_FRAMES = 16
#: Work memory the jitter alignment may use (a copy of the stack, shifted then
#: re-projected, mostly: :func:`align_bytes`). 576 MiB keeps the binning chosen when the
#: alignment held two copies within 1 GiB (131 angles: none to 928^2, 2 at 960^2 to
#: 1856^2, 4 from 1888^2; the same at every size with 2 threads, one step more at 752-816
#: and 1504-1648 px with 16), hence its accuracy and CPU time
ALIGN_BYTES = 576 * 2**20
#: the alignment's binned field is not made smaller than this (px), whatever its work
_ALIGN_MIN_PX = 128
#: the range of normalize's mask codes counted as masked pixels: 1 non-positive ..
#: 4 zinger (saturated, non-finite between; 5 "bad reference" was never counted here)
_COUNTED = (1, 4)


def frame_parts(n_angles: int, ny: int, nx: int) -> list[slice]:
    """Balanced chunks of frames of :data:`FIXED_CHUNK_BYTES` float32, or of
    :data:`MIN_CHUNK_FRAMES` frames where those are more, at most :data:`CHUNK_BYTES`
    (>= 1 frame): 131 angles of 128^2 in 3 chunks, of 256^2 in 9 (16 frames), 512^2 and
    1024^2 16 frames, 2048^2 8."""
    per = _per_chunk(ny * nx * _F4)
    n = -(-n_angles // per)
    bounds = np.linspace(0, n_angles, n + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def ring_rows(n_angles: int, nx: int) -> int:
    """Detector rows per chunk of ring removal (all angles of a row: one sinogram), as
    :func:`frame_parts`: :data:`FIXED_CHUNK_BYTES`, or :data:`MIN_CHUNK_FRAMES` rows where
    those are more, at most :data:`CHUNK_BYTES` (131 angles: 62 rows of 128, 31 of 256,
    16 of 2048)."""
    return _per_chunk(n_angles * nx * _F4)


def _per_chunk(unit_bytes: int) -> int:
    """Frames (or rows) of ``unit_bytes`` each per chunk: :data:`FIXED_CHUNK_BYTES`, or
    :data:`MIN_CHUNK_FRAMES` of them where those are more, at most :data:`CHUNK_BYTES`
    (>= 1)."""
    chunk = min(CHUNK_BYTES, max(FIXED_CHUNK_BYTES, MIN_CHUNK_FRAMES * unit_bytes))
    return max(1, chunk // unit_bytes)


def normalize_energy(projections, flats, darks, *, flat_mode: str, rings: str):
    """Optical density of one energy, normalised by chunks of frames, de-ringed by rows.

    Parameters
    ----------
    projections : array-like, shape (n_angles, ny, nx)
        Raw counts, indexed lazily (an xarray DataArray of the store): only a chunk of
        frames is read at a time.
    flats, darks : ndarray, shape (n, ny, nx)
        Reference frames of this energy (``darks`` may be None).
    flat_mode : str
        ``[preprocess] flat_mode``.
    rings : str
        ``[preprocess] rings`` ("none": no ring removal).

    Returns
    -------
    od : ndarray, shape (n_angles, ny, nx), float32
        Optical density (dimensionless).
    masked : int
        Pixels masked (non-positive, saturated, non-finite, zingers) over the stack.
    """
    from ...recon.prep import reduce_references, remove_rings

    n_a, ny, nx = projections.shape
    flat, dark = reduce_references(flats, darks, flat_mode=flat_mode)  # once, not per chunk
    projections = _AngleBlocks.of(projections)
    od, masked = np.empty((n_a, ny, nx), np.float32), 0
    for part in frame_parts(n_a, ny, nx):  # chunks of frames, each normalised batched
        od[part], n_masked = normalize_frames(projections, flat, dark, part,
                                              flat_mode=flat_mode)
        masked += n_masked
    if rings != "none":
        remove_rings(od, method=rings, rows=ring_rows(n_a, nx), out=od)
    return od, masked


class _AngleBlocks:
    """One energy's raw frames (angle, y, x), read lazily by whole store chunks of angles
    (``block`` each), each once: chunks of frames with their halo frames take them from
    the one or two blocks held (the blocks behind are dropped). Read chunk by chunk
    instead, the 131 angles of ``simulate:large`` (33-angle store chunks, 9 chunks of
    frames with halos) decoded every store chunk 3.25 times per energy, each decode a
    task of zarr's single event-loop thread (the step's main GIL holder: py-spy)."""

    def __init__(self, projections, block: int):
        self._source, self._block, self._held = projections, int(block), {}
        self.shape = tuple(projections.shape)

    @classmethod
    def of(cls, projections):
        """``projections`` wrapped when its store chunks of angles are several and small
        (a block of at most twice :data:`FIXED_CHUNK_BYTES` of raw counts, as the chunk
        of frames' float32: two of them are held), else itself (read chunk by chunk)."""
        block = getattr(projections, "encoding", {}).get("preferred_chunks", {}).get("angle")
        n_a, ny, nx = projections.shape
        itemsize = np.dtype(projections.dtype).itemsize
        if not block or block >= n_a or block * ny * nx * itemsize > 2 * FIXED_CHUNK_BYTES:
            return projections
        return cls(projections, block)

    def __getitem__(self, angles: slice) -> np.ndarray:
        """Frames ``angles`` (a slice of step 1, moving forward from call to call)."""
        lo, hi = angles.start, angles.stop
        first, last = lo // self._block, (hi - 1) // self._block
        for b in [b for b in self._held if b < first]:
            del self._held[b]
        parts = []
        for b in range(first, last + 1):
            start = b * self._block
            if b not in self._held:
                self._held[b] = np.asarray(self._source[start:start + self._block])
            parts.append(self._held[b][max(lo, start) - start:min(hi, start + self._block) - start])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def normalize_frames(projections, flat, dark, part: slice, *, flat_mode: str):
    """Optical density (part, ny, nx) float32 of the frames ``part`` of ``projections``
    (n_angles, ny, nx, read lazily) and its masked-pixel count: normalised with one halo
    frame on each side, which the zinger test compares each frame with, so chunks give
    the whole stack's values. ``flat``/``dark``: :func:`~spectrotomo.recon.prep.
    reduce_references` of the energy's references (reduced once, not per chunk)."""
    from ...recon.prep import normalize

    n_a = projections.shape[0]
    lo, hi = max(0, part.start - 1), min(n_a, part.stop + 1)
    chunk, report = normalize(np.asarray(projections[lo:hi]), flat, dark, flat_mode=flat_mode)
    inner = slice(part.start - lo, part.stop - lo)
    codes = report.mask[inner]
    return chunk[inner], int(np.count_nonzero((codes >= _COUNTED[0]) & (codes <= _COUNTED[1])))


def warp_energy(od_e: np.ndarray, scale: float, shift) -> np.ndarray:
    """``od_e`` (angle, y, x) float32 resampled in place with one energy's registration
    (scale, shift (dy, dx) px): :func:`~spectrotomo.recon.prep.warp`'s separable form by
    chunks of frames (its float64 work arrays follow the chunk)."""
    from ...recon.prep import warp

    scales, shifts = np.asarray([scale], float), np.asarray(shift, float).reshape(1, 2)
    for part in frame_parts(*od_e.shape):
        od_e[part] = warp(od_e[None, part], scales, shifts)[0]
    return od_e


def unjitter_energy(od_e: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """``od_e`` (angle, y, x) float32 shifted in place by ``-shifts`` (angle, 2) px, by
    chunks of frames as :func:`frame_parts` sizes them, with the whole stack's edge
    padding (same values as one call: ``fourier_shift(chunk_bytes=...)``)."""
    from ...recon.prep import fourier_shift

    frame = od_e[0].nbytes
    return fourier_shift(od_e, -shifts, out=od_e, chunk_bytes=_per_chunk(frame) * frame)


def align_bytes(n_angles: int, ny: int, nx: int) -> float:
    """Peak work memory of ``align_projections`` on (n_angles, ny, nx) with this host's
    threads, bytes beyond its input (:func:`~spectrotomo.recon.prep.align_work_bytes`)."""
    from ..._backend import host_threads
    from ...recon.prep import align_work_bytes

    return align_work_bytes(n_angles, ny, nx, threads=host_threads())


def align_bin(n_angles: int, ny: int, nx: int) -> int:
    """Binning (1, 2, 4, ...) of the frames the jitter alignment runs on: the smallest
    whose :func:`align_bytes` fits :data:`ALIGN_BYTES` (2048^2 x 131: 4)."""
    b = 1
    while (align_bytes(n_angles, ny // b, nx // b) > ALIGN_BYTES
           and min(ny, nx) // (2 * b) >= _ALIGN_MIN_PX):
        b *= 2
    return b


def _binned(stack: np.ndarray, b: int) -> np.ndarray:
    """(angle, ny // b, nx // b) float32 means of b x b pixels (edges cropped)."""
    n_a, ny, nx = stack.shape
    out = np.empty((n_a, ny // b, nx // b), np.float32)
    for part in frame_parts(n_a, ny, nx):
        cut = stack[part, :ny // b * b, :nx // b * b]
        out[part] = cut.reshape(cut.shape[0], ny // b, b, nx // b, b).mean(axis=(2, 4))
    return out


def align_jitter(mean_od: np.ndarray, angles: np.ndarray, center: float,
                 iterations: int) -> tuple[np.ndarray, int]:
    """Jitter (angle, 2) (dy, dx) px of the mean optical density and the binning used.

    Whole frames up to :data:`ALIGN_BYTES` of work (the same call as before); larger
    fields are aligned binned by :func:`align_bin` and the shifts scaled back (their
    precision is then ~1/20 of a binned pixel; the centre maps to the binned grid as
    ``(c - (b - 1) / 2) / b``).
    """
    from ...recon.prep import align_projections

    b = align_bin(*mean_od.shape)
    if b == 1:
        return np.asarray(align_projections(mean_od, angles, center=center,
                                            iterations=iterations, shift_stack=False)[1]), 1
    small = _binned(mean_od, b)
    shifts = align_projections(small, angles, center=(center - (b - 1) / 2.0) / b,
                               iterations=iterations, shift_stack=False)[1]
    return np.asarray(shifts) * b, b
