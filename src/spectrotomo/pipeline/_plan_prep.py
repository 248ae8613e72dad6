"""Memory of the steps that read the measured frames: preprocess (attenuation and
phase runs, the centre search) and the 2D XANES valence fit, bytes per worker with
the interpreter aside. Work factors are measured (tracemalloc, peak RSS), rounded up;
:mod:`._plan` adds the interpreter and chooses the energies in flight.
"""

from __future__ import annotations

__all__ = ["phase_pass_bytes", "center_work_bytes", "valence_bytes"]

_F4 = 4  # bytes per float32
_GIB = 2.0**30

#: Work arrays of the preprocess stages per byte of the float32 chunk they run on
#: (tracemalloc, 2026-12-04, gpu_bench/RESULTS.pipeline.md): normalize 9.9 (raw cast,
#: transmission, masks, the zinger test's 3x3 median -- 5 frames' worth at once since
#: session 10, 10 before, when normalize was 16.4 --, the filled optical density; 10.8-10.9
#: with its output chunk at 128^2 and 256^2),
#: "blind" ring removal 4.3, the registration warp ~6 (float64 copies), the jitter shift
#: ~4 (edge-padded copy, complex spectrum); the centre search ("com") ~4.6x its chunk of
#: the mean (``recon.prep._center._CHUNK_BYTES``, 64 MiB; 3.01x the mean in one chunk),
#: rounded up.
_NORMALIZE_WORK, _RINGS_WORK, _WARP_WORK, _SHIFT_WORK, _CENTER_WORK = 10.5, 4.5, 6.5, 4.5, 5.0
_CENTER_CHUNK = 64 * 2**20
#: Work arrays of one phase-retrieval chunk (``recon.phase.retrieve_phase``) per byte of
#: its float32 I/I0 (all distances; tracemalloc, 2026-12-04 session 7, RESULTS.prep.md):
#: CTF with 4 distances, magnification correction and distance registration 18.1x at
#: 512^2 and 1024^2 (the registration's complex128 spectra and correlation of every
#: image); Paganin, one distance, 6.7-6.9x (padded spectra); rounded up.
_PHASE_CTF_WORK, _PHASE_PAGANIN_WORK = 19.0, 7.5
#: Resident memory of the preprocess step beyond its arrays: zarr's concurrent chunk
#: buffers (10 chunks of up to 16 MiB of the od being read or written, decoded and
#: compressed copies), the stages' imports beyond INTERPRETER_BYTES and heap the
#: allocator keeps; sized from the measured peak RSS at 512-2048 px (RESULTS.pipeline.md).
_PREP_IO_BYTES = 0.75 * _GIB


def _prep_bytes(n_energies: int, n_angles: int, ny: int, nx: int,
                phase: bool = False) -> tuple[float, float, float]:
    """Preprocess memory, bytes: (per energy in flight, shared by the energies, the
    centre and jitter estimation on the mean).

    Per energy: its optical density (angle, y, x) float32, held whole, and the work
    arrays of the stage running on it, which follow a chunk of frames or rows
    (``steps._prep_stream.frame_parts``, ``ring_rows``): normalize on a chunk and its two halo
    frames (and the raw chunk read), ring removal on a chunk of rows beside the
    sorted ranks it keeps (~32 of the angles), the warp and the jitter shift on a
    chunk of frames (``phase``: a phase run, the jitter shift only); each energy is
    written by its own thread (``steps.preprocess._energy_source``). Shared: one frame
    per energy (registration).
    Estimation, with no energy in flight: the mean (summed by slabs of rows from the
    store: ``steps.preprocess._mean_od``) and the centre search's work
    (:func:`center_work_bytes`), or the jitter alignment (``align_bytes`` of the
    binned mean, ``align_bin``).
    """
    from .steps._prep_stream import align_bin, align_bytes, frame_parts, ring_rows

    frame = ny * nx * _F4
    stack = n_angles * frame
    chunk = max(p.stop - p.start for p in frame_parts(n_angles, ny, nx)) * frame
    halo = min(chunk + 2 * frame, stack)
    ring_chunk = min(ring_rows(n_angles, nx), ny) * n_angles * nx * _F4
    ranks = len(range(0, n_angles, max(1, n_angles // 32))) * frame
    work = max((_NORMALIZE_WORK + 1) * halo, ranks + _RINGS_WORK * ring_chunk,
               _WARP_WORK * chunk, _SHIFT_WORK * chunk)
    if phase:  # pass 1 is planned apart (phase_pass_bytes); no warp: only the jitter shift
        work = _SHIFT_WORK * chunk
    b = align_bin(n_angles, ny, nx)
    center = center_work_bytes(n_angles, ny, nx, halves=not phase)
    estimate = stack + max(center, align_bytes(n_angles, ny // b, nx // b))
    return stack + work, n_energies * frame, estimate


def phase_pass_bytes(n_energies: int, n_distances: int, n_angles: int, ny: int, nx: int,
                     *, ctf: bool = True, store_angles: int | None = None) -> float:
    """Pass 1 of a phase (holotomography) run, bytes (``steps._phase_stream``): the block
    of one od store chunk of angles being filled (``store_angles`` x a frame, float32),
    the frame kept per energy, and one chunk's (``_phase_stream.phase_parts``) I/I0 at
    every distance with the larger of its raw frames' normalisation (one distance at a
    time, halo frames included) and its retrieval's work arrays (:data:`_PHASE_CTF_WORK`
    with several distances, else :data:`_PHASE_PAGANIN_WORK`, x the chunk)."""
    from .steps._phase_stream import phase_parts

    frame = ny * nx * _F4
    part = phase_parts(slice(0, n_angles), max(1, n_distances), ny, nx)[0]
    per = part.stop - part.start
    chunk = max(1, n_distances) * per * frame
    normalize = (_NORMALIZE_WORK + 1) * min(per + 2, n_angles) * frame
    retrieve = (_PHASE_CTF_WORK if ctf and n_distances > 1 else _PHASE_PAGANIN_WORK) * chunk
    block = (n_angles if store_angles is None else min(store_angles, n_angles)) * frame
    return block + n_energies * frame + chunk + max(normalize, retrieve)


def center_work_bytes(n_angles: int, ny: int, nx: int, *, halves: bool = True) -> float:
    """Work memory of the centre search on the mean (n_angles, ny, nx), bytes, beyond the
    mean: the largest of the methods "auto" picks, each bounded by its chunks
    (tracemalloc, 2026-12-04 sessions 7 and 9, gpu_bench/center_memory_bench.py,
    RESULTS.prep.md):

    - "com": ~5x its chunk of the mean (:data:`_CENTER_CHUNK`);
    - "opposite": ``recon.prep.center_work_bytes`` (a chunk of pairs and its
      correlation batch: 288 MiB measured at 256 x 2048 frames for 72 and 360 angles
      alike) x 1.6 for the thread split seen on small frames (461 MiB at 720 x 32 x 512);
    - "vo": ``recon.prep.center_work_bytes`` (a batch of (candidate, row) images and
      the rows' sinogram: ~205 MiB measured at 180-360 angles x 256-512 columns).

    - "halves" (limited angle, the object out of the field of view in every row):
      ``recon.prep.center_work_bytes`` (a batch of candidates of 512 MiB, at least one
      candidate's 24 rows: ~100 B per pixel of each (candidate, row) slice, 9.4 GiB at
      2048 columns). Planned unless ``halves`` is False (a holotomography: its scans
      cover 180 deg or more, where "halves" does not apply): the plan is made before
      the angles and the mean are seen.
    """
    from ..recon.prep import center_work_bytes as search_bytes

    stack = n_angles * ny * nx * _F4
    com = _CENTER_WORK * min(stack, _CENTER_CHUNK)
    opposite = 1.6 * search_bytes(n_angles, ny, nx, "opposite")
    vo = search_bytes(n_angles, ny, nx, "vo")
    # "sharpness": "auto"'s fallback where "halves" finds nothing
    limited = (max(search_bytes(n_angles, ny, nx, "halves"),
                   search_bytes(n_angles, ny, nx, "sharpness")) if halves else 0.0)
    return max(com, opposite, vo, limited)


def _prep_peak(n_energies: int, n_angles: int, ny: int, nx: int, in_flight: int,
               n_distances: int = 0, store_angles: int | None = None) -> float:
    """Preprocess peak with ``in_flight`` energies at once, bytes (interpreter aside):
    their tasks (each writes its energy: none waits in ``steps.preprocess._in_order``)
    beside the shared arrays; or the estimation.
    ``n_distances`` > 0: a phase run, whose pass 1 streams chunks of angles
    (:func:`phase_pass_bytes`) and whose later passes are those above."""
    per_energy, shared, estimate = _prep_bytes(n_energies, n_angles, ny, nx, n_distances > 0)
    k = max(1, int(in_flight))
    phase = (phase_pass_bytes(n_energies, n_distances, n_angles, ny, nx,
                              store_angles=store_angles) if n_distances else 0.0)
    return max(k * per_energy + shared, estimate, phase) + _PREP_IO_BYTES


#: The valence step's LCF (every pixel's spectrum, one element window after the other):
#: fixed ~32 MiB (reference tables, the offset search) and ~240 B per pixel of work,
#: plus ~60 B per pixel and element of result maps (tracemalloc, 25-energy Mn L scans of
#: 128^2 and 256^2, 2026-12-04); planned for the four element windows
_FIT_FIXED, _FIT_PER_PIXEL = 32 * 2**20, 240 + 4 * 60
#: Resident memory of the valence step beyond its arrays (the spectra imports, the store
#: chunks of one energy's frames, allocator slack): measured peak RSS 0.27-0.39 GiB on the
#: demo and ``simulate:large`` scans, whose arrays are < 0.05 GiB
_VALENCE_IO_BYTES = 0.15 * _GIB


def valence_bytes(n_xanes: int, ny: int, nx: int) -> float:
    """Peak of the valence step on a 2D XANES scan of ``n_xanes`` frames of (ny, nx),
    bytes (interpreter aside): its float32 optical density, held whole, beside the
    largest of the per-energy normalisation (a frame's work, ``_NORMALIZE_WORK``, and
    its flats), the registration estimate on the stack binned to
    ``_xanes_stream.REGISTER_BYTES`` (``register_bin``) and the per-pixel fit."""
    from .steps._xanes_stream import REGISTER_WORK, register_bin

    frame = ny * nx * _F4
    b = register_bin(n_xanes, ny, nx)
    register = REGISTER_WORK * n_xanes * (ny // b) * (nx // b)
    normalize = (_NORMALIZE_WORK + 1 + 8) * frame  # work, the frame and ~8 flats/darks
    fit = _FIT_FIXED + _FIT_PER_PIXEL * ny * nx
    return n_xanes * frame + max(register, normalize, fit) + _VALENCE_IO_BYTES
