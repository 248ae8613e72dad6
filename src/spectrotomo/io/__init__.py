"""spectrotomo.io: the sample store (zarr v3), OME-Zarr views and readers."""

from ._lock import StoreLockedError, store_lock
from ._markers import is_complete
from ._omezarr import write_ome_zarr
from ._regions import init_array, mark_complete, missing_regions, write_region
from ._summary import describe_store, format_store
from ._store import IncompleteGroupError, list_groups, open_tree, read_group, write, write_groups

__all__ = [
    "IncompleteGroupError",
    "StoreLockedError",
    "describe_store",
    "format_store",
    "init_array",
    "is_complete",
    "list_groups",
    "mark_complete",
    "missing_regions",
    "open_tree",
    "read_group",
    "store_lock",
    "write",
    "write_groups",
    "write_ome_zarr",
    "write_region",
]
