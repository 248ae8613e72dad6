"""Pipeline scaling: wall time and peak memory per step with 1 and 2 dask workers,
and an out-of-core run of a volume 3x larger than the per-worker memory limit.

Part 1 (speed-up): the demo preset is simulated and preprocessed once (in this
process); then, for each worker count N, a copy of that store runs reconstruct
-> quantify -> valence -> segment -> profile -> report with the chunk steps (reconstruct:
slice-parallel, quantify: voxel-parallel) on a ``LocalCluster`` of N
single-threaded worker processes, started by the pipeline's own ``make_cluster``
(``[compute] cluster = "local"``: the same worker settings as a run). The cluster
is started and its workers import the stages (and xraydb) before the timing; the
reference is N = 1 in the same run on the same store. Steps that are not chunked
run in this process (ratio ~1 expected). ``--steps reconstruct quantify`` times only
the chunked steps; ``--repeats R`` runs each count R times in alternating order
(medians). Each run prints the CPU seconds of this process's main thread (the driver),
of this whole process (with the in-process scheduler), of each worker and of the
tasks' threads (dask's execute metrics); for chunked steps alone a CPU-bound ratio
follows: on a loaded machine wall times measure the load, CPU seconds much less.

Part 2 (out of core): the demo optical density is zoomed to ``--big-rows`` x
``--big-cols`` detector pixels, so that the reconstructed volume (energies x
rows x cols^2 float32) is ``--big-factor`` times the per-worker memory limit;
reconstruct + quantify then run on 2 workers with that limit. Reported: the
volume size, the limit, each step's wall time and the peak worker resident
set, and whether any worker was restarted (the nanny restarts a worker that
passes 95 % of its limit).

Peak memory is the resident set size sampled every 50 ms (this process and
each worker process).

Example::

    PYTHONPATH=src python gpu_bench/pipeline_bench.py --preset demo --workers 1 2
    PYTHONPATH=src python gpu_bench/pipeline_bench.py --preset demo --steps reconstruct \
        quantify --repeats 2 --skip-big
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import harness
import numpy as np

STEPS = ("reconstruct", "quantify", "valence", "segment", "profile", "report")
CHUNKED = ("reconstruct", "quantify")


def _config(store: Path, preset: str, address: str | None, *, chunk_rows: int = 16,
            memory_limit_gb: float = 8.0):
    from spectrotomo.pipeline import Config

    cfg = Config()
    cfg.input.path = f"simulate:{preset}"
    cfg.output.store = str(store)
    cfg.output.figures = False
    cfg.reconstruct.chunk_rows = chunk_rows
    cfg.compute.memory_limit_gb = memory_limit_gb
    if address:
        cfg.compute.scheduler = address
    return cfg


def _cluster(n_workers: int, memory_limit_gb: float):
    """The ``[compute] cluster = "local"`` cluster a run would start (same worker
    settings: ``make_cluster``), N single-threaded workers, warmed up."""
    from distributed import Client

    from spectrotomo.pipeline import Config, make_cluster

    cfg = Config()
    cfg.compute.cluster, cfg.compute.n_workers = "local", n_workers
    cfg.compute.threads_per_worker, cfg.compute.memory_limit_gb = 1, memory_limit_gb
    saved = dict(os.environ)  # the nanny leaves the workers' OMP_NUM_THREADS=1 here
    cluster = make_cluster(cfg.compute)
    os.environ.clear()
    os.environ.update(saved)
    client = Client(cluster, set_as_default=False)
    client.wait_for_workers(n_workers)
    client.run(_import_stages)  # one-time imports (~1-2 s per worker) are not step time
    return cluster, client


def _import_stages() -> None:
    # xraydb: spectra imports it at the first cross section (first quantify task: ~0.8 CPU s)
    import xraydb  # noqa: F401

    import spectrotomo.recon
    import spectrotomo.spectra  # noqa: F401


def _process_cpu() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


def _task_cpu(client) -> dict:
    """Thread CPU seconds of every task prefix so far (distributed's execute metrics)."""
    metrics = client.run_on_scheduler(
        lambda dask_scheduler: dict(dask_scheduler.cumulative_worker_metrics))
    return {k[1]: v for k, v in metrics.items()
            if len(k) == 4 and k[0] == "execute" and k[2] == "thread-cpu"}


def _records(result) -> dict:
    return {r.name: r for r in result["records"]}


def _one_run(base: Path, work: Path, preset: str, n: int, tag: str, steps,
             memory_limit_gb: float) -> dict:
    """One pipeline run of ``steps`` on a fresh copy of ``base`` with ``n`` workers: step
    records, and the CPU seconds of this process's main thread (the driver: plans,
    submits, reads between tasks), of this whole process, of each worker process and of
    the tasks' threads (by task name)."""
    import time

    from spectrotomo.pipeline import run_pipeline

    store = work / f"{tag}.zarr"
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(base, store)
    cluster, client = _cluster(n, memory_limit_gb)
    try:
        cfg = _config(store, preset, cluster.scheduler_address, memory_limit_gb=memory_limit_gb)
        load = os.getloadavg()[0]
        w0, t0, d0, m0 = client.run(_process_cpu), _task_cpu(client), time.thread_time(), \
            _process_cpu()
        run = harness.once(lambda: run_pipeline(cfg, steps=list(steps),
                                                report_dir=work / f"{tag}-report",
                                                log=lambda m: print("   ", m, flush=True)))
        driver, main = time.thread_time() - d0, _process_cpu() - m0
        time.sleep(1.5)  # workers send their execute metrics with the next heartbeat
        w1, t1 = client.run(_process_cpu), _task_cpu(client)
    finally:
        client.close()
        cluster.close()
    return {"records": _records(run.out), "wall": run.best, "driver": driver, "main": main,
            "workers": [w1[a] - w0[a] for a in w1], "load": (load, os.getloadavg()[0]),
            "tasks": {k: v - t0.get(k, 0.0) for k, v in t1.items() if v - t0.get(k, 0.0) > 0}}


def _median(values) -> float:
    return float(np.median(list(values)))


def speedup(base: Path, work: Path, preset: str, worker_counts, memory_limit_gb: float, *,
            steps=STEPS, repeats: int = 1) -> dict:
    """Runs of ``steps`` with each worker count, ``repeats`` times in alternating order
    (1 2, 2 1, ...: a load that drifts during the bench hits both counts alike); per
    step the median wall time over the repeats."""
    order = [n for r in range(repeats)
             for n in (worker_counts if r % 2 == 0 else worker_counts[::-1])]
    runs = {n: [] for n in worker_counts}
    for i, n in enumerate(order):
        print(f"\nrun {i + 1} of {len(order)}: {n} worker(s)", flush=True)
        run = _one_run(base, work, preset, n, f"r{i}-w{n}", steps, memory_limit_gb)
        runs[n].append(run)
        cpu = sum(run["workers"])
        print(f"  load {run['load'][0]:.1f} -> {run['load'][1]:.1f}; CPU s: driver (main thread) "
              f"{run['driver']:.2f}, this process {run['main']:.2f}, workers "
              f"{' + '.join(f'{w:.2f}' for w in run['workers'])} = {cpu:.2f}, tasks' threads "
              + ", ".join(f"{k} {v:.2f}" for k, v in run["tasks"].items()), flush=True)
    _speedup_table(preset, worker_counts, runs, steps)
    return runs


def _speedup_table(preset: str, worker_counts, runs: dict, steps) -> None:
    ref = worker_counts[0]
    print(f"\n{preset} preset: per-step wall time (s, median of {len(runs[ref])}), peak RSS "
          "(GiB) of this process / largest worker, CPU s per wall s (this process + workers) and "
          "mean runnable threads (last run), speed-up vs the first worker count")

    def seconds(n, step):
        return _median(r["records"][step].seconds for r in runs[n])

    rows = []
    for step in steps:
        row = [step + (" (chunked)" if step in CHUNKED else "")]
        for n in worker_counts:
            r = runs[n][-1]["records"][step]
            w = "-" if r.peak_worker_rss_gib is None else f"{r.peak_worker_rss_gib:.2f}"
            cpu = "" if r.cpu_seconds is None else f", cpu/wall {r.cpu_per_wall:.2f}"
            run_q = "" if r.runnable is None else f", runnable {r.runnable:.2f}"
            row.append(f"{seconds(n, step):.2f} ({r.peak_rss_gib:.2f} / {w}{cpu}{run_q})")
        row += [harness.ratio(seconds(ref, step), max(seconds(n, step), 1e-9))
                for n in worker_counts[1:]]
        rows.append(row)
    harness.print_table(["step", *(f"{n} worker(s): s (main / worker GiB)" for n in worker_counts),
                         *(f"speed-up {n}" for n in worker_counts[1:])], rows)
    chunked = [s for s in steps if s in CHUNKED]
    total = {n: sum(seconds(n, s) for s in chunked) for n in worker_counts}
    for n in worker_counts[1:]:
        print(f"chunked steps together: {total[ref]:.2f} s -> {total[n]:.2f} s with {n} "
              f"workers = {total[ref] / total[n]:.2f}x (target >= 1.8x for 2)")
    if set(steps) <= set(CHUNKED):
        _cpu_bound_ratio(worker_counts, runs)


def _cpu_bound_ratio(worker_counts, runs: dict) -> None:
    """The speed-up the measured CPU seconds allow on an otherwise idle machine of
    ``os.cpu_count()`` cores: a run takes at least the driver's CPU plus its busiest
    worker's, and at least all its CPU (every process) spread over the cores. On a
    loaded machine this is the comparison to trust: wall times there measure the load."""
    cores = os.cpu_count() or 1

    def bound(run):
        return max(run["driver"] + max(run["workers"]),
                   (run["main"] + sum(run["workers"])) / cores)

    ref = worker_counts[0]
    base = _median(bound(r) for r in runs[ref])
    for n in worker_counts[1:]:
        other = _median(bound(r) for r in runs[n])
        print(f"CPU-bound time on {cores} idle cores (chunked steps): {base:.2f} s -> {other:.2f} s "
              f"with {n} workers = {base / other:.2f}x (medians over the repeats)")


def _zoomed_od(base: Path, out: Path, rows: int, cols: int, chunk_rows: int) -> tuple[int, ...]:
    """The demo od zoomed to (energy, angle, rows, cols), written as the od group of ``out``."""
    import xarray as xr
    from scipy import ndimage

    from spectrotomo import io

    od = io.read_group(base, "od").load()
    _, _, ny, nx = od["od"].shape
    data = ndimage.zoom(od["od"].values, (1, 1, rows / ny, cols / nx), order=1)
    data = data.astype(np.float32)
    px = float(od.attrs["pixel_size"]) * nx / cols
    center = (float(od.attrs["center"]) + 0.5) * cols / nx - 0.5
    ds = xr.Dataset({"od": (("energy", "angle", "y", "x"), data, {"units": "1"}),
                     "jitter": od["jitter"]},
                    coords={"energy": od["energy"], "angle": od["angle"],
                            "y": ("y", np.arange(rows) * px, {"units": "nm"}),
                            "x": ("x", np.arange(cols) * px, {"units": "nm"})},
                    attrs={**od.attrs, "pixel_size": px, "center": center})
    # chunks as the preprocess step stores od: one energy, the reconstruct task's rows
    # (all angles: 131 x 8 rows x 512 px float32 is 2 MiB)
    io.write(out, "od", ds, encoding={"od": {"chunks": (1, data.shape[1], chunk_rows, cols)}})
    return data.shape


def out_of_core(base: Path, work: Path, preset: str, *, factor: float, rows: int, cols: int,
                chunk_rows: int) -> None:
    from spectrotomo.pipeline import run_pipeline

    store = work / "big.zarr"
    shutil.rmtree(store, ignore_errors=True)
    shape = _zoomed_od(base, store, rows, cols, chunk_rows)
    n_e, _, ny, nx = shape
    volume_gib = n_e * ny * nx * nx * 4 / 2**30
    limit = volume_gib / factor
    print(f"\nout of core: volume {n_e} x {ny} x {nx} x {nx} float32 = {volume_gib:.2f} GiB; "
          f"per-worker memory limit {limit:.2f} GiB ({factor:g}x smaller), 2 workers, "
          f"chunk_rows {chunk_rows}")
    cluster, client = _cluster(2, limit)
    try:
        before = set(client.scheduler_info()["workers"])
        cfg = _config(store, preset, cluster.scheduler_address, chunk_rows=chunk_rows,
                      memory_limit_gb=limit)
        result = run_pipeline(cfg, steps=["reconstruct", "quantify"],
                              log=lambda m: print("   ", m, flush=True))
        after = set(client.scheduler_info()["workers"])
    finally:
        client.close()
        cluster.close()
    harness.print_table(
        ["step", "wall s", "peak worker RSS GiB", "% of the limit", "main process GiB"],
        [[step, f"{r.seconds:.1f}", f"{r.peak_worker_rss_gib:.2f}",
          f"{100 * r.peak_worker_rss_gib / limit:.0f} %", f"{r.peak_rss_gib:.2f}"]
         for step, r in _records(result).items()])
    print(f"workers restarted: {len(before - after)} (same worker addresses before and after: "
          f"{before == after})")


def main() -> None:
    # --quick skips the out-of-core part: a worker limit 3x below a tiny volume is below what a
    # worker process itself needs
    parser = harness.parser(__doc__, quick={"preset": "tiny", "skip_big": True})
    parser.add_argument("--preset", default="demo", help="simulator preset (tiny, small, demo)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="dask worker counts to time (first = reference)")
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS,
                        help="steps of the speed-up part (e.g. reconstruct quantify: the chunked "
                        "ones, which also prints the CPU-bound ratio)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs per worker count, in alternating order")
    parser.add_argument("--memory-limit-gb", type=float, default=4.0,
                        help="per-worker memory limit in the speed-up part (GiB)")
    parser.add_argument("--big-factor", type=float, default=3.0,
                        help="volume / per-worker memory limit in the out-of-core part")
    parser.add_argument("--big-rows", type=int, default=256, help="detector rows (out of core)")
    parser.add_argument("--big-cols", type=int, default=512, help="detector columns (out of core)")
    parser.add_argument("--big-chunk-rows", type=int, default=8,
                        help="rows per task in the out-of-core part")
    parser.add_argument("--skip-big", action="store_true", help="skip the out-of-core part")
    parser.add_argument("--skip-speedup", action="store_true", help="skip the speed-up part")
    parser.add_argument("--work", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    harness.start(f"pipeline_bench: {args.preset}, dask workers {args.workers} and out of core")

    from spectrotomo.pipeline import run_pipeline

    work = args.work or Path(tempfile.mkdtemp(prefix="pipeline_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    base = work / "base.zarr"
    if not base.exists():
        t = harness.once(lambda: run_pipeline(_config(base, args.preset, None),
                                              steps=["acquire", "preprocess"],
                                              log=lambda m: print("   ", m, flush=True)))
        print(f"simulate + preprocess ({args.preset}): {t.best:.1f} s "
              "(in this process, not compared)")
    if not args.skip_speedup:
        speedup(base, work, args.preset, args.workers, args.memory_limit_gb, steps=args.steps,
                repeats=args.repeats)
    if not args.skip_big:
        out_of_core(base, work, args.preset, factor=args.big_factor, rows=args.big_rows,
                    cols=args.big_cols, chunk_rows=args.big_chunk_rows)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
