"""Time, peak memory, CPU use and progress of each pipeline step, for the run log.

Progress (:class:`Progress`, :func:`dask_progress`) is a tqdm bar on a terminal
and, when the output is not a terminal (a log file, a batch worker), one log
line per ~10 % of the work.
"""

from __future__ import annotations

import os
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
    #: CPU seconds (user + system) of this process and its child processes
    cpu_seconds: float | None = None
    #: mean number of runnable threads (running or waiting for a core), from the
    #: kernel's per-thread run and run-queue wait times; what ``cpu_seconds /
    #: seconds`` would be on an idle machine with enough cores. None off Linux.
    runnable: float | None = None

    @property
    def cpu_per_wall(self) -> float | None:
        return None if self.cpu_seconds is None else self.cpu_seconds / max(self.seconds, 1e-9)

    def line(self) -> str:
        if self.skipped:
            return f"{self.name:<14} skipped (already complete in the store)"
        workers = ("" if self.peak_worker_rss_gib is None
                   else f"   peak worker RSS {self.peak_worker_rss_gib:6.2f} GiB")
        cpu = "" if self.cpu_seconds is None else f"   cpu/wall {self.cpu_per_wall:4.2f}"
        if cpu and self.runnable is not None:
            cpu += f" (runnable {self.runnable:4.2f})"
        return (f"{self.name:<14} {self.seconds:8.1f} s   peak RSS {self.peak_rss_gib:6.2f} GiB"
                + workers + cpu)


def _thread_schedstat(pid: int) -> dict[int, int]:
    """Nanoseconds each thread of ``pid`` ran or waited on a run queue (Linux
    ``/proc/<pid>/task/<tid>/schedstat``); empty where unavailable."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                run, wait = fh.read().split()[:2]
        except (OSError, ValueError):
            continue  # thread exited between listing and reading
        out[int(tid)] = int(run) + int(wait)
    return out


class _CpuLedger:
    """CPU seconds and runnable thread-seconds of a process tree between two points:
    the first and last value seen of every process and thread (those that exit in
    between count up to their last sample)."""

    def __init__(self):
        self.first: dict = {}
        self.last: dict = {}

    def see(self, key, value) -> None:
        self.first.setdefault(key, value)
        self.last[key] = value

    def forget(self, key) -> None:
        self.first.pop(key, None)
        self.last.pop(key, None)

    def total(self, kind: str, new_from_zero: set) -> float:
        return sum(v - (0 if k in new_from_zero else self.first[k])
                   for k, v in self.last.items() if k[0] == kind)


class StepMonitor:
    """Context manager sampling the resident memory of this process, and of each
    child process (the workers of a local dask cluster), every ``interval`` s,
    and the CPU time and runnable-thread time of both.

    ``tracemalloc`` would miss memory held by C libraries (FFTW, finufft, ASTRA),
    so the resident set size is sampled instead. Workers on other hosts are not
    seen: their memory is bounded by the cluster's per-worker limit.
    ``children`` only controls whether the workers' peak memory is reported; their
    CPU time always counts.
    """

    def __init__(self, name: str, *, interval: float = 0.05, children: bool = False,
                 cpu_interval: float = 0.25):
        self.name = name
        self.children = children
        self.interval = interval
        self.cpu_interval = cpu_interval
        self.record: StepRecord | None = None
        self._peak = 0
        self._worker_peak = None
        self._stop = threading.Event()
        self._ledger = _CpuLedger()
        self._direct: set[int] = set()  # pids of direct children seen
        self._own_tid = None

    def _cpu_sample(self, proc, kids) -> None:
        import psutil

        # a direct child that exited was reaped into this process's children_* times:
        # count it there only (its own samples too would count it twice)
        alive = {p.pid for p in kids}
        for pid in [pid for pid in self._direct if pid not in alive]:
            self._direct.discard(pid)
            self._ledger.forget(("cpu", pid))
        for p in (proc, *kids):
            try:
                t = p.cpu_times()
                if p is not proc and p.ppid() == proc.pid:
                    self._direct.add(p.pid)
            except psutil.Error:
                continue
            # waited-for children that exited count in the parent's children_* times
            extra = t.children_user + t.children_system if p is proc else 0.0
            self._ledger.see(("cpu", p.pid), t.user + t.system + extra)
            for tid, ns in _thread_schedstat(p.pid).items():
                if tid != self._own_tid:  # not the sampler's own wake-ups
                    self._ledger.see(("sched", p.pid, tid), ns * 1e-9)

    def _sample(self):
        import psutil

        self._own_tid = threading.get_native_id()
        proc = psutil.Process()
        next_cpu = 0.0
        kids = []
        while not self._stop.is_set():
            self._peak = max(self._peak, proc.memory_info().rss)
            if time.perf_counter() >= next_cpu:  # listing children scans all of /proc
                kids = proc.children(recursive=True)
                self._cpu_sample(proc, kids)
                next_cpu = time.perf_counter() + self.cpu_interval
            for child in kids if self.children else ():
                try:
                    rss = child.memory_info().rss
                except psutil.Error:  # exited between listing and reading
                    continue
                self._worker_peak = max(self._worker_peak or 0, rss)
            self._stop.wait(self.interval)
        self._cpu_sample(proc, proc.children(recursive=True))

    def __enter__(self):
        import psutil

        proc = psutil.Process()
        self._cpu_sample(proc, proc.children(recursive=True))
        self._known = set(self._ledger.first)
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        seconds = time.perf_counter() - self._t0
        new = set(self._ledger.first) - self._known  # started during the step: from zero
        sched = self._ledger.total("sched", new)
        workers = None if self._worker_peak is None else self._worker_peak / 2**30
        self.record = StepRecord(
            self.name, seconds, self._peak / 2**30, peak_worker_rss_gib=workers,
            cpu_seconds=self._ledger.total("cpu", new),
            runnable=sched / max(seconds, 1e-9) if sched > 0 else None)
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
