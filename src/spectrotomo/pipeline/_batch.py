"""Batch runs: many scans from a manifest, concurrently, resumable, one summary.

Each scan is one task running the whole pipeline into ``<out_dir>/<label>.zarr``
(report in ``<out_dir>/<label>-report``, log in ``<out_dir>/logs/<label>.log``).
Tasks run on

- ``workers=1`` (default): in this process, one after the other;
- ``workers=N``: a local pool of N processes (spawned, so no thread state is
  forked; a script calling it needs an ``if __name__ == "__main__":`` guard);
- ``executor=``: any ``concurrent.futures.Executor`` or a
  ``dask.distributed.Client``. On a dask cluster each scan asks for the worker
  resource ``GPU=1`` when the workers declare one (start one worker per GPU
  with ``--resources GPU=1``, as dask-cuda does), so a GPU never runs two scans.

Locally, with GPUs present, a shared queue of device ids holds each scan on
its own GPU: at most one scan per GPU at a time, the others wait.
"""

from __future__ import annotations

import os
import queue
import time
from pathlib import Path
from typing import Callable

from ._config import Config, load_config
from ._manifest import Manifest, ManifestError, load_manifest, scan_config
from ._monitor import stamped
from ._scan import GpuSlots, load_record, run_scan, scan_paths, scan_state

__all__ = ["run_batch", "batch_states"]


def _resolve(manifest, config, out_dir) -> tuple[Manifest, Config, Path]:
    manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    if config is None:
        config = manifest.config_path
    if config is None:
        config = Config()
    elif not isinstance(config, Config):
        config = load_config(config)
    out = Path(out_dir) if out_dir is not None else (
        manifest.out_dir or manifest.source.parent / f"{manifest.source.stem}_batch")
    return manifest, config, out


def _case_insensitive(path: Path) -> bool:
    """The file system at ``path`` (its nearest existing ancestor) ignores case."""
    path = Path(os.path.realpath(path))
    while not path.exists():
        path = path.parent
    other = Path(str(path).swapcase())
    return other != path and other.exists() and os.path.samefile(path, other)


def _refuse_shared_stores(manifest: Manifest, jobs) -> None:
    """Two scans whose stores resolve to one real path (a symlink in the
    output directory, labels differing only in case on a case-insensitive file system)
    would both write one store: refused before any work."""
    seen: dict[str, tuple[str, str]] = {}
    for spec, cfg in jobs:
        real = os.path.realpath(cfg.output.store)
        key = real.casefold() if _case_insensitive(real) else real
        if key in seen:
            label, store = seen[key]
            raise ManifestError(f"{manifest.source}: scans {label!r} and {spec.label!r} "
                                f"would write one store: {store} and {cfg.output.store} both "
                                f"resolve to {real}; give them labels naming different "
                                "stores, or remove the link")
        seen[key] = (spec.label, cfg.output.store)


def batch_states(manifest, *, out_dir=None, config=None) -> dict[str, str]:
    """State of every scan of ``manifest`` in ``out_dir``: complete / partial / new."""
    manifest, _, out = _resolve(manifest, config, out_dir)
    return {s.label: scan_state(out, s.label) for s in manifest.scans}


def _count_gpus(gpus: int | None) -> int:
    if gpus is not None:
        return int(gpus)
    from .._backend import cupy_available

    if not cupy_available():
        return 0
    import cupy

    return int(cupy.cuda.runtime.getDeviceCount())


class _Progress:
    """Counts of done / failed / remaining scans, to the console and ``batch.log``."""

    def __init__(self, total: int, log_file: Path, echo: Callable[[str], None]):
        self.total, self.done, self.failed = total, 0, 0
        self.t0 = time.perf_counter()
        self.file = open(log_file, "a")
        self.echo = echo

    def line(self, message: str) -> None:
        self.file.write(stamped(message))
        self.file.flush()
        self.echo(message)

    def finished(self, record: dict) -> None:
        if record["status"] == "complete":
            self.done += 1
            what = f"complete in {record['seconds']:.1f} s"
        else:
            self.failed += 1
            what = (f"FAILED after {record['seconds']:.1f} s: {record['error']} "
                    f"(traceback in logs/{record['label']}.log)")
        left = self.total - self.done - self.failed
        elapsed = time.perf_counter() - self.t0
        # throughput so far, so the estimate includes the concurrency actually reached
        eta = f", ~{elapsed / (self.done + self.failed) * left:.0f} s left" if left else ""
        self.line(f"[{self.done} done, {self.failed} failed, {left} remaining{eta}] "
                  f"{record['label']}: {what}")

    def close(self) -> None:
        self.file.close()


def _is_dask_client(executor) -> bool:
    return type(executor).__module__.split(".")[0] == "distributed" and hasattr(
        executor, "scheduler_info")


def _submit_all(executor, jobs, out, gpu_slots):
    """Submit every job; returns ``{future: label}`` and an ``as_completed`` iterator."""
    if _is_dask_client(executor):
        from distributed import as_completed

        workers = executor.scheduler_info().get("workers", {}).values()
        gpu = any("GPU" in (w.get("resources") or {}) for w in workers)
        extra = {"resources": {"GPU": 1}} if gpu else {}
        futures = {executor.submit(run_scan, spec, cfg, out, pure=False,
                                   key=f"scan-{spec.label}-{time.time_ns()}", **extra): spec.label
                   for spec, cfg in jobs}
        return futures, as_completed(futures)
    from concurrent.futures import as_completed

    futures = {executor.submit(run_scan, spec, cfg, out, gpu_slots=gpu_slots): spec.label
               for spec, cfg in jobs}
    return futures, as_completed(futures)


def _failed(label: str, exc: BaseException) -> dict:
    return {"label": label, "status": "failed", "seconds": 0.0,
            "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}


def _run_jobs(jobs, out, *, workers, executor, n_gpus, progress) -> dict[str, dict]:
    records: dict[str, dict] = {}
    if not jobs:
        return records
    workers = min(workers, len(jobs))  # no idle processes to spawn
    if executor is None and workers == 1:
        slots = GpuSlots(queue.Queue(), n_gpus) if n_gpus else None
        for spec, cfg in jobs:
            records[spec.label] = run_scan(spec, cfg, out, gpu_slots=slots)
            progress.finished(records[spec.label])
        return records
    owned = executor is None
    manager = None
    if owned:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    slots = None
    if n_gpus and not _is_dask_client(executor):
        if owned or type(executor).__name__ == "ProcessPoolExecutor":
            import multiprocessing

            manager = multiprocessing.get_context("spawn").Manager()
            slots = GpuSlots(manager.Queue(), n_gpus)
        else:
            slots = GpuSlots(queue.Queue(), n_gpus)
    try:
        futures, finished = _submit_all(executor, jobs, out, slots)
        for future in finished:
            label = futures[future]
            try:
                records[label] = future.result()
            except Exception as exc:  # a worker died (OOM kill, broken pool)
                records[label] = _failed(label, exc)
            progress.finished(records[label])
    finally:
        if owned:
            executor.shutdown(wait=True, cancel_futures=True)
        if manager is not None:
            manager.shutdown()
    return records


def run_batch(manifest, *, config=None, out_dir=None, workers: int = 1, executor=None,
              gpus: int | None = None, dry_run: bool = False,
              log: Callable[[str], None] = print) -> dict:
    """Run the pipeline for every scan of a manifest and summarise the batch.

    Parameters
    ----------
    manifest : path-like or Manifest
        ``.toml``, ``.yaml``/``.yml`` or ``.csv`` (see :mod:`._manifest`).
    config : path-like or Config, optional
        Shared pipeline config; default the manifest's ``config``, else defaults.
    out_dir : path-like, optional
        Default the manifest's ``out_dir``, else ``<manifest stem>_batch`` beside it.
    workers : int
        Scans at a time on the local process pool (ignored with ``executor``).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Where the scans run; the caller keeps ownership (not shut down).
    gpus : int, optional
        GPUs to share (one scan per GPU at a time); default: those cupy sees.
    dry_run : bool
        Only list the scans and their states (complete / partial / new).
    log : callable
        Console output (progress lines); the same lines go to ``batch.log``.

    Returns
    -------
    dict
        ``states`` (label -> state before the run: complete scans are skipped
        unless the config sets ``[output] overwrite = true``), ``records`` (label -> record),
        ``failed`` (labels), ``summary`` (xarray.Dataset of the table, absent on a
        dry run), ``out_dir``.
    """
    manifest, base, out = _resolve(manifest, config, out_dir)
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    # every scan's config first: a bad override stops the batch before any work
    jobs = [(spec, scan_config(base, spec, scan_paths(out, spec.label)[0]))
            for spec in manifest.scans]
    _refuse_shared_stores(manifest, jobs)
    states = {spec.label: scan_state(out, spec.label) for spec in manifest.scans}
    if dry_run:
        for spec in manifest.scans:
            log(f"{spec.label:<24} {states[spec.label]:<9} {spec.input_text}")
        return {"states": states, "records": {}, "failed": [], "out_dir": out}
    out.mkdir(parents=True, exist_ok=True)
    # [output] overwrite = true recomputes every scan; otherwise complete ones are skipped
    todo = [(s, c) for s, c in jobs if states[s.label] != "complete" or base.output.overwrite]
    progress = _Progress(len(todo), out / "batch.log", log)
    try:
        n_gpus = _count_gpus(gpus)
        where = "the given executor" if executor is not None else f"{workers} worker(s)"
        gpu_note = f", {n_gpus} GPU(s)" if n_gpus else ""
        progress.line(f"batch {manifest.source}: {len(jobs)} scans, "
                      f"{len(jobs) - len(todo)} already complete (skipped), {len(todo)} to run "
                      f"on {where}{gpu_note}; output {out}")
        records = _run_jobs(todo, out, workers=workers, executor=executor, n_gpus=n_gpus,
                            progress=progress)
        for spec, _ in jobs:
            if spec.label not in records:
                records[spec.label] = {**load_record(out, spec.label), "skipped": True}
        summary = _summarise(manifest, jobs, states, records, out)
        failed = [s.label for s, _ in jobs if records[s.label]["status"] != "complete"]
        progress.line(f"batch finished in {time.perf_counter() - progress.t0:.1f} s: "
                      f"{len(jobs) - len(failed)} complete, {len(failed)} failed"
                      f"{' (' + ', '.join(failed) + ')' if failed else ''}; summary "
                      f"{out / 'batch_summary.csv'}")
    finally:
        progress.close()
    return {"states": states, "records": records, "failed": failed, "summary": summary,
            "out_dir": out}


def _summarise(manifest, jobs, states, records, out):
    from ._batch_plots import plot_batch
    from ._batch_summary import write_summary

    rows = []
    for spec, cfg in jobs:
        rec = dict(records[spec.label])
        row = {"label": spec.label, **spec.labels, "input": spec.input_text,
               "status": rec.pop("status"), "state_before": states[spec.label],
               "seconds": rec.pop("seconds", float("nan")), "error": rec.pop("error", "")}
        rec.pop("label", None)
        rec.pop("skipped", None)
        rows.append({**row, **rec})
    label_keys = sorted({k for spec in manifest.scans for k in spec.labels})
    n_shells = max(cfg.segmentation.n_shells for _, cfg in jobs)
    ds = write_summary(rows, out, n_shells=n_shells)
    ds.attrs["label_keys"] = ",".join(label_keys)
    plot_batch(ds, out, label_keys=label_keys)
    return ds
