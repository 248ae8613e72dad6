"""A read-only summary of a sample store (what ``spectrotomo info`` prints)."""

from __future__ import annotations

import json

from ._markers import MARKER, store_root
from ._runstate import RUN_ATTR
from ._store import _STR_DTYPE_ATTR, _walk

__all__ = ["describe_store", "format_store"]


def _steps(attrs) -> list[str]:
    raw = attrs.get("provenance")
    try:
        entries = json.loads(raw) if isinstance(raw, str) else list(raw or [])
    except ValueError:
        return ["<unreadable provenance>"]
    return [str(e.get("step", "?")) if isinstance(e, dict) else str(e) for e in entries]


def describe_store(store_path) -> dict:
    """Describe every group of a store from its metadata (no data is read).

    Returns
    -------
    dict
        ``{"store": path, "groups": [{"path", "state", "variables": [{"name",
        "dims", "shape", "dtype", "units", "coord"}], "provenance": [step
        names]}]}``;
        ``state`` is ``"complete"``, ``"writing"``, ``"unmarked"`` (data not
        written by spectrotomo) or ``"container"`` (groups only).
        ``"run"``: the steps the pipeline was planned with and their state
        (``{"steps": {step: "pending" | "done"}, "pending": [steps not done]}``),
        or None if no pipeline run recorded them; ``"complete"``: no group is
        unfinished and no planned step is pending.
    """
    import zarr

    root = store_root(store_path)
    if not (root / "zarr.json").is_file():
        raise FileNotFoundError(f"no zarr v3 store at {str(root)!r}")
    top = zarr.open_group(str(root), mode="r", zarr_format=3)
    groups = []
    for path, g in sorted(_walk(top), key=lambda kv: kv[0]):
        variables, steps = [], _steps(g.attrs)
        arrays = sorted(g.arrays(), key=lambda kv: kv[0])
        coords = {n for _, a in arrays for n in str(a.attrs.get("coordinates", "")).split()}
        coords |= {n for n, a in arrays if tuple(a.metadata.dimension_names or ()) == (n,)}
        for name, arr in arrays:
            attrs = arr.attrs
            dtype = attrs.get(_STR_DTYPE_ATTR) or str(arr.dtype)
            variables.append({"name": name, "dims": tuple(arr.metadata.dimension_names or ()),
                              "shape": tuple(arr.shape), "dtype": dtype,
                              "units": attrs.get("units"), "coord": name in coords})
            steps += [s for s in _steps(attrs) if s not in steps]
        marker = dict(g.attrs.get(MARKER, {}))
        state = marker.get("state") or ("unmarked" if variables else "container")
        groups.append({"path": path, "state": state, "variables": variables,
                       "provenance": steps})
    run = dict(top.attrs.get(RUN_ATTR) or {}) or None
    if run is not None:
        run["pending"] = [s for s, state in run.get("steps", {}).items() if state != "done"]
    unfinished = [g for g in groups if g["state"] not in ("complete", "container")]
    return {"store": str(root), "groups": groups, "run": run,
            "complete": not unfinished and not (run or {}).get("pending")}


def format_store(description: dict) -> str:
    """Human-readable text of :func:`describe_store`'s result."""
    lines = [f"store {description['store']}"]
    for g in description["groups"]:
        flag = "" if g["state"] in ("complete", "container") else "   <-- UNFINISHED"
        lines.append(f"[{g['path']}] {g['state']}{flag}")
        for v in sorted(g["variables"], key=lambda v: v["coord"]):
            kind = "coord " if v["coord"] else ""
            dims = ", ".join(f"{d}={n}" for d, n in zip(v["dims"], v["shape"]))
            units = f" [{v['units']}]" if v["units"] else ""
            lines.append(f"    {kind + v['name']:<24} ({dims}) {v['dtype']}{units}")
        if g["provenance"]:
            lines.append(f"    provenance: {' -> '.join(g['provenance'])}")
    unfinished = [g["path"] for g in description["groups"]
                  if g["state"] not in ("complete", "container")]
    run = description.get("run")
    if run is not None:
        steps = ", ".join(f"{s} ({state})" for s, state in run.get("steps", {}).items())
        lines.append(f"pipeline steps: {steps}")
    pending = (run or {}).get("pending") or []
    if pending:
        lines.append(f"INCOMPLETE: the run stopped before step(s) {', '.join(pending)} "
                     "finished; rerun the pipeline on this store to finish them")
    lines.append(f"unfinished groups: {', '.join(unfinished)}" if unfinished
                 else "all groups complete" + (" (run incomplete)" if pending else ""))
    return "\n".join(lines)
