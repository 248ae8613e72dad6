"""OME-Zarr (NGFF 0.4 / 0.5) metadata of the images and label images that
:mod:`._omezarr` writes: pyramid levels and their coordinate transformations, the
OMERO display window and the ``image-label`` colour table."""

from __future__ import annotations

import numpy as np

# tab10, 0-255: distinct, colour-blind-tolerant defaults for label values 1, 2, ...
_PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
#: label images list every value's colour when there are at most this many
MAX_LISTED_LABELS = 4096
#: voxels per channel kept for the display-window percentiles (a strided sample)
_WINDOW_SAMPLE = 4_000_000


def default_levels(shape) -> int:
    levels = 1
    while max(-(-s // 2 ** levels) for s in shape) >= 64:
        levels += 1
    return levels


def _transforms(voxel, level: int, labels: bool, channel: bool) -> list[dict]:
    factor = 2 ** level
    lead = [1.0] if channel else []
    out = [{"type": "scale", "scale": lead + [float(v * factor) for v in voxel]}]
    if level and not labels:  # a block mean's centre sits half a block in
        out.append({"type": "translation",
                    "translation": [0.0] * len(lead) + [float(v * (factor - 1) / 2)
                                                         for v in voxel]})
    return out


def multiscale(name, axes, voxel, n_levels, labels, version, channel) -> dict:
    ax = [{"name": "c", "type": "channel"}] if channel else []
    ax += [{"name": a, "type": "space", "unit": "nanometer"} for a in axes]
    ms = {
        "name": name,
        "axes": ax,
        "datasets": [{"path": str(k),
                      "coordinateTransformations": _transforms(voxel, k, labels, channel)}
                     for k in range(n_levels)],
        "type": "nearest" if labels else "mean",
        "metadata": {"description": "2x subsampling" if labels else "2x block mean",
                     "software": "spectrotomo"},
    }
    if version == "0.4":
        ms["version"] = "0.4"
    return ms


class Window:
    """Running min/max of the finite values and a strided sample inside the mask,
    per channel, for the OMERO window."""

    def __init__(self, n_channels: int, n_voxels: int, percentiles):
        self.stride = max(1, n_voxels // _WINDOW_SAMPLE)
        self.lo = np.full(n_channels, np.inf)
        self.hi = np.full(n_channels, -np.inf)
        self.samples = [[] for _ in range(n_channels)]
        self.percentiles = percentiles

    def add(self, block: np.ndarray, mask_block) -> None:
        for c, plane in enumerate(block):
            finite = plane[np.isfinite(plane)]
            if finite.size:
                self.lo[c] = min(self.lo[c], float(finite.min()))
                self.hi[c] = max(self.hi[c], float(finite.max()))
            inside = plane[mask_block] if mask_block is not None else plane.ravel()
            inside = inside[np.isfinite(inside)]
            self.samples[c].append(inside[::self.stride])

    def channels(self, names) -> list[dict]:
        out = []
        for c, name in enumerate(names):
            sample = np.concatenate(self.samples[c])
            lo, hi = (self.lo[c], self.hi[c]) if np.isfinite(self.lo[c]) else (0.0, 1.0)
            start, end = (np.percentile(sample, self.percentiles) if sample.size else (lo, hi))
            if not end > start:  # a constant region: widen so viewers can draw it
                start, end = start - 0.5, end + 0.5
            out.append({"label": str(name), "color": "FFFFFF", "active": c == 0,
                        "window": {"min": float(min(lo, start)), "max": float(max(hi, end)),
                                   "start": float(start), "end": float(end)}})
        return out


def image_label(values, label_names, label_colors, version) -> dict:
    names = dict(enumerate(label_names)) if isinstance(label_names, (list, tuple)) \
        else dict(label_names or {})
    colors = dict(label_colors or {})
    label = {"source": {"image": "../../"}}
    if version == "0.4":
        label["version"] = "0.4"
    if len(values) > MAX_LISTED_LABELS and not names and not colors:
        # many instance labels: the viewer's own cyclic colours (a listed colour table
        # makes napari hide every value it leaves out)
        return label
    listed = set(values) if len(values) <= MAX_LISTED_LABELS else {0}
    listed |= set(names) | set(colors)
    rgba, props = [], []
    for v in sorted(int(v) for v in listed):
        c = colors.get(v, (0, 0, 0, 0) if v == 0 else _PALETTE[(v - 1) % len(_PALETTE)])
        c = [int(x) for x in c] + [255] * (4 - len(c))
        if len(c) != 4 or not all(0 <= x <= 255 for x in c):
            raise ValueError(f"label_colors[{v}] must be (r, g, b[, a]) in 0-255; got {c}")
        rgba.append({"label-value": v, "rgba": c})
        # every coloured value needs a property entry (validators check the two sets
        # agree); the name is optional
        props.append({"label-value": v, **({"name": str(names[v])} if v in names else {})})
    return {"colors": rgba, "properties": props, **label}
