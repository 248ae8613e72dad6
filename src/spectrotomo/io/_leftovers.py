"""Remove what a writer killed with kill -9 left half-written in and beside a store.

Such files no reader sees, but they would stay forever: a half-written
temporary store beside the store (:func:`spectrotomo.io.write`), a group
renamed away but not yet deleted (``.<name>.old-*``), zarr's ``*.partial``
chunk files. The store lock calls :func:`remove_leftovers` when it takes over a
dead writer's lock, when no writer that respects the lock can be running.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ._markers import store_root

__all__ = ["remove_leftovers"]

# names io._store.write / _publish and io._regions.remove_group give their temporaries
# (12 hex digits of a uuid), and zarr's LocalStore its atomic chunk writes (32)
_TRASH = re.compile(r"^\..+\.old-[0-9a-f]{12}$")
_PARTIAL = re.compile(r"\.[0-9a-f]{32}\.partial$")


def remove_leftovers(store_path) -> list[Path]:
    """Delete what a killed writer of the store left behind; returns the paths removed.

    Removes the temporary stores of whole-group writes beside the store
    (``.<store name>.tmp-*``), groups renamed away before deletion
    (``.<group>.old-*`` at any depth) and zarr's unfinished chunk files
    (``*.<uuid>.partial``). Call it only while holding the store's lock after
    its previous holder died: a live writer's temporaries match too.

    Parameters
    ----------
    store_path : str or path-like
        The store (a missing one: nothing to remove).
    """
    root = store_root(store_path)
    found = list(root.parent.glob(f".{root.name}.tmp-*"))
    for top, dirs, files in os.walk(root):
        trash = [d for d in dirs if _TRASH.match(d)]
        found += [Path(top, d) for d in trash]
        dirs[:] = [d for d in dirs if d not in trash]
        found += [Path(top, f) for f in files if _PARTIAL.search(f)]
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return sorted(found)
