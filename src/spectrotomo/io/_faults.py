"""One clear error for a store that cannot be written (disk full, read-only, no permission).

The file-system error a write meets deep inside zarr, xarray or dask becomes
a :class:`StoreWriteError` naming the path, what was being written, the
space it needed (where known) and the space left, and saying that nothing
incomplete was published: whole-group writes go to a temporary directory
that is removed, region writes keep their group unfinished, so a rerun with
space (or permission) resumes and completes.
"""

from __future__ import annotations

import errno
import shutil
from contextlib import contextmanager
from pathlib import Path

__all__ = ["StoreWriteError", "write_errors", "explain", "is_fault", "FAULT_ERRNOS"]

#: errno values that mean "this location cannot take the write" (not a bug).
FAULT_ERRNOS = frozenset(getattr(errno, n) for n in
                         ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG")
                         if hasattr(errno, n))

_WHY = {errno.ENOSPC: "no space left on the device", errno.EROFS: "the file system is "
        "read-only", errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
        errno.EFBIG: "file too large for the file system"}
if hasattr(errno, "EDQUOT"):
    _WHY[errno.EDQUOT] = "disk quota exceeded"


class StoreWriteError(OSError):
    """The store (or its lock or log) could not be written: disk full, read-only
    file system or no permission. ``errno`` and ``filename`` are those of the
    underlying error; ``str()`` is the whole explanation."""

    def __init__(self, message: str, *, code: int | None = None, filename=None):
        super().__init__(message)
        self.errno, self.filename, self.message = code, filename, message

    def __str__(self) -> str:
        return self.message

    @classmethod
    def from_os_error(cls, exc: OSError, path, what: str, *,
                      need_bytes: int | None = None) -> StoreWriteError | None:
        """The clear error for ``exc`` met writing ``what`` to ``path``; None when
        ``exc`` is not a disk-full / read-only / permission error."""
        if isinstance(exc, cls):
            return exc
        if exc.errno not in FAULT_ERRNOS:
            return None
        return explain(exc, path, what, need_bytes=need_bytes)


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _free_at(path: Path) -> int | None:
    for p in (path, *path.parents):
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


def explain(exc: OSError, path, what: str, *, need_bytes: int | None = None) -> StoreWriteError:
    """A :class:`StoreWriteError` for ``exc`` met while writing ``what`` to ``path``."""
    path = Path(path)
    why = _WHY.get(exc.errno, exc.strerror or str(exc))
    where = exc.filename or path
    text = f"cannot write {what} to {path}: {why} (at {where})"
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1), errno.EFBIG):
        free = _free_at(path)
        need = f"it needs up to about {_mib(need_bytes)} (uncompressed)" if need_bytes else ""
        left = f"{_mib(free)} free there now" if free is not None else ""
        text += "; " + ", ".join(s for s in (need, left) if s) if need or left else ""
        hint = "free space (or choose another output) and rerun"
    elif exc.errno == errno.EROFS:
        hint = "choose an output on a writable file system, or remount it read-write, and rerun"
    else:
        hint = f"make {path.parent} writable for this user (or choose another output) and rerun"
    text += (f". Nothing incomplete was published (temporary files removed; an unfinished "
             f"group stays marked unfinished): {hint}; complete groups are kept and reused.")
    return StoreWriteError(text, code=exc.errno, filename=str(where))


@contextmanager
def write_errors(path, what: str, *, need_bytes: int | None = None):
    """Turn a disk-full / read-only / permission ``OSError`` inside the block into a
    :class:`StoreWriteError` (other errors pass unchanged)."""
    try:
        yield
    except StoreWriteError:
        raise
    except OSError as exc:
        if exc.errno not in FAULT_ERRNOS:
            raise
        raise explain(exc, path, what, need_bytes=need_bytes) from exc


def is_fault(exc: BaseException) -> bool:
    """True for an error that says a location cannot take a write."""
    return isinstance(exc, StoreWriteError) or (isinstance(exc, OSError)
                                                and exc.errno in FAULT_ERRNOS)
