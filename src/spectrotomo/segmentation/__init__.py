"""spectrotomo.segmentation: particle masks, composition classes, voids and
cracks, equal-volume shells, depth below the surface and profile statistics.

Lengths in nm; masks/labels are ``(z, y, x)`` or ``(y, x)`` arrays or
DataArrays (voxel size from ``attrs['spacing']``, ``attrs['pixel_size']`` or
the steps of nm coordinates; plain arrays take ``spacing=`` and default to
1 nm).

Chunking: ``composition_classes`` is element-wise (lazy on dask arrays, runs
on cupy arrays). The whole-volume functions that measure distance or shape
(``depth``, ``shells``, ``particle_mask``, ``find_pores``, ``find_cracks``,
``masked_smooth``, ``surface_layer_pooling``) have block-wise twins with the same results (labels
identical) and memory bounded by a few blocks: ``segment_volume`` chains them
on any sliceable input (numpy, zarr, dask, lazy xarray), ``profile_table_blocks``
(``profile_tables_blocks``: several at once) reduces the profiles; see ``_blocks.py`` for
the algorithms (halos, labels
merged across faces, exact distance with growing halos, radix-select medians).
The tables (``class_fractions``, ``profile_table``, ``defect_table``) reduce
with bincounts and accept numpy, cupy or dask input (copied to the host).
"""

from ._blocks import block_shape
from ._classes import CLASS_LEGEND, legend_attrs
from ._classes import class_fractions
from ._classes import composition_classes
from ._depth import depth
from ._mask import particle_mask
from ._mask import split_particles
from ._plot import draw_profile
from ._plot import plot_profile
from ._pores import defect_sizes
from ._pores import defect_table
from ._pores import find_cracks
from ._pores import find_pores
from ._shells import shells
from ._smooth import masked_smooth
from ._layerpool import surface_layer_pooling
from ._segment import SegmentResult, segment_volume
from ._blockstats import profile_table_blocks, profile_tables_blocks
from ._stats import profile_table
from ._stats import region_stats
from ._stats import to_csv

__all__ = [
    "block_shape",
    "CLASS_LEGEND",
    "legend_attrs",
    "class_fractions",
    "composition_classes",
    "defect_sizes",
    "defect_table",
    "depth",
    "draw_profile",
    "find_cracks",
    "find_pores",
    "masked_smooth",
    "particle_mask",
    "plot_profile",
    "profile_table",
    "profile_table_blocks",
    "profile_tables_blocks",
    "region_stats",
    "segment_volume",
    "SegmentResult",
    "shells",
    "split_particles",
    "surface_layer_pooling",
    "to_csv",
]
