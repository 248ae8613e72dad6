"""The ``preprocess`` step, streamed one energy at a time: raw -> od.

Memory is one energy's projections (plus the mean over energies and one frame
per energy), not the whole series: a XANES tomogram of 50 energies needs the
same worker as a dual-energy pair. The optical density is written into the
``od`` group energy by energy and rewritten in place by the later passes; the
group is marked complete only after the last one, so a killed run leaves an
incomplete group that the next run rebuilds from the start.

Passes over the store (each reads and writes one energy at a time):

1. normalize + de-ring each energy (or retrieve the phase, by chunks of angles
   written as they come: :mod:`._phase_stream`), keep its frame at the angle
   nearest 0 deg;
2. register the energies on those frames, warp each energy onto the
   reference geometry; sum the mean over energies from the store by slabs of rows;
3. find the centre and the jitter on the mean, shift each energy by the jitter.

Within an energy every stage works by chunks of frames or rows
(:mod:`._prep_stream`): memory is the energies in flight (each written by its own
thread) plus a chunk's work arrays each, then the mean's stack with the centre
search or the jitter alignment on it (one more stack and fixed-size work:
``_prep_stream.align_bytes``; :func:`~spectrotomo.pipeline._plan.preprocess_in_flight`
plans it). The stacks held grow with the frame; the work arrays do not (measured at a
fixed chunk, gpu_bench/RESULTS.pipeline.md session 9). A phase run's
pass 1 holds no energy whole (a store chunk of angles being filled and one
retrieval chunk: :func:`~spectrotomo.pipeline._plan.phase_pass_bytes`); its passes
2-3 hold the mean's stack like any other run.

Each pass works on up to ``host_threads()`` energies at once in threads (numpy,
scipy.ndimage and the FFTs release the GIL), as many as fit in ``[compute]
memory_limit_gb`` (:func:`~spectrotomo.pipeline._plan.preprocess_in_flight`);
each energy is written to its own store chunks by its thread, and the mean sums the
energies in energy order, so the output does not depend on it.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ... import io
from ..._model import add_provenance, energy_pixel_sizes
from ._od_store import OdWriter as _OdWriter
from ._od_store import od_chunks
from ._od_store import od_coords as _coords
from ._phase_stream import phase_od

__all__ = ["preprocess", "od_chunks", "is_phase_run", "phase_od", "magnification_pixel_sizes",
           "scale_options", "tomography_scale_mode"]


def is_phase_run(cfg, raw: xr.Dataset | None = None) -> bool:
    """True when the run retrieves phase (configured, or the raw series has distances)."""
    if cfg.phase.method != "none":
        return True
    return raw is not None and "distance" in raw["projections"].dims


def _normalize_energy(ds: xr.Dataset, e: int, cfg) -> tuple[np.ndarray, int]:
    """Optical density (angle, y, x) float32 of energy ``e`` and its masked-pixel count
    (read and normalised by chunks of frames: :func:`._prep_stream.normalize_energy`)."""
    from ._prep_stream import normalize_energy

    darks = ds["darks"][e].values if "darks" in ds else None
    return normalize_energy(ds["projections"][e], ds["flats"][e].values, darks,
                            flat_mode=cfg.preprocess.flat_mode, rings=cfg.preprocess.rings)


def _normalize_all(ds: xr.Dataset, cfg) -> tuple[np.ndarray, dict]:
    """Optical density (energy, angle, y, x) of a raw tilt series, in memory (tests and
    gpu_bench scripts; the step itself streams the energies)."""
    pairs = [_normalize_energy(ds, e, cfg) for e in range(ds["projections"].sizes["energy"])]
    return np.stack([od for od, _ in pairs]), {"masked_pixels": sum(n for _, n in pairs)}


def magnification_pixel_sizes(ds: xr.Dataset, mode: str) -> np.ndarray | None:
    """Pixel sizes (n_energies,) nm that fix the magnification, or None to estimate.

    ``[preprocess] magnification``: "auto" uses the per-energy pixel sizes the
    raw series recorded (``pixel_size_energy``) when present, "metadata"
    requires them, "estimate", "linear" and "none" ignore them.
    """
    sizes = energy_pixel_sizes(ds)
    if mode == "metadata" and sizes is None:
        raise ValueError(
            "preprocess: [preprocess] magnification = \"metadata\" but the raw tilt series has "
            "no per-energy pixel sizes (coordinate 'pixel_size_energy'; the files recorded one "
            "pixel size for every energy, or none); use \"auto\", \"estimate\" or \"none\"")
    return sizes if mode in ("auto", "metadata") else None


def tomography_scale_mode(mode: str, energies) -> str:
    """``[preprocess] magnification`` of a tilt series: "auto" on a XANES tomography
    (:func:`spectrotomo.spectra.xanes_elements`: >= 8 energies across one edge) is
    "linear", else ``mode``.

    Why: across the white lines the free per-energy scale estimates carry a chemistry
    bias (up to 0.7 % at 642-646 eV on ``simulate:xanes3d`` seed 1, true draws within
    0.2 %) that misregisters the energies at every surface; the linear law averages it
    over the scan. Measured (joint solver, interior Mn valence MAE, tuning seeds 1 / 2):
    free 0.042 / 0.052, linear 0.038 / 0.046 ("none" on seed 1: 0.038); held-out seeds
    in gpu_bench/RESULTS.spectra.md.
    """
    from ...spectra import xanes_elements

    return "linear" if mode == "auto" and xanes_elements(energies) else mode


def scale_options(mode: str, energies) -> dict:
    """register_energies options of ``[preprocess] magnification`` besides the pixel sizes."""
    return {"estimate_scale": mode != "none",
            "scale_model": "linear" if mode == "linear" else "free",
            "energies": np.asarray(energies, dtype=float)}


def _registration(frames: np.ndarray, reference: int, *, pixel_sizes=None, **options):
    """Energy registration of ``frames`` (n_energies, ny, nx), one angle, onto the
    ``reference`` energy's geometry; ``options`` as :func:`scale_options` gives."""
    from ...recon.prep import estimate_energy_registration

    return estimate_energy_registration(frames, reference=reference, pixel_sizes=pixel_sizes,
                                        **options)


def _warp_energy(od_e: np.ndarray, reg, e: int) -> np.ndarray:
    """All angles (angle, y, x) float32 of energy ``e`` resampled in place with its
    registration (one transform for the stack, by chunks of frames)."""
    from ._prep_stream import warp_energy

    return warp_energy(od_e, float(reg.scales[e]), np.asarray(reg.shifts)[e])


def _register(od: np.ndarray, angles: np.ndarray, *, pixel_sizes=None, **options):
    """In-memory form of passes 1-2 (gpu_bench scripts): register the energies of
    ``od`` (energy, angle, y, x) at the angle nearest 0 deg onto the middle one
    and warp every angle."""
    reg = _registration(od[:, int(np.argmin(np.abs(angles)))], od.shape[0] // 2,
                        pixel_sizes=pixel_sizes, **options)
    for e in range(od.shape[0]):
        od[e] = _warp_energy(od[e], reg, e)
    return od, reg


def _registration_record(reg) -> tuple[dict, dict]:
    """(od variables, od attrs) of an energy registration."""
    source = reg.scale_source  # "metadata" | "estimated" | "fixed"
    variables = {
        "energy_shift": (("energy", "axis"), np.asarray(reg.shifts), {"units": "px"}),
        "energy_scale": (("energy",), np.asarray(reg.scales), {"units": "1", "source": source})}
    attrs = {"magnification_source": source, "registration_reference": int(reg.reference)}
    return variables, attrs


def _center_record(scores) -> tuple[dict, dict]:
    """(od variables, od attrs) of the centre search's candidate scores (QC figure)."""
    dim = ("center_candidate",)
    return ({"center_score_x": (dim, scores.x, {"units": scores.x_units,
                                                "long_name": scores.x_label}),
             "center_score": (dim, scores.metric, {"long_name": scores.metric_label})},
            {"center_method": scores.method})


def _in_order(fn, n: int, in_flight: int):
    """``fn(0), fn(1), ...`` in order, up to ``in_flight`` of them running at once in
    threads (a sliding window: memory is ``in_flight`` results)."""
    if in_flight <= 1:
        yield from map(fn, range(n))
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(in_flight, thread_name_prefix="spectrotomo-prep") as pool:
        window = deque(pool.submit(fn, e) for e in range(min(n, in_flight)))
        for e in range(in_flight, n + in_flight):
            result = window.popleft().result()
            if e < n:
                window.append(pool.submit(fn, e))
            yield result
            del result  # not kept while the next one is awaited: memory is the window


def _in_flight(cfg, shape) -> int:
    from ..._backend import host_threads
    from .._plan import preprocess_in_flight

    n_e, n_a, ny, nx = shape
    return preprocess_in_flight(n_energies=n_e, n_angles=n_a, ny=ny, nx=nx,
                                threads=host_threads(),
                                memory_limit_gb=cfg.compute.memory_limit_gb)


def _energy_source(ds: xr.Dataset, cfg, writer: _OdWriter, i0: int, in_flight: int):
    """Iterator of (energy ``e``'s frame at angle ``i0`` (y, x), its masked-pixel count),
    in energy order, of an attenuation series: each energy is normalised and written by
    a pool thread (memory: ``in_flight`` energies, none waiting to be written)."""
    def normalized(e):
        od_e, n_masked = _normalize_energy(ds, e, cfg)
        writer.write(e, od_e)
        return od_e[i0].copy(), n_masked

    return _in_order(normalized, ds["projections"].sizes["energy"], in_flight)


def _phase_shape(ds: xr.Dataset) -> tuple[int, int, int, int]:
    """od shape (energy, angle, y, x) of a raw holotomography series (distances dropped)."""
    return tuple(ds["projections"].sizes[d] for d in ("energy", "angle", "y", "x"))


def _pass_phase(ds: xr.Dataset, cfg, geom, writer: "_OdWriter", shape, i0: int, bar):
    """Pass 1 of a phase run: each energy's ``-phi`` retrieved and written by store
    chunks of angles (:func:`._phase_stream.phase_energy`); (frames at angle ``i0``
    (energy, y, x), 0 masked pixels: the phase branch does not count them)."""
    from ._phase_stream import phase_energy

    n_e, n_a, ny, nx = shape
    per = od_chunks(shape, cfg.reconstruct.chunk_rows)[1]
    groups = [slice(a, min(a + per, n_a)) for a in range(0, n_a, per)]
    frames = np.empty((n_e, ny, nx), np.float32)
    for e in range(n_e):  # energies are few; each streams its chunks of angles
        for angles, block in phase_energy(ds, e, geom, groups, cfg.preprocess.flat_mode):
            writer.write_angles(e, angles, block)
            if angles.start <= i0 < angles.stop:
                frames[e] = block[i0 - angles.start]
            del block
        bar.update()
    return frames, 0


def _pass_normalize(energies, shape, bar):
    """Pass 1: every energy's optical density written (by ``energies``,
    :func:`_energy_source`); (frames at the angle nearest 0 deg (energy, y, x),
    masked-pixel count)."""
    n_e, _, ny, nx = shape
    frames, masked = np.empty((n_e, ny, nx), np.float32), 0
    for e, (frame, n_masked) in enumerate(energies):
        frames[e], masked = frame, masked + n_masked
        bar.update()
    return frames, masked


def _pass_warp(writer: _OdWriter, reg, n_e: int, in_flight: int, bar) -> np.ndarray:
    """Pass 2: warp each energy onto the reference geometry (``reg`` None: as is), each
    read, warped and written back by a pool thread; then the mean optical density over
    energies (angle, y, x) (:func:`_mean_od`)."""
    def warp(e):
        if reg is not None:
            writer.write(e, _warp_energy(writer.read(e), reg, e))

    for _ in _in_order(warp, n_e, in_flight):
        bar.update()
    return _mean_od(writer, n_e, in_flight)


def _mean_od(writer: _OdWriter, n_e: int, in_flight: int) -> np.ndarray:
    """The mean over energies (angle, y, x) float32 of the written ``od``, summed in energy
    order (every voxel the same float32 operations as a sum of whole stacks) by slabs of
    detector rows (store chunks of about ``FIXED_CHUNK_BYTES`` per energy), in threads:
    memory is the mean and the slabs in flight, not energies beside a running sum."""
    from ._prep_stream import FIXED_CHUNK_BYTES

    _, n_a, ny, nx = writer.shape
    rows = writer.chunks[2]  # whole store chunks per slab: each is read once
    step = rows * max(1, FIXED_CHUNK_BYTES // (n_a * rows * nx * 4))
    slabs = [slice(r, min(r + step, ny)) for r in range(0, ny, step)]

    def slab_mean(i):
        total = writer.read(0, slabs[i])
        for e in range(1, n_e):
            np.add(total, writer.read(e, slabs[i]), out=total)
        total /= np.float32(n_e)
        return total

    mean = np.empty((n_a, ny, nx), np.float32)
    for rows, total in zip(slabs, _in_order(slab_mean, len(slabs), in_flight)):
        mean[:, rows] = total
    return mean


def _release_heap() -> None:
    """Hand the heap's free pages back to the system after a pass (glibc ``malloc_trim``,
    as :func:`spectrotomo.segmentation._blocks.release_free_memory` after a block loop;
    nothing elsewhere): a pass's chunk arrays (below glibc's mmap threshold) stay mapped
    in the heap, and the next pass, or the alignment, grows it again beside them."""
    from ..._backend import glibc_function

    trim = glibc_function("malloc_trim")
    if trim is not None:
        trim(0)


def _center(mean_od: np.ndarray, angles: np.ndarray, cfg) -> tuple[float, dict, dict]:
    """(rotation centre (column), od variables, od attrs) per ``[preprocess] center``."""
    from ...recon.prep import find_center

    if cfg.preprocess.center != "auto":
        return float(cfg.preprocess.center), {}, {}
    center, scores = find_center(mean_od, angles, return_metric=True)
    return center, *_center_record(scores)


def _jitter(mean_od, angles, center: float, cfg) -> tuple[np.ndarray, int]:
    """The jitter (angle, 2) px of the mean optical density (zeros unless ``[preprocess]
    align``) and the binning it was estimated at."""
    from ._prep_stream import align_jitter

    if not cfg.preprocess.align:
        return np.zeros((angles.size, 2)), 1
    return align_jitter(mean_od, angles, center, cfg.preprocess.align_iterations)


def _pass_unjitter(writer: _OdWriter, shifts: np.ndarray, n_e: int, in_flight: int,
                   bar) -> None:
    """Pass 3: the jitter ``shifts`` (angle, 2) px removed from every energy."""
    from ._prep_stream import unjitter_energy

    def unjitter(e):
        writer.write(e, unjitter_energy(writer.read(e), shifts))

    for _ in _in_order(unjitter, n_e, in_flight):
        bar.update()


def preprocess(ctx) -> None:
    """raw -> od: normalize, de-ring, register energies, find the centre, align jitter."""
    from .._monitor import Progress

    cfg = ctx.config
    # lazily indexed numpy, not dask: each energy is read whole by one pool thread, where
    # a dask graph per read only added scheduler work (Python, holding the GIL)
    ds = io.read_group(ctx.store, "raw", chunks=None)
    angles = ds["angle"].values
    phase = is_phase_run(cfg, ds)
    if phase:  # chunks of angles straight into the store: no energy is held whole
        from ._phase_stream import phase_geometry

        geom = phase_geometry(ds, cfg)
        shape, counts = _phase_shape(ds), geom.attrs()
    else:
        shape, counts = tuple(ds["projections"].shape), None
    n_e = shape[0]
    register = cfg.preprocess.register_energies and n_e > 1 and not phase
    sizes = magnification_pixel_sizes(ds, cfg.preprocess.magnification) if register else None
    reference = n_e // 2
    pixel_size = float(ds.attrs["pixel_size"])
    if sizes is not None:  # every energy gets the reference energy's geometry and pixel size
        pixel_size = float(sizes[reference])
    writer = _OdWriter(ctx.store, shape, od_chunks(shape, cfg.reconstruct.chunk_rows),
                       _coords(ds, cfg, phase, pixel_size), {"units": "rad" if phase else "1"})
    # progress per energy and pass (normalize, warp, jitter): bar or a log line per ~10 %
    bar = Progress(n_e * (3 if cfg.preprocess.align else 2), "preprocess", log=ctx.log,
                   unit="energy-pass")
    i0 = int(np.argmin(np.abs(angles)))
    in_flight = _in_flight(cfg, shape)
    frames, masked = (_pass_phase(ds, cfg, geom, writer, shape, i0, bar) if phase
                      else _pass_normalize(_energy_source(ds, cfg, writer, i0, in_flight),
                                           shape, bar))
    counts = counts if counts is not None else {"masked_pixels": masked}
    _release_heap()
    reg = (_registration(frames, reference, pixel_sizes=sizes,
                         **scale_options(tomography_scale_mode(cfg.preprocess.magnification,
                                                               ds["energy"].values),
                                         ds["energy"].values))
           if register else None)
    reg_vars, reg_attrs = _registration_record(reg) if reg is not None else ({}, {})
    mean_od = _pass_warp(writer, reg, n_e, in_flight, bar)
    _release_heap()
    center, center_vars, center_attrs = _center(mean_od, angles, cfg)
    del frames
    _release_heap()  # the centre search's chunks (~3x the mean at 256^2) before the alignment
    shifts, binning = _jitter(mean_od, angles, center, cfg)
    del mean_od  # pass 3 holds the energies in flight only
    _release_heap()
    if cfg.preprocess.align:
        _pass_unjitter(writer, shifts, n_e, in_flight, bar)
    bar.close()

    writer.add("jitter", ("angle", "axis"), shifts, {"units": "px", "axes": "(dy, dx)",
                                                     "binning": binning})
    for name, (dims, values, attrs) in {**reg_vars, **center_vars}.items():
        writer.add(name, dims, values, attrs)
    attrs = xr.Dataset(attrs={
        "pixel_size": pixel_size, "pixel_size_units": "nm", "signal": "phase" if phase else "od",
        "center": float(center), "center_units": "column index", **counts, **reg_attrs,
        **center_attrs})
    add_provenance(attrs, "pipeline.preprocess", inputs=[str(ctx.store)],
                   flat_mode=cfg.preprocess.flat_mode, rings=cfg.preprocess.rings,
                   center=float(center), align=cfg.preprocess.align,
                   magnification=cfg.preprocess.magnification,
                   magnification_source=reg_attrs.get("magnification_source"))
    writer.finish(attrs.attrs)
