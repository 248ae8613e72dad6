"""Batch throughput: scans per hour for a batch of simulated scans with 1 and 2 workers.

Each scan is a whole pipeline run (simulate -> preprocess -> reconstruct ->
quantify -> valence -> segment -> report) into its own store; the batch runs
them on a local process pool (``run_batch(workers=N)``) or, with ``--gpus``,
one scan per GPU at a time, or with ``--dask`` on a dask LocalCluster of N
worker processes (the cluster is started before the timing). The reference is the same batch on one worker
(scans one after the other in one process), measured in the same run on the
same manifest; the printed ratio is the batch speed-up.

Example::

    PYTHONPATH=src python gpu_bench/batch_bench.py --preset demo --scans 4 --workers 1 2
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import harness


def write_manifest(root: Path, preset: str, n_scans: int, *, align: bool, figures: bool) -> Path:
    (root / "run.toml").write_text(f"[output]\nfigures = {str(figures).lower()}\n\n"
                                   f"[preprocess]\nalign = {str(align).lower()}\n")
    scans = []
    for i in range(n_scans):
        # different seeds and reduction depths: a state-of-charge series of one preset
        scans.append(f'[[scan]]\nlabel = "s{i}"\ninput = "simulate:{preset}"\n'
                     f"state_of_charge = {20 * i}\n[scan.simulate]\nseed = {i}\n"
                     f"reduction_depth_nm = {20.0 + 60.0 * i}\n")
    path = root / "batch.toml"
    path.write_text('config = "run.toml"\n\n' + "\n".join(scans))
    return path


def _dask_cluster(workers: int):
    """A LocalCluster of ``workers`` processes sharing the cores (OMP threads = cores / N)."""
    import os

    from distributed import Client, LocalCluster

    threads = max(1, (os.cpu_count() or 1) // workers)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0", env={"OMP_NUM_THREADS": str(threads)})
    client = Client(cluster)
    client.wait_for_workers(workers)
    return cluster, client


def run_once(manifest: Path, out: Path, workers: int, gpus: int | None, *,
             dask: bool = False) -> dict:
    from spectrotomo.pipeline import run_batch

    if out.exists():
        shutil.rmtree(out)
    cluster, client = _dask_cluster(workers) if dask else (None, None)
    try:
        run = harness.once(lambda: run_batch(manifest, out_dir=out, workers=workers, gpus=gpus,
                                             executor=client,
                                             log=lambda m: print("   ", m, flush=True)))
    finally:
        if client is not None:
            client.close()
            cluster.close()
    result, wall = run.out, run.best
    n_ok = len(result["records"]) - len(result["failed"])
    per_scan = [r["seconds"] for r in result["records"].values() if r["status"] == "complete"]
    return {"workers": workers, "wall_s": wall, "complete": n_ok, "failed": len(result["failed"]),
            "scans_per_hour": 3600.0 * n_ok / wall,
            "mean_scan_s": sum(per_scan) / max(len(per_scan), 1)}


def main() -> None:
    parser = harness.parser(__doc__, quick={"preset": "tiny", "scans": 2})
    parser.add_argument("--preset", default="demo", help="simulator preset (tiny, small, demo)")
    parser.add_argument("--scans", type=int, default=4, help="scans in the batch")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker counts to time (first = reference)")
    parser.add_argument("--gpus", type=int, default=None,
                        help="GPUs shared by the scans (default: every GPU cupy sees)")
    parser.add_argument("--align", action="store_true", help="jitter alignment on (slower)")
    parser.add_argument("--figures", action="store_true", help="per-scan report figures on")
    parser.add_argument("--out", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--dask", action="store_true",
                        help="run the scans on a dask LocalCluster of N workers (each with "
                        "OMP_NUM_THREADS = cores / N) instead of a process pool")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    harness.start(f"batch_bench: {args.scans} x {args.preset} scans, scans per hour")
    root = args.out or Path(tempfile.mkdtemp(prefix="batch_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    manifest = write_manifest(root, args.preset, args.scans, align=args.align,
                              figures=args.figures)
    results = []
    for workers in args.workers:
        print(f"--- {args.scans} x {args.preset} scans, {workers} worker(s)", flush=True)
        results.append(run_once(manifest, root / f"out_w{workers}", workers, args.gpus,
                                dask=args.dask))
    ref = results[0]
    harness.print_table(
        ["workers", "wall s", "scans/h", "mean scan s", "speed-up", "failed"],
        [[r["workers"], f"{r['wall_s']:.1f}", f"{r['scans_per_hour']:.1f}",
          f"{r['mean_scan_s']:.1f}", harness.ratio(r["scans_per_hour"], ref["scans_per_hour"]),
          r["failed"]] for r in results])
    if args.json:
        args.json.write_text(json.dumps({"preset": args.preset, "scans": args.scans,
                                         "results": results}, indent=1))
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
