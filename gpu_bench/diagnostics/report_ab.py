"""The report step alone on a copy of a finished store, N times: each run's StepRecord
(wall s, CPU s, peak RSS, cpu/wall, runnable). Start two trees side by side to compare
them under the same load, e.g. (quiet machine, 3 rounds)::

    for i in 1 2 3; do
      PYTHONPATH=/tmp/main/src python gpu_bench/diagnostics/report_ab.py STORE /tmp/a.zarr 1 &
      PYTHONPATH=src python gpu_bench/diagnostics/report_ab.py STORE /tmp/b.zarr 1; wait
    done

STORE: e.g. the seed-0 demo ``/tmp/s4/demo0/sample.zarr`` (not modified: each run copies
it to the second path; the report goes to ``<copy>-report``).
"""

import shutil
import sys

import spectrotomo
from spectrotomo.pipeline import Config, run_pipeline


def main(src: str, dst: str, n: int) -> None:
    for _ in range(n):
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
        cfg = Config()
        cfg.input.path = "simulate:demo"
        cfg.output.store = dst
        res = run_pipeline(cfg, steps=["report"], log=lambda m: None, report_dir=dst + "-report")
        r = res["records"][-1]
        print(spectrotomo.__file__, f"wall {r.seconds:.2f} cpu {r.cpu_seconds:.2f}", r.line(),
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1)
