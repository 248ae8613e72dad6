"""Verify complete groups before a rerun skips them; drop the damaged ones to rebuild.

What a rerun reads, a CRC-32C check on each chunk read also catches (zarr
verifies the ``crc32c`` codec on decode), but a deleted chunk reads as the
fill value, and a damaged group would otherwise be skipped as complete.
:func:`drop_damaged_groups` runs :func:`~spectrotomo.io.verify_store` in its
quick mode over every complete group (every chunk's presence; CRC-32C of all
chunks of groups up to 256 MiB and of a sample of larger ones) and removes a
damaged group when the run will rebuild it; a damaged group it will not
rebuild stops the run with a message naming the chunks.
"""

from __future__ import annotations

from typing import Callable, Iterable

from ._integrity import VerifyReport, verify_store
from ._markers import store_root
from ._regions import remove_group
from ._store import list_groups

__all__ = ["StoreCorruptError", "drop_damaged_groups"]


class StoreCorruptError(RuntimeError):
    """A store group is damaged (missing or corrupt chunks) and cannot be rebuilt here."""


def _owner(group: str, rebuildable: set[str]) -> str | None:
    """The rebuildable group ``group`` belongs to (itself or an ancestor), or None."""
    parts = group.split("/")
    for i in range(1, len(parts) + 1):
        if "/".join(parts[:i]) in rebuildable:
            return "/".join(parts[:i])
    return None


def _lines(report: VerifyReport, group: str, limit: int = 5) -> str:
    found = [p for p in report.problems if p.group == group or p.group.startswith(group + "/")]
    text = "; ".join(" ".join(p.line().split()) for p in found[:limit])
    return text + (f"; ... {len(found) - limit} more" if len(found) > limit else "")


def drop_damaged_groups(store_path, *, rebuildable: Iterable[str],
                        log: Callable[[str], None] = print,
                        quick: bool = True) -> list[str]:
    """Verify every complete group of a store; remove the damaged ones this run rebuilds.

    Parameters
    ----------
    store_path : str or path-like
        A store (a missing one: nothing to check).
    rebuildable : iterable of str
        Groups the caller's run writes (a damaged sub-group counts for its
        rebuildable ancestor).
    log : callable(str)
        Receives one line saying what was checked, and one per damaged group.
    quick : bool
        :func:`verify_store`'s quick mode (default) or a full read.

    Returns
    -------
    list of str
        The groups removed (to be rebuilt).

    Raises
    ------
    StoreCorruptError
        If a damaged group is not in ``rebuildable`` (nothing is removed then).
    """
    root = store_root(store_path)
    if not (root / "zarr.json").is_file():
        return []
    complete = [g for g, m in list_groups(root).items() if (m or {}).get("state") == "complete"]
    if not complete:
        return []
    report = verify_store(root, groups=complete, quick=quick)
    rebuildable = set(rebuildable)
    damaged = sorted({_owner(g, rebuildable) or g for g in report.damaged_groups})
    log(f"verified {len(report.groups)} complete group(s) before skipping them: "
        f"{report.chunks_total} chunks present-checked, {report.chunks_read} checksummed "
        f"({report.bytes_read / 2**20:.1f} MiB); " + (
            f"damaged: {', '.join(damaged)}" if damaged else "all intact"))
    stuck = [g for g in damaged if g not in rebuildable]
    if stuck:
        raise StoreCorruptError(
            f"store {root} has damaged group(s) that this run does not write: "
            + " | ".join(f"{g}: {_lines(report, g)}" for g in stuck)
            + ". Restore them from a copy, or rerun with the step that writes them "
            "(e.g. the whole pipeline); `spectrotomo info --verify STORE` lists every chunk")
    for group in damaged:
        log(f"group {group!r} is damaged ({_lines(report, group)}): removed, rebuilding it")
        remove_group(root, group)
    return damaged
