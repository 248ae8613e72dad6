"""Shared check: the errors against the truth read in z slabs equal one slab."""

import math

from spectrotomo.pipeline import _truth_errors


def _numbers(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_numbers(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def assert_slabs_equal_one_slab(store, monkeypatch, planes: int = 3) -> dict:
    """``truth_errors`` in slabs of ``planes`` z planes (the frame's sub-voxel shift and
    the solid's erosion then need planes across slab edges) vs one slab of the whole
    volume: every number within 1e-12 relative (sums in another order). Returns the
    one-slab errors."""
    monkeypatch.setattr(_truth_errors, "SLAB_VOXELS", 2**62)
    whole = _truth_errors.truth_errors(store)
    truth = _truth_errors.io.read_group(store, "truth")
    monkeypatch.setattr(_truth_errors, "SLAB_VOXELS",
                        planes * truth.sizes["y"] * truth.sizes["x"])
    slabs = _truth_errors.truth_errors(store)
    a, b = _numbers(whole), _numbers(slabs)
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float):
            assert math.isclose(a[key], b[key], rel_tol=1e-12, abs_tol=1e-15), (key, a[key], b[key])
        else:
            assert a[key] == b[key], key
    return whole
