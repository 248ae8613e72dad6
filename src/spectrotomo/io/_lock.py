"""A lock file beside a sample store so that two writers cannot collide.

The lock lives *next to* the store (``sample.zarr.lock``), not inside it:
zarr treats any foreign file inside a group as a broken node.  It is named
after the store's resolved real path (symlinks, relative parts and ``..``
resolved), so two paths to one store share one lock.  The lock is
re-entrant within one process, so a pipeline holding it can still call
:func:`spectrotomo.io.write`; chunk-parallel workers started by the lock
holder write regions without taking it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from ._leftovers import remove_leftovers

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["StoreLockedError", "store_lock", "check_unlocked", "lock_path"]

# Open lock file and re-entrancy count of each lock this process holds (state).
_HELD: dict[str, list] = {}


class StoreLockedError(RuntimeError):
    """Another process holds the store's lock file."""


def lock_path(store_path) -> Path:
    """Path of the lock file of ``store_path`` (``<real store path>.lock``)."""
    store = Path(os.path.realpath(store_path))
    return store.with_name(store.name + ".lock")


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _read_owner(path: Path) -> dict | None:
    """The owner written in the lock file; None if there is none; ``{"garbage": text}``
    if it names no owner (empty, being written, or not written by this module)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return {"garbage": f"unreadable ({exc.strerror})"}
    try:
        owner = json.loads(text)
    except ValueError:
        owner = None
    if not isinstance(owner, dict) or "pid" not in owner or "host" not in owner:
        return {"garbage": "empty" if not text.strip() else f"content {text[:40]!r}"}
    return owner


def _garbage(path: Path, owner: dict) -> StoreLockedError:
    store = path.with_name(path.name[:-len(".lock")])
    return StoreLockedError(
        f"lock file {path} names no owner ({owner['garbage']}): it was not written by a "
        f"spectrotomo run, or one died while writing it, so the store {store} cannot be "
        f"known to be free. If no run is writing that store, delete the lock file "
        f"(rm '{path}') and run again.")


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True
    return True


def _is_stale(owner: dict) -> bool:
    """The owner is a process of this host that no longer runs."""
    return ("garbage" not in owner and owner.get("host") == socket.gethostname() and owner.get("pid") is not None
            and not _pid_alive(owner["pid"]))


def _refusal(path: Path, owner: dict, *, flocked: bool = False) -> StoreLockedError:
    if "garbage" in owner:
        return _garbage(path, owner)
    who = f"pid {owner.get('pid')} on host {owner.get('host')} since {owner.get('time')}"
    if not _is_stale(owner):
        hint = " Wait for it to finish, or use another store."
    elif flocked:
        hint = (" That process is gone but one it started still holds the file open "
                "(flock); wait for it to finish.")
    else:
        hint = (" That process is no longer running: the lock is stale; taking the lock "
                "(store_lock, e.g. rerunning the pipeline) replaces it, or delete the file.")
    return StoreLockedError(f"store is locked by another writer ({who}); lock file {path}.{hint}")


def _held_by_me(owner: dict | None) -> bool:
    return owner is not None and owner.get("pid") == os.getpid() \
        and owner.get("host") == socket.gethostname()


def check_unlocked(store_path) -> None:
    """Raise :class:`StoreLockedError` if another process holds the store's lock."""
    path = lock_path(store_path)
    owner = _read_owner(path)
    for _ in range(4):  # an empty file may be a lock being created right now
        if owner is None or "garbage" not in owner:
            break
        time.sleep(0.05)
        owner = _read_owner(path)
    if owner is not None and not _held_by_me(owner):
        raise _refusal(path, owner)


def _flock(fd: int, *, block: bool) -> bool:
    """An exclusive advisory lock on the open lock file (released by the kernel
    when its holder dies); True when held. Without ``fcntl`` (Windows), True."""
    if fcntl is None:  # pragma: no cover - POSIX everywhere the tests run
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def _same_file(fd: int, path: Path) -> bool:
    """``fd`` is still the file at ``path`` (not unlinked or replaced meanwhile)."""
    try:
        st, now = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)


def _write_owner(fd: int) -> None:
    info = {**_owner(), "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    data = json.dumps(info).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _take_over(fd: int, path: Path, owner: dict) -> dict:
    """Rewrite the stale lock file (whose ``flock`` we hold) as ours; re-read to confirm."""
    _write_owner(fd)
    if not _held_by_me(_read_owner(path)):  # pragma: no cover - the flock excludes this
        os.close(fd)
        raise StoreLockedError(f"could not take over the stale lock {path}; try again")
    return owner


def _acquire(path: Path) -> tuple[int, dict | None]:
    """Create the lock file, or take over a stale one; returns the open file
    (holding its ``flock``) and the stale owner replaced (None if none).

    A stale lock (its owner pid is gone on this host, e.g. after kill -9) is
    taken over in place: the ``flock`` of that very file makes the takeover
    exclusive (two reruns racing for it: one wins, the other sees a live
    owner), and the file identity is re-checked so that a lock released or
    replaced meanwhile is never overwritten. A live owner (this host or
    another) is refused.
    """
    held = None
    for _ in range(8):  # retried only when the file changed or is being taken over
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        except FileExistsError:
            pass
        else:
            _flock(fd, block=True)  # a racer that opened it first lets go at once
            _write_owner(fd)
            return fd, None
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue  # released meanwhile: create it again
        flocked = not _flock(fd, block=False)  # a live holder keeps its flock
        if flocked:
            owner = _read_owner(path) if _same_file(fd, path) else None
        elif _same_file(fd, path):
            owner = _read_owner(path) or {}
            if _is_stale(owner):
                return fd, _take_over(fd, path, owner)
        else:
            owner = None  # released or replaced after we opened it
        os.close(fd)
        if owner is None:
            continue
        if "garbage" in owner:  # perhaps being written by a racer: look again, then refuse
            held = owner
            time.sleep(0.05)
            continue
        if not (flocked and _is_stale(owner)):
            raise _refusal(path, owner)
        held = owner  # another rerun is taking it over right now: look again
        time.sleep(0.05)
    if held is not None:
        raise _refusal(path, held, flocked=True)
    raise StoreLockedError(f"lock file {path} keeps changing (several writers starting at "
                           "once); try again")


def _report_stale(path: Path, owner: dict, log, leftovers: list[Path]) -> None:
    message = (f"removed stale lock {path} (taken over) of dead pid {owner.get('pid')} on host "
               f"{owner.get('host')} (since {owner.get('time')})")
    if leftovers:
        names = ", ".join(p.name for p in leftovers[:5])
        more = f" and {len(leftovers) - 5} more" if len(leftovers) > 5 else ""
        message += (f"; removed {len(leftovers)} temporary file(s)/folder(s) that run left "
                    f"unfinished: {names}{more}")
    if log is not None:
        log(message)
    else:
        logging.getLogger(__name__).warning(message)


@contextmanager
def store_lock(store_path, *, log=None):
    """Hold the store's lock file for the duration of a ``with`` block.

    A lock left by a dead process of this host (a run killed with kill -9) is
    taken over, and the temporaries that run left are removed
    (:func:`~spectrotomo.io._leftovers.remove_leftovers`); that is said:
    ``log(message)`` when ``log`` is given, else a warning of the ``logging``
    logger ``spectrotomo.io._lock``.

    Parameters
    ----------
    store_path : str or path-like
        The store (the lock is ``<store>.lock`` beside it).
    log : callable(str), optional
        Receives the one-line message when a stale lock is replaced.

    Yields
    ------
    pathlib.Path
        The lock file.

    Raises
    ------
    StoreLockedError
        If a live process (this host or another) holds it; the message names
        the owner.
    """
    path = lock_path(store_path)
    key = str(path)
    if key in _HELD and _held_by_me(_read_owner(path)):
        _HELD[key][1] += 1
        try:
            yield path
        finally:
            _HELD[key][1] -= 1
        return
    from ._faults import write_errors

    with write_errors(path, "the lock file"):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, stale = _acquire(path)
    _HELD[key] = [fd, 1]
    try:
        if stale is not None:
            _report_stale(path, stale, log, remove_leftovers(store_path))
        yield path
    finally:
        _HELD.pop(key, None)
        try:
            if _same_file(fd, path):
                path.unlink()
        finally:
            os.close(fd)  # after the unlink: a waiter then finds the file gone
