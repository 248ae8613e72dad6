"""Shared harness of the ``gpu_bench/*_bench.py`` benchmarks (see README.md beside it).

One way to time, to say on which machine, to print a table and to shorten a run:

- :func:`timeit`: warm-up calls, then ``repeat`` timed calls; a :class:`Timing` with the
  best and median wall-clock seconds and the best CPU seconds (all threads);
  :func:`once`: one cold call.
- :func:`machine_line`: CPU model, cores, load, numpy and its BLAS threads, GPU, date.
- :func:`parser`: an ``ArgumentParser`` with ``--quick`` (the script's smallest sizes).
- :func:`start`: prints the machine line and the command, the first two lines of a
  RESULTS entry.
- :func:`print_table` / :func:`ratio`: a markdown table on stdout; ratio cells "2.31x".
- :func:`gpu_available`, :func:`astra_cuda_available`, :func:`cuda_sync`: GPU probes
  that only use the peers' public APIs (cupy, astra).

Scripts import it as ``import harness`` (run as ``python gpu_bench/x_bench.py``: the
script's folder is on ``sys.path``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["Timing", "astra_cuda_available", "cuda_sync", "gpu_available", "machine_line",
           "once", "parser", "print_table", "ratio", "start", "timeit"]


@dataclass(frozen=True)
class Timing:
    """Seconds of the timed calls of :func:`timeit` and the last call's result."""

    times: tuple[float, ...]
    cpu_times: tuple[float, ...]
    out: Any = field(default=None, repr=False, compare=False)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    @property
    def cpu_best(self) -> float:
        """Best process CPU time (all threads): the work itself on a shared machine."""
        return min(self.cpu_times)

    def rate(self, n: float) -> float:
        """``n`` items per second of the best call."""
        return n / self.best


def timeit(fn: Callable[[], Any], *, repeat: int = 3, warmup: int = 1,
           sync: Callable[[], None] | None = None) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls (imports, plans, caches), then ``repeat``
    timed ones. ``sync`` (e.g. :func:`cuda_sync`) runs inside each timed call so that
    asynchronous device work is counted."""
    out = None
    for _ in range(warmup):
        out = fn()
        if sync is not None:
            sync()
    walls, cpus = [], []
    for _ in range(max(1, repeat)):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        if sync is not None:
            sync()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return Timing(tuple(walls), tuple(cpus), out)


def once(fn: Callable[[], Any], *, sync: Callable[[], None] | None = None) -> Timing:
    """One timed call, no warm-up: for a first (cold) call, a step whose input the
    previous step made, or a run too long to repeat."""
    return timeit(fn, repeat=1, warmup=0, sync=sync)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas() -> str:
    """numpy's BLAS and its thread count (threadpoolctl when installed, else the env)."""
    name = "?"
    try:
        name = np.__config__.CONFIG["Build Dependencies"]["blas"]["name"]
    except (AttributeError, KeyError, TypeError):
        pass
    try:
        from threadpoolctl import threadpool_info

        threads = ",".join(str(i["num_threads"]) for i in threadpool_info()
                           if i.get("user_api") == "blas") or "?"
    except ImportError:
        env = [f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                 "MKL_NUM_THREADS") if k in os.environ]
        threads = " ".join(env) or "default"
    return f"{name} threads {threads}"


def gpu_available() -> bool:
    """True when cupy imports and sees a CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError: no usable device either way
        return False


def astra_cuda_available() -> bool:
    """True when ASTRA imports and was built with CUDA and sees a device."""
    try:
        import astra

        return bool(astra.use_cuda())
    except Exception:  # ImportError or a CUDA error inside astra
        return False


def cuda_sync() -> None:
    """Wait for cupy's current device (a no-op without cupy)."""
    try:
        import cupy
    except ImportError:
        return
    cupy.cuda.Device().synchronize()


def _gpu_name() -> str:
    if not gpu_available():
        return "none"
    import cupy

    return cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()


def machine_line() -> str:
    """One line: CPU model, cores, load average, numpy + BLAS threads, GPU, date (UTC)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    return (f"machine: {_cpu_model()}, {os.cpu_count()} cores, load {load:.1f}; "
            f"numpy {np.__version__} ({_blas()}); GPU: {_gpu_name()}; {date}")


class _Parser(argparse.ArgumentParser):
    """``--quick`` replaces the defaults named in ``quick`` (options given stay)."""

    def __init__(self, quick: dict[str, Any], **kw):
        super().__init__(**kw)
        self._quick = quick
        self.add_argument("--quick", action="store_true",
                          help="smallest sizes, to check that the script runs: "
                          + (", ".join(f"{k}={v}" for k, v in quick.items()) or "as default"))

    def parse_args(self, args=None, namespace=None):
        ns = super().parse_args(args, namespace)
        if ns.quick:
            for key, value in self._quick.items():
                if getattr(ns, key) == self.get_default(key):
                    setattr(ns, key, value)
        return ns


def parser(doc: str | None, *, quick: dict[str, Any] | None = None) -> argparse.ArgumentParser:
    """An ArgumentParser described by the docstring's first line, with ``--quick``
    setting the options of ``quick`` (dest -> value) unless given explicitly."""
    first = (doc or "").strip().splitlines()[0] if doc else None
    return _Parser(quick or {}, description=first)


def start(title: str) -> None:
    """Print the heading, machine line and command of a run (a RESULTS entry's head)."""
    cmd = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + sys.argv[1:])
    print(f"### {title}")
    print(machine_line())
    print(f"command: `python {cmd}`", flush=True)


def ratio(a: float, b: float) -> str:
    """``a / b`` as "2.31x" ("-" when either is missing or b is 0)."""
    if a is None or b is None or not np.isfinite(a) or not np.isfinite(b) or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def _cell(v, fmt: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, (float, np.floating)):
        return "nan" if not np.isfinite(v) else format(float(v), fmt)
    return str(v)


def print_table(headers: list[str], rows: list[list], *, fmt: str = ".3g",
                title: str | None = None) -> None:
    """A markdown table on stdout; floats by ``fmt``, other cells by ``str``; first
    column left-aligned, the others right-aligned."""
    if title:
        print(f"\n{title}")
    print("| " + " | ".join(headers) + " |")
    print("|---|" + "---:|" * (len(headers) - 1))
    for row in rows:
        print("| " + " | ".join(_cell(v, fmt) for v in row) + " |", flush=True)
