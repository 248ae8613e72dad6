"""Time and peak memory of each pipeline step, for the run log."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

__all__ = ["StepMonitor", "StepRecord"]


@dataclass
class StepRecord:
    name: str
    seconds: float
    peak_rss_gib: float
    skipped: bool = False

    def line(self) -> str:
        if self.skipped:
            return f"{self.name:<14} skipped (already complete in the store)"
        return f"{self.name:<14} {self.seconds:8.1f} s   peak RSS {self.peak_rss_gib:6.2f} GiB"


class StepMonitor:
    """Context manager sampling this process's resident memory every ``interval`` s.

    ``tracemalloc`` would miss memory held by C libraries (FFTW, finufft, ASTRA),
    so the resident set size is sampled instead.
    """

    def __init__(self, name: str, *, interval: float = 0.05):
        self.name = name
        self.interval = interval
        self.record: StepRecord | None = None
        self._peak = 0
        self._stop = threading.Event()

    def _sample(self):
        import psutil

        proc = psutil.Process()
        while not self._stop.is_set():
            self._peak = max(self._peak, proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.record = StepRecord(self.name, time.perf_counter() - self._t0, self._peak / 2**30)
        return False
