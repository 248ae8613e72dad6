"""Time, peak memory and progress of each pipeline step, for the run log.

Progress (:class:`Progress`, :func:`dask_progress`) is a tqdm bar on a terminal
and, when the output is not a terminal (a log file, a batch worker), one log
line per ~10 % of the work.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

__all__ = ["StepMonitor", "StepRecord", "stamped", "Progress", "dask_progress"]


def stamped(message: str) -> str:
    """One log-file line: UTC time (seconds), the message, a newline."""
    return f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} {message}\n"


@dataclass
class StepRecord:
    name: str
    seconds: float
    peak_rss_gib: float
    skipped: bool = False
    #: largest resident set of one child process (local dask workers), GiB
    peak_worker_rss_gib: float | None = None

    def line(self) -> str:
        if self.skipped:
            return f"{self.name:<14} skipped (already complete in the store)"
        workers = ("" if self.peak_worker_rss_gib is None
                   else f"   peak worker RSS {self.peak_worker_rss_gib:6.2f} GiB")
        return (f"{self.name:<14} {self.seconds:8.1f} s   peak RSS {self.peak_rss_gib:6.2f} GiB"
                + workers)


class StepMonitor:
    """Context manager sampling this process's resident memory every ``interval`` s,
    and that of each child process (the workers of a local dask cluster).

    ``tracemalloc`` would miss memory held by C libraries (FFTW, finufft, ASTRA),
    so the resident set size is sampled instead. Workers on other hosts are not
    seen: their memory is bounded by the cluster's per-worker limit.
    """

    def __init__(self, name: str, *, interval: float = 0.05, children: bool = False):
        self.name = name
        self.children = children
        self.interval = interval
        self.record: StepRecord | None = None
        self._peak = 0
        self._worker_peak = None
        self._stop = threading.Event()

    def _sample(self):
        import psutil

        proc = psutil.Process()
        while not self._stop.is_set():
            self._peak = max(self._peak, proc.memory_info().rss)
            for child in proc.children(recursive=True) if self.children else ():
                try:
                    rss = child.memory_info().rss
                except psutil.Error:  # exited between listing and reading
                    continue
                self._worker_peak = max(self._worker_peak or 0, rss)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        workers = None if self._worker_peak is None else self._worker_peak / 2**30
        self.record = StepRecord(self.name, time.perf_counter() - self._t0, self._peak / 2**30,
                                 peak_worker_rss_gib=workers)
        return False


def _terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


class Progress:
    """Progress of ``total`` units of one step.

    On a terminal: a tqdm bar (removed when done). Otherwise, with ``log``: once
    ``min_seconds`` have passed, one line ``"<desc>: 30 % (12/40 task), 4.1 s"``
    each time another ~10 % is done (``every`` percent), so logs show that a long
    step advances and short ones stay quiet.

    Parameters
    ----------
    total : int
        Units of work (tasks, energies, files).
    desc : str
        Name shown in the bar or line (the step).
    log : callable, optional
        Receives the log lines; None: no lines (bar only).
    unit : str
        Name of one unit.
    every : float
        Percent of ``total`` between two log lines.
    min_seconds : float
        No log line before this many seconds since the start.
    terminal : bool, optional
        Force the terminal (bar) or log (lines) form; default: is stderr a terminal.
    """

    def __init__(self, total: int, desc: str, *, log: Callable[[str], None] | None = None,
                 unit: str = "task", every: float = 10.0, min_seconds: float = 3.0,
                 terminal: bool | None = None):
        self.total, self.desc, self.log, self.unit = int(total), desc, log, unit
        self.done = 0
        self.min_seconds = min_seconds
        self._t0 = time.perf_counter()
        self._step = max(1, round(self.total * every / 100.0))
        self._next = self._step
        self._bar = None
        if terminal if terminal is not None else _terminal():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, leave=False)
            self.log = None

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        if self.log is None or self.total <= 0:
            return
        if self.done >= self._next or self.done == self.total:
            self._next = (self.done // self._step + 1) * self._step
            if time.perf_counter() - self._t0 < self.min_seconds:
                return
            self.log(f"{self.desc}: {100.0 * self.done / self.total:3.0f} % "
                     f"({self.done}/{self.total} {self.unit}), "
                     f"{time.perf_counter() - self._t0:.1f} s")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


@contextmanager
def dask_progress(desc: str, log: Callable[[str], None] | None = None, *,
                  minimum: float = 2.0, terminal: bool | None = None):
    """Report the progress of every dask computation run in this block (local
    schedulers) that lasts longer than ``minimum`` seconds, as :class:`Progress`.

    Steps that read files lazily, write them to the store or reduce volumes
    with dask get progress without their own counters.
    """
    from dask.callbacks import Callback

    class _Callback(Callback):
        def _start_state(self, dsk, state):
            self._t0 = time.perf_counter()
            self._total = sum(len(state[k]) for k in ("ready", "waiting", "running"))
            self._bar = None

        def _posttask(self, key, result, dsk, state, worker_id):
            if self._bar is None:
                if time.perf_counter() - self._t0 < minimum:
                    return
                self._bar = Progress(self._total, desc, log=log, terminal=terminal,
                                     min_seconds=0.0)
                self._bar.done = len(state["finished"]) - 1
            self._bar.update()

        def _finish(self, dsk, state, errored):
            if self._bar is not None:
                self._bar.close()

    with _Callback():
        yield
