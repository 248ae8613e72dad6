"""spectrotomo.io stage: beamline files -> tilt series (readers), the sample
store (zarr v3) and OME-Zarr views.

Readers are backends behind :func:`read` (format detected from content);
each format's reader is also callable directly. A real experiment is a set
of files: :func:`read_series` (one tilt series per energy; lists or glob
patterns, any mix of formats) and :func:`read_xanes` (2-D energy scans).
The store keeps one zarr v3 store per sample with one group per stage
(:func:`write`, :func:`read_group`, :func:`open_tree`, chunk-aligned region
writes, completion markers, a lock, a CRC-32C per chunk checked by
:func:`verify_store`, the run's step record). :func:`export_store` writes a store's maps
and label volumes as OME-Zarr images or TIFF stacks for viewers.
"""

from ._common import ReaderError, require_flats
from ._dxchange import read_dxchange
from ._export import EXPORT_FORMATS, export_store
from ._faults import StoreWriteError
from ._fxi import read_fxi
from ._integrity import ChunkProblem, VerifyReport, verify_store
from ._lock import StoreLockedError, lock_path, store_lock
from ._markers import is_complete
from ._nxtomo import read_nxtomo
from ._omezarr import write_ome_zarr
from ._read import read
from ._series import expand_paths, read_series
from ._regions import (init_array, mark_complete, missing_regions, read_region, remove_group,
                       stored_chunks, write_region)
from ._repair import StoreCorruptError, drop_damaged_groups
from ._runstate import record_run_steps, record_step_done, run_steps
from ._store import IncompleteGroupError, list_groups, open_tree, read_group, write, write_groups
from ._summary import describe_store, format_store
from ._tiff import read_tiff_stack, tiff_pixel_size
from ._xanes import read_xanes
from ._xradia import read_xradia

__all__ = [
    "ChunkProblem",
    "EXPORT_FORMATS",
    "IncompleteGroupError",
    "ReaderError",
    "StoreCorruptError",
    "StoreLockedError",
    "StoreWriteError",
    "VerifyReport",
    "describe_store",
    "drop_damaged_groups",
    "expand_paths",
    "export_store",
    "format_store",
    "init_array",
    "is_complete",
    "list_groups",
    "lock_path",
    "mark_complete",
    "missing_regions",
    "open_tree",
    "read",
    "read_dxchange",
    "read_fxi",
    "read_group",
    "read_nxtomo",
    "read_region",
    "read_series",
    "read_tiff_stack",
    "read_xanes",
    "read_xradia",
    "record_run_steps",
    "record_step_done",
    "remove_group",
    "require_flats",
    "run_steps",
    "store_lock",
    "stored_chunks",
    "tiff_pixel_size",
    "verify_store",
    "write",
    "write_groups",
    "write_ome_zarr",
    "write_region",
]
