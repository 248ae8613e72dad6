"""Time and peak memory of each pipeline step, for the run log."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = ["StepMonitor", "StepRecord", "stamped"]


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
