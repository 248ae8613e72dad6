"""Completion state of store groups and per-chunk done markers.

A group written by this package carries ``attrs["spectrotomo_store"]`` in its
``zarr.json``: ``{"state": "writing" | "complete", "kind": ..., ...}``.  The
state becomes ``"complete"`` only as the last step of a write.  Per-chunk done
markers of region writes are empty files inside the array's own directory
(``<group>/<name>/.spectrotomo_done/<i>.<j>...``): zarr never lists an array
directory, so they stay invisible to zarr and xarray.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

MARKER = "spectrotomo_store"
DONE_DIR = ".spectrotomo_done"


def store_root(store_path) -> Path:
    text = str(store_path)
    if "://" in text:
        raise ValueError(f"store_path must be a local directory (markers, renames and the "
                         f"lock use the file system); got {text!r}")
    # the real path: one store reached through a symlink, a relative path or '..' is
    # one store (one lock), and temporaries land on the store's own file system
    return Path(os.path.realpath(store_path))


def normalize_group(group: str) -> str:
    """``"/recon/fbp/"`` -> ``"recon/fbp"``; rejects empty or relative parts."""
    if not isinstance(group, str):
        raise TypeError(f"group must be a str like 'recon'; got {type(group).__name__}")
    parts = [p for p in group.strip("/").split("/") if p]
    if not parts or any(p in (".", "..") or p.startswith(".") for p in parts):
        raise ValueError(f"group must be a non-empty path of names like 'recon' or "
                         f"'recon/fbp' (no '.', '..' or hidden parts); got {group!r}")
    return "/".join(parts)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def group_dir(store_path, group: str) -> Path:
    return store_root(store_path) / normalize_group(group)


def group_exists(store_path, group: str) -> bool:
    return (group_dir(store_path, group) / "zarr.json").is_file()


def open_zarr_group(store_path, group: str, mode: str = "r+"):
    import zarr

    return zarr.open_group(str(store_root(store_path)), path=normalize_group(group),
                           mode=mode, zarr_format=3)


def get_marker(store_path, group: str) -> dict | None:
    """The group's marker dict, or None (no group, or not written by spectrotomo)."""
    if not group_exists(store_path, group):
        return None
    return dict(open_zarr_group(store_path, group, mode="r").attrs.get(MARKER, {})) or None


def set_marker(store_path, group: str, **fields) -> dict:
    g = open_zarr_group(store_path, group)
    marker = dict(g.attrs.get(MARKER, {}))
    marker.update(fields, time=now())
    g.attrs[MARKER] = marker
    return marker


def is_complete(store_path, group: str) -> bool:
    """True if ``group`` exists and its last write finished (completion marker)."""
    marker = get_marker(store_path, group)
    return marker is not None and marker.get("state") == "complete"


def ensure_parents(store_path, group: str) -> None:
    """Create the store's root group and the group's parents (zarr v3 has no
    implicit groups)."""
    import zarr

    root = str(store_root(store_path))
    parts = normalize_group(group).split("/")
    zarr.open_group(root, mode="a", zarr_format=3)
    for i in range(1, len(parts)):
        zarr.open_group(root, path="/".join(parts[:i]), mode="a", zarr_format=3)


def done_dir(store_path, group: str, name: str) -> Path:
    return group_dir(store_path, group) / name / DONE_DIR
