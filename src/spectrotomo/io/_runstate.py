"""The steps a run of the pipeline was planned with, kept in the store's root attributes.

A run records its steps as ``"pending"`` before the first one starts and
marks each ``"done"`` as it finishes (or is skipped as already complete), so
a run stopped between two steps leaves a store that says so, even though
every group in it is complete.  The record is cumulative: a later run of a
few steps updates only those.
"""

from __future__ import annotations

from ._faults import write_errors
from ._lock import check_unlocked
from ._markers import now, store_root

__all__ = ["record_run_steps", "record_step_done", "run_steps", "RUN_ATTR"]

RUN_ATTR = "spectrotomo_run"


def _root_group(store_path, mode: str):
    import zarr

    return zarr.open_group(str(store_root(store_path)), mode=mode, zarr_format=3)


def record_run_steps(store_path, steps) -> dict:
    """Record, at the start of a run, the steps it is planned with (all ``"pending"``).

    Creates the store's root group if needed.

    Parameters
    ----------
    store_path : str or path-like
    steps : sequence of str
        Step names in run order, e.g. ``["acquire", "preprocess", ...]``.

    Returns
    -------
    dict
        The run record: ``{"steps": {step: "pending" | "done"}, "planned": [...],
        "started": ISO time}``.
    """
    from ._store import _check_store_dir

    root = store_root(store_path)
    check_unlocked(root)
    _check_store_dir(root)
    with write_errors(root, "the run record (root attributes)"):
        g = _root_group(root, "a")
        record = dict(g.attrs.get(RUN_ATTR, {}))
        states = dict(record.get("steps", {}))
        states.update({str(s): "pending" for s in steps})
        record.update(steps=states, planned=[str(s) for s in steps], started=now())
        g.attrs[RUN_ATTR] = record
    return record


def record_step_done(store_path, step: str) -> None:
    """Mark ``step`` of the run record done (after it finished or was skipped as complete)."""
    root = store_root(store_path)
    with write_errors(root, "the run record (root attributes)"):
        g = _root_group(root, "r+")
        record = dict(g.attrs.get(RUN_ATTR, {}))
        record["steps"] = {**record.get("steps", {}), str(step): "done"}
        record["time"] = now()
        g.attrs[RUN_ATTR] = record


def run_steps(store_path) -> dict | None:
    """The run record of a store (see :func:`record_run_steps`), or None if no run
    of the pipeline recorded one."""
    root = store_root(store_path)
    if not (root / "zarr.json").is_file():
        return None
    record = _root_group(root, "r").attrs.get(RUN_ATTR)
    return dict(record) if record else None
