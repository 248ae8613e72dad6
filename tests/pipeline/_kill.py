"""Helpers of the kill -9 tests: run the CLI in a subprocess, SIGKILL it at a
chosen moment, and snapshot file modification times."""

import os
import signal
import subprocess
import sys
import time


def spawn_cli(*args, **popen):
    """``python -m spectrotomo.cli ARGS`` in a subprocess (this interpreter, this env)."""
    return subprocess.Popen([sys.executable, "-m", "spectrotomo.cli", *map(str, args)], **popen)


def kill_when(proc, ready, *, what: str, timeout: float = 240.0, poll: float = 0.2,
              delay: float = 0.0) -> None:
    """SIGKILL ``proc`` once ``ready()`` is true (``delay`` s later), then reap it.

    Raises AssertionError, never passes silently, when the process ends
    before it could be killed or ``ready()`` stays false for ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, (f"the process ended (status {proc.returncode}) "
                                         f"before {what}; nothing was killed")
            assert time.monotonic() < deadline, f"no {what} within {timeout} s"
            time.sleep(poll)
        time.sleep(delay)
        assert proc.poll() is None, f"the process ended before it could be killed ({what})"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()


def tree_mtimes(path) -> dict[str, int]:
    """Modification time (ns) of every file and folder below ``path``."""
    return {str(p): p.stat().st_mtime_ns for p in path.rglob("*")}
