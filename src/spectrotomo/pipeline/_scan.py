"""One scan of a batch: its paths and state, input preparation, and the task that runs it.

:func:`run_scan` is the unit of work a batch submits to an executor (a process
pool, a thread pool or a dask.distributed client): it never raises; a failure
comes back as a record with the error, and the traceback goes to the scan's log.
"""

from __future__ import annotations

import json
import time
import traceback
from contextlib import contextmanager, nullcontext
from pathlib import Path

from .. import io
from ._compute import local_dask
from ._config import Config
from ._manifest import ScanSpec
from ._monitor import stamped
from ._source import parse_source
from .steps.acquire import read_input_xanes, simulate_preset, simulated_groups

__all__ = ["scan_paths", "scan_state", "run_scan", "GpuSlots"]

#: Groups copied from a sample-store input, or written by the simulator.
INPUT_GROUPS = ("raw", "raw_xanes", "truth", "references")
RECORD = "scan.json"


def scan_paths(out_dir, label: str) -> tuple[Path, Path, Path]:
    """``(store, report_dir, log_file)`` of scan ``label`` inside ``out_dir``."""
    out_dir = Path(out_dir)
    return (out_dir / f"{label}.zarr", out_dir / f"{label}-report",
            out_dir / "logs" / f"{label}.log")


def _all_complete(store: Path) -> bool:
    """Every step group present and complete (which steps write a group depends on the
    input: absorption runs add chemistry/valence, phase runs density)."""
    if not (store / "zarr.json").is_file():
        return False
    groups = io.list_groups(store)
    leaves = [g for g, marker in groups.items() if marker is not None]
    return all(g in groups for g in ("raw", "od", "recon", "segmentation")) and all(
        io.is_complete(store, g) for g in leaves)


def _last_run_failed(log_file: Path) -> bool:
    try:
        lines = log_file.read_text().rstrip().splitlines()
    except FileNotFoundError:
        return False
    return bool(lines) and lines[-1].endswith("s") and ": failed in " in lines[-1]


def scan_state(out_dir, label: str) -> str:
    """``"complete"`` (every step done and the batch record written), ``"failed"``
    (the last attempt failed), ``"partial"`` (a store or lock exists) or ``"new"``."""
    store, report_dir, log_file = scan_paths(out_dir, label)
    if _last_run_failed(log_file):
        return "failed"
    if not store.exists():
        return "partial" if io.lock_path(store).exists() else "new"
    # the record is written after the last step: with it, every step group ran
    done = (report_dir / RECORD).is_file() and _all_complete(store)
    return "complete" if done else "partial"


class GpuSlots:
    """At most one scan per GPU at a time: a queue of free device ids.

    Built on a queue that the executor's workers share: ``queue.Queue`` for
    threads, a ``multiprocessing.Manager().Queue()`` for processes. (A dask
    cluster uses worker resources ``GPU=1`` instead: see :func:`run_batch`.)
    """

    def __init__(self, queue, n_gpus: int):
        self.queue = queue
        for gpu in range(n_gpus):
            queue.put(gpu)

    @contextmanager
    def hold(self):
        gpu = self.queue.get()  # blocks until a GPU is free
        try:
            yield gpu
        finally:
            self.queue.put(gpu)


@contextmanager
def _on_gpu(gpu: int | None):
    if gpu is None:
        yield
        return
    from .._backend import cupy_available

    if not cupy_available():
        yield
        return
    import cupy

    with cupy.cuda.Device(gpu):
        yield


def _missing(store: Path, groups) -> list[str]:
    have = io.list_groups(store) if (store / "zarr.json").is_file() else {}
    return [g for g in groups if g not in have or not io.is_complete(store, g)]


def prepare_input(spec: ScanSpec, config: Config, store: Path, log) -> None:
    """Put the scan's raw data into its store where the pipeline's acquire
    step cannot: simulated scans with simulator overrides, and store inputs."""
    if spec.is_simulated:
        preset = parse_source(spec.input).target
        groups = simulated_groups(preset)
        missing = _missing(store, groups.values())
        if not missing:
            return
        overrides = {k: (tuple(v) if isinstance(v, list) else v)
                     for k, v in spec.simulate.items() if k != "seed"}
        tree = simulate_preset(preset, seed=config.input.seed, **overrides)
        xanes = read_input_xanes(config)  # a measured XANES scan replaces the simulated one
        for child, group in sorted(groups.items(), key=lambda kv: kv[1] == "raw"):
            if group in missing:
                data = (xanes if group == "raw_xanes" and xanes is not None
                        else tree[child].to_dataset(inherit=False))
                io.write(store, group, data, overwrite=True)
        log(f"simulated {spec.input} (seed {config.input.seed}, overrides {overrides})")
    elif parse_source(spec.input).kind == "store":
        source = Path(spec.input)
        if "raw" not in io.list_groups(source):
            raise ValueError(f"input store {source} has no 'raw' group to process")
        for group in _missing(store, [g for g in INPUT_GROUPS if g in io.list_groups(source)]):
            io.write(store, group, io.read_group(source, group), overwrite=True)
        log(f"copied input groups from {source}")
    else:
        parse_source(spec.input).files()  # FileNotFoundError naming a missing file/pattern


def run_scan(spec: ScanSpec, config: Config, out_dir, *, gpu_slots: GpuSlots | None = None) -> dict:
    """Run the whole pipeline for one scan into ``out_dir/<label>.zarr``.

    Returns a record: ``label``, ``status`` ("complete" | "failed"),
    ``seconds``, ``error`` (one line) and, when complete, the metrics of
    :func:`~spectrotomo.pipeline._batch_summary.scan_metrics`. Never raises.
    """
    from ._batch_summary import scan_metrics
    from ._run import run as run_pipeline

    t0 = time.perf_counter()
    store, report_dir, log_file = scan_paths(out_dir, spec.label)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    record = {"label": spec.label, "status": "failed", "error": ""}
    # local_dask: on a dask worker, the scan's own dask work must not go back to the
    # cluster (that secedes the task and lets the worker start a second scan beside it)
    with open(log_file, "a") as fh, local_dask():
        def log(message: str) -> None:
            fh.write(stamped(message))
            fh.flush()

        log(f"scan {spec.label}: input {spec.input_text}")
        try:
            with io.store_lock(store, log=log):  # takes over a lock of a killed run
                prepare_input(spec, config, store, log)
                with (gpu_slots.hold() if gpu_slots else nullcontext(None)) as gpu, _on_gpu(gpu):
                    if gpu is not None:
                        log(f"running on GPU {gpu}")
                    run_pipeline(config, report_dir=report_dir, log=log)
            record.update(scan_metrics(store, report_dir, config))
            record["status"] = "complete"
        except Exception as exc:  # a failed scan must not stop the batch
            log("FAILED:\n" + traceback.format_exc())
            record["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        record["seconds"] = time.perf_counter() - t0
        log(f"scan {spec.label}: {record['status']} in {record['seconds']:.1f} s")
    if record["status"] == "complete":
        (report_dir / RECORD).write_text(json.dumps(record, indent=1, default=float))
    return record


def load_record(out_dir, label: str) -> dict:
    """The record a previous batch run saved for a complete scan."""
    return json.loads((scan_paths(out_dir, label)[1] / RECORD).read_text())
