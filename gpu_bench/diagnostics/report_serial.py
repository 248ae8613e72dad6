"""The report step alone on a copy of a finished store with its thread pool replaced by
a synchronous executor: every task runs in the calling thread, one after the other.
Prints the process CPU s of the step, the sum of the tasks' thread CPU s and the
largest tasks (figures, truth errors). With no thread waiting on the GIL or on another,
the CPU seconds move less with the machine's load than those of the threaded step
(`report_ab.py`): alternate two trees on one store to compare them, e.g.::

    for i in 1 2 3 4; do
      (cd /tmp/main && PYTHONPATH=src python gpu_bench/diagnostics/report_serial.py STORE /tmp/a.zarr)
      PYTHONPATH=src python gpu_bench/diagnostics/report_serial.py STORE /tmp/b.zarr
    done

STORE is not modified (copied to the second path; the report goes to ``<copy>-report``).
matplotlib is imported before the step (a full run imports it in the report step: ~0.4
CPU s, the same in both trees).
"""

import concurrent.futures
import shutil
import sys
import time

TASKS: list[tuple[float, str, str]] = []  # (thread CPU s, function, its PNG or "")


class _Synchronous(concurrent.futures.Executor):
    """``submit`` runs the call at once; its future is already done."""

    _max_workers = 1  # dask's threaded scheduler reads it from the pool it is given

    def __init__(self, *args, **kwargs):
        pass

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        start = time.thread_time()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - the caller's future carries it
            future.set_exception(exc)
        png = next((str(a) for a in args if str(a).endswith(".png")), "")
        TASKS.append((time.thread_time() - start, getattr(fn, "__name__", "?"), png))
        return future


def main(src: str, dst: str) -> None:
    concurrent.futures.ThreadPoolExecutor = _Synchronous  # the report's pool, and dask's
    import matplotlib.figure  # noqa: F401 - imported before the step, see above

    from spectrotomo.pipeline import Config, run_pipeline

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    cfg = Config()
    cfg.input.path = "simulate:demo"
    cfg.output.store = dst
    cpu = time.process_time()
    res = run_pipeline(cfg, steps=["report"], log=lambda m: None, report_dir=dst + "-report")
    cpu = time.process_time() - cpu
    print(f"process cpu {cpu:.2f} s, tasks {sum(t[0] for t in TASKS):.2f} s;",
          res["records"][-1].line())
    for seconds, name, png in sorted(TASKS, reverse=True)[:16]:
        print(f"{seconds:6.3f} {name} {png.rsplit('/', 1)[-1]}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
