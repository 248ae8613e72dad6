"""Report: figures, the ``profiles`` group as tables, and a summary (CSV + JSON) from
a finished store,
plus errors against ground truth when the store holds a simulated ``truth`` group.
"""

from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path

import numpy as np
import xarray as xr

from ... import io
from .._figures import (CLASS_COLORS, CLASS_NAMES, center_scores, class_counts,
                       class_fractions_of_counts, histogram, label_orthoslices, orthoslices,
                       orthoslices_along)
from .._report_reads import block_sums
from .._truth_errors import truth_errors
from .._valence3d_report import valence3d_report

__all__ = ["write_report", "truth_errors", "ome_zarr_dir", "CLASS_NAMES", "CLASS_COLORS"]

#: Report file stem of each profiled quantity (``<stem>_by_<by>.csv``/``.png``).
_PROFILE_FILES = {"tm_o_ratio": "tm_o", "electron_density": "electron_density",
                  "valence3d": "valence3d"}


def _profile_tables(store, out_dir: Path, draw=None) -> dict:
    """CSV (and PNG, drawn by ``draw(fn, *args, **kwargs)`` unless None) tables of the
    scalar maps in the ``profiles`` group, and the median of each per shell for the
    summary."""
    from ... import segmentation as seg
    from .profile import profile_table_of

    if "profiles" not in io.list_groups(store):
        raise ValueError(f"report: store {store} has no 'profiles' group; run the profile "
                         "step first (spectrotomo profile CONFIG)")
    profiles = io.read_group(store, "profiles").load()
    summary = {}
    for quantity, stem in _PROFILE_FILES.items():
        for by in ("shell", "depth", "class"):
            if f"{quantity}_mean_by_{by}" not in profiles:
                continue
            table = profile_table_of(profiles, quantity, by)
            seg.to_csv(table, out_dir / f"{stem}_by_{by}.csv")
            smoothed = None
            if f"{quantity}_smoothed_mean_by_{by}" in profiles:  # what the classes use
                smoothed = profile_table_of(profiles, f"{quantity}_smoothed", by)
                seg.to_csv(smoothed, out_dir / f"{stem}_smoothed_by_{by}.csv")
            if draw:
                draw(seg.plot_profile, table, out_dir / f"{stem}_by_{by}.png", smoothed=smoothed)
            if by == "shell":
                # nested per element for valence3d (element, shell)
                summary[f"{stem}_mean_by_shell"] = table["mean"].values.astype(float).tolist()
                summary[f"{stem}_median_by_shell"] = table["median"].values.astype(
                    float).tolist()
    return summary


def write_report(ctx) -> dict:
    """Figures (unless ``[output] figures = false``), profile tables and
    ``summary.json``/``summary.csv`` in ``ctx.report_dir``.

    Volumes are read by blocks, planes and bounded samples
    (:mod:`~spectrotomo.pipeline._report_reads`): memory per thread is about one
    store chunk, whatever the volume; the errors against a simulated truth read it by
    z slabs, one variable at a time (two boolean volumes held whole), up to
    :data:`~spectrotomo.pipeline._truth_errors.TRUTH_MAX_VOXELS` voxels.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ..._backend import host_threads

    out = Path(ctx.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = ctx.store
    # One pool for the errors against the truth (numpy, GIL released) and each figure
    # (bare Agg figures, no pyplot state: their image resampling and PNG compression
    # release the GIL); this thread writes the tables and counts the segmentation's
    # blocks meanwhile (one block at a time, in this thread: see _report). Tasks in the
    # pool never wait on the pool. Drawing some figures in a child process was measured
    # and dropped: its imports and store reads cost more than it took off this one (demo,
    # loaded VM: 8.3-9.2 -> 11.4-12.1 CPU s, CPU / runnable no better;
    # gpu_bench/RESULTS.pipeline.md); so was a spawned one-worker pool for the summary and
    # element figures, each task reading its own data: +1.3-3.4 CPU s at 256^3, +2.3-2.4 at
    # 128^3 (imports 0.6, the figures' reads again) and the worker's 0.26-0.32 GiB beside
    # the step's 0.32-0.40 (session 10)
    threads = _report_threads(store, host_threads(), ctx.config.compute.memory_limit_gb)
    with _old_objects_frozen(), ThreadPoolExecutor(
            threads, thread_name_prefix="spectrotomo-report") as pool:
        errors = pool.submit(truth_errors, store)
        drawn = []

        def draw(fn, *args, **kwargs):  # one figure, in the pool
            drawn.append(pool.submit(fn, *args, **kwargs))

        summary = _report(ctx, out, store, draw if ctx.config.output.figures else None)
        for figure in drawn:
            figure.result()  # a figure's error is the step's
        summary["errors_vs_truth"] = errors.result()
    return _finish(ctx, out, store, summary)


@contextlib.contextmanager
def _old_objects_frozen():
    """Python's cyclic garbage collector leaves the objects that exist now alone until
    the block ends (``gc.freeze``; ``gc.unfreeze`` after), unless a caller froze some
    already (then nothing is done: freezing does not nest).

    A full collection scans every tracked object while holding the GIL. At the report's
    start there are ~220 000 (the imports of numpy, xarray, dask, zarr and matplotlib),
    and the figures' many short-lived objects (artists, dask graphs) triggered 6-7 full
    collections per report: 1.6-1.7 s of wall time in which no other thread of the step
    ran Python (gc.callbacks, both sizes, load ~8). Frozen, a full collection scans only
    what the report made. Objects are still collected, and values do not change.
    """
    import gc

    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


#: The volumes the report reads by chunks: the largest chunk sizes its threads' memory.
_CHUNKED = (("chemistry", "amount"), ("recon", "mu"), ("density", "electron_density"),
            ("valence3d", "valence"), ("segmentation", "pores"))


def _report_threads(store, threads: int, memory_limit_gb: float) -> int:
    """Threads of the report's pool: ``threads``, as many as ``memory_limit_gb`` holds
    (:func:`~spectrotomo.pipeline._plan.report_in_flight`, as the run's plan says)."""
    from .._plan import report_in_flight, report_thread_bytes

    groups = io.list_groups(store)
    chunk = 0
    for group, name in _CHUNKED:
        if group in groups and name in (ds := io.read_group(store, group)):
            arr = ds[name].data
            chunk = max(chunk, int(np.prod(arr.chunksize)) * arr.dtype.itemsize)
    nz, ny, nx = (io.read_group(store, "segmentation").sizes[d] for d in ("z", "y", "x"))
    per_thread = report_thread_bytes(chunk_bytes=chunk, plane_voxels=ny * nx + nz * (ny + nx))
    return report_in_flight(thread_bytes=per_thread, threads=threads,
                            memory_limit_gb=memory_limit_gb)


def _segment_counts(mask, pores, cracks, classes=None) -> np.ndarray:
    """Voxels of one block: [mask, pores, cracks] + :func:`class_counts` of the classes."""
    counts = [np.count_nonzero(mask), np.count_nonzero(pores > 0), np.count_nonzero(cracks > 0)]
    return np.concatenate([np.array(counts, dtype=np.int64),
                           class_counts(classes) if classes is not None
                           else np.zeros(0, np.int64)])


def _report(ctx, out: Path, store, draw) -> dict:
    """Profile tables and the summary without the errors against the truth; each
    figure goes to ``draw(fn, *args, **kwargs)`` (None: no figures).

    The figures are handed out first, the largest first, each reading its own data;
    this thread then writes the profile tables and counts the segmentation by blocks
    while they are drawn: a third thread with work beside the pool's two, which wait on
    one another for the GIL in matplotlib (the counts' reads and sums release it). The
    counts on the pool went behind the figures (or held them back, first)."""
    groups = io.list_groups(store)
    seg_ds = io.read_group(store, "segmentation")  # lazy: read by blocks and planes
    seg_ds = seg_ds[[v for v in ("mask", "pores", "cracks", "composition_class")
                     if v in seg_ds]]  # no classes without chemistry (phase runs)
    val = None
    if "valence" in groups:  # 2D maps (element, y, x): read whole
        val = io.read_group(store, "valence")
        val = val[[v for v in ("valence", "quality_mask") if v in val]].load()
    if draw:
        _figures(store, groups, seg_ds, val, out, draw)
    # the profile tables next: written files that a kill mid-report leaves (and a rerun
    # replaces) while the rest still runs; their summary entries go last, as before
    tables = _profile_tables(store, out, draw)
    counts = block_sums(_segment_counts, *seg_ds.data_vars.values())
    density = _density_report(store, seg_ds, out, draw) if "density" in groups else {}
    v3d = valence3d_report(store, out, draw=draw) if "valence3d" in groups else {}
    summary = {"porosity": float(counts[1] / max(counts[0], 1)),
               "crack_fraction": float(counts[2] / max(counts[0], 1)), **density}
    if "chemistry" in groups:
        summary["class_fractions"] = (class_fractions_of_counts(counts[3:])
                                      if counts.size > 3 else None)
    for el in val["element"].values if val is not None else []:
        summary[f"mean_valence_{el}_2d"] = float(np.nanmean(val["valence"].sel(
            element=el).values))
    summary.update(v3d)
    summary.update(tables)
    return summary


def _figures(store, groups, seg_ds: xr.Dataset, val: xr.Dataset | None, out: Path,
             draw) -> None:
    """Hand every figure that needs nothing counted here to ``draw``, the largest first
    (the summary figure counts its class fractions itself: the classes' uint8 blocks,
    ~0.1 CPU s at 256^3)."""
    if "chemistry" in groups:
        from .._summary_figure import summary_figure

        draw(summary_figure, store, out / "summary_figure.png")
        _chemistry_figures(io.read_group(store, "chemistry"), seg_ds, out, draw)
    if "density" not in groups:
        mu = io.read_group(store, "recon")["mu"]
        draw(orthoslices, mu.isel(energy=-1), out / "mu_highest_energy.png",
             title=f"linear attenuation at {float(mu.energy[-1]):.1f} eV")
    if "od" in groups:
        _center_figure(store, out, draw)
    for el in val["element"].values if val is not None else []:
        quality = val["quality_mask"].sel(element=el) if "quality_mask" in val else None
        draw(orthoslices, val["valence"].sel(element=el), out / f"valence_{el}_2d.png",
             mask=quality, title=f"{el} effective valence (2D)", cmap="plasma")


def _finish(ctx, out: Path, store, summary: dict) -> dict:
    """OME-Zarr export (if configured), summary.json and summary.csv."""
    if ctx.config.output.ome_zarr:
        summary["ome_zarr"] = str(ome_zarr_dir(store))
        io.export_store(store, ome_zarr_dir(store), version=ctx.config.output.ome_zarr_version,
                        overwrite=True)  # the previous report's export of this store
    summary["warnings"] = list(ctx.results.get("warnings", []))  # validation and steps
    summary["parameters"] = ctx.config.to_dict()
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    with open(out / "summary.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["quantity", "value"])
        for key, value in _flatten(summary).items():
            writer.writerow([key, value])
    return summary


def ome_zarr_dir(store) -> Path:
    """Where ``[output] ome_zarr = true`` exports a store: ``<store>-ome`` beside it."""
    store = Path(store)
    return store.with_suffix("").parent / (store.with_suffix("").name + "-ome")


def _center_figure(store, out: Path, draw) -> None:
    """``center_scores.png``: the automatic centre search's candidates and metric."""
    od = io.read_group(store, "od")
    if "center_score" in od:
        draw(center_scores, od[["center_score_x", "center_score"]].load().assign_attrs(od.attrs),
             out / "center_scores.png")


def _density_report(store, seg_ds: xr.Dataset, out: Path, draw=None) -> dict:
    """Electron-density figures (by ``draw``, unless None) and mean values of a
    phase-contrast run (block sums in this thread)."""
    rho = io.read_group(store, "density")["electron_density"].isel(energy=0)
    mask = seg_ds["mask"]
    total, n = block_sums(_masked_sum, rho, mask)
    if draw:
        draw(orthoslices, rho, out / "electron_density.png", title="electron density",
             mask=mask)
        draw(histogram, rho, out / "electron_density_histogram.png", mask=mask)
    return {"mean_electron_density": float(total / n) if n else None}


def _masked_sum(values, mask) -> np.ndarray:
    """[sum (float64), count] of one block's values inside its mask."""
    inside = values[np.asarray(mask, dtype=bool)]
    return np.array([inside.sum(dtype=np.float64), inside.size], dtype=np.float64)


def _chemistry_figures(chem: xr.Dataset, seg_ds: xr.Dataset, out: Path, draw) -> None:
    """Element, TM/O and composition-class figures, each drawn by ``draw`` from the
    lazy groups (planes and samples)."""
    mask = seg_ds["mask"]
    elements = chem["element"].values  # one figure each, read together
    draw(orthoslices_along, chem["amount"], "element", [out / f"amount_{el}.png"
                                                       for el in elements],
         titles=[f"{el} amount" for el in elements], mask=mask)
    draw(orthoslices, chem["tm_o_ratio"], out / "tm_o_ratio.png", title="TM/O atomic ratio",
         mask=mask)
    draw(histogram, chem["tm_o_ratio"], out / "tm_o_histogram.png", mask=mask)
    draw(label_orthoslices, seg_ds["composition_class"], out / "composition_classes.png",
         names=CLASS_NAMES, colors=CLASS_COLORS, title="composition classes")


def _flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten(v, key + "."))
        else:
            flat[key] = v
    return flat
