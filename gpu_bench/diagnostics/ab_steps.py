"""Per-step record lines (time, peak RSS, cpu/wall, runnable threads) of one pipeline run,
and md5 hashes of od / recon / chemistry, to compare two trees run side by side under the
same load (outputs must hash equal when only parallelism changed).

Example (two trees started together)::

    PYTHONPATH=/tmp/base/src python gpu_bench/diagnostics/ab_steps.py demo /tmp/a.zarr \\
        acquire,preprocess,reconstruct,density,quantify,valence,segment,profile,report &
    PYTHONPATH=src python gpu_bench/diagnostics/ab_steps.py demo /tmp/b.zarr <same steps>
"""

import hashlib
import sys

import numpy as np

import spectrotomo
from spectrotomo import io
from spectrotomo.pipeline import Config, run_pipeline


def main(preset: str, store: str, steps: str) -> None:
    cfg = Config()
    cfg.input.path = f"simulate:{preset}"
    cfg.output.store = store
    cfg.output.overwrite = True
    print(spectrotomo.__file__)
    res = run_pipeline(cfg, steps=steps.split(","), log=lambda m: None,
                       report_dir=store + "-report")
    seconds = sum(r.seconds for r in res["records"])
    cpu = sum(r.cpu_seconds or 0.0 for r in res["records"])
    for r in res["records"]:
        print(r.line())
    print(f"TOTAL step s {seconds:.1f} cpu-s {cpu:.1f}")
    for group, var in (("od", "od"), ("recon", "mu"), ("chemistry", "amount")):
        if group in io.list_groups(store):
            a = np.ascontiguousarray(io.read_group(store, group)[var].values)
            print(group, hashlib.md5(a.tobytes()).hexdigest(), float(np.nanmean(a)))


if __name__ == "__main__":
    main(*sys.argv[1:4])
