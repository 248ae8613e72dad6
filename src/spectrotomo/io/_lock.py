"""A lock file beside a sample store so that two writers cannot collide.

The lock lives *next to* the store (``sample.zarr.lock``), not inside it:
zarr treats any foreign file inside a group as a broken node.  The lock is
re-entrant within one process, so a pipeline holding it can still call
:func:`spectrotomo.io.write`; chunk-parallel workers started by the lock
holder write regions without taking it.
"""

from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["StoreLockedError", "store_lock", "check_unlocked", "lock_path"]

# Re-entrancy counts of the locks this process holds (state, not configuration).
_HELD: dict[str, int] = {}


class StoreLockedError(RuntimeError):
    """Another process holds the store's lock file."""


def lock_path(store_path) -> Path:
    """Path of the lock file of ``store_path`` (``<store>.lock``)."""
    store = Path(store_path).absolute()
    return store.with_name(store.name + ".lock")


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _read_owner(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"pid": None, "host": None}  # being written or corrupt: treat as foreign


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True
    return True


def _refusal(path: Path, owner: dict) -> StoreLockedError:
    who = f"pid {owner.get('pid')} on host {owner.get('host')} since {owner.get('time')}"
    stale = (owner.get("host") == socket.gethostname() and owner.get("pid") is not None
             and not _pid_alive(owner["pid"]))
    hint = (f" That process is no longer running: the lock is stale; delete {path} to proceed."
            if stale else " Wait for it to finish, or use another store.")
    return StoreLockedError(f"store is locked by another writer ({who}); lock file {path}.{hint}")


def _held_by_me(owner: dict | None) -> bool:
    return owner is not None and owner.get("pid") == os.getpid() \
        and owner.get("host") == socket.gethostname()


def check_unlocked(store_path) -> None:
    """Raise :class:`StoreLockedError` if another process holds the store's lock."""
    path = lock_path(store_path)
    owner = _read_owner(path)
    if owner is not None and not _held_by_me(owner):
        raise _refusal(path, owner)


@contextmanager
def store_lock(store_path):
    """Hold the store's lock file for the duration of a ``with`` block.

    Raises
    ------
    StoreLockedError
        If another process (this host or another) holds it; the message
        names the owner and says whether the lock looks stale.
    """
    path = lock_path(store_path)
    key = str(path)
    if _HELD.get(key, 0) > 0 and _held_by_me(_read_owner(path)):
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise _refusal(path, _read_owner(path) or {}) from None
    info = {**_owner(), "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with os.fdopen(fd, "w") as fh:
        json.dump(info, fh)
    _HELD[key] = 1
    try:
        yield path
    finally:
        _HELD.pop(key, None)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
