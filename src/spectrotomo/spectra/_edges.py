"""Which measured energies form each element's below/above dual-energy pair."""

from __future__ import annotations

import numpy as np

from .._physics import pair_window

__all__ = ["edge_pairs"]


def edge_pairs(energies, elements) -> dict[str, tuple[float, float]]:
    """Element -> (below, above) eV: the extreme measured energies around its edge.

    Parameters
    ----------
    energies : array_like, shape (n_energies,), eV
        The energies of a tilt series or volume stack.
    elements : iterable of str
        Elements to pair (O, Mn, Co, Ni).

    Returns
    -------
    dict
        Only elements with at least two energies inside their pairing window
        (``spectrotomo._physics.pair_window``: the edge window widened by a few eV,
        since below-edge images are often recorded further below).
    """
    energies = np.asarray(energies, dtype=float)
    pairs = {}
    for el in elements:
        lo, hi = pair_window(el)
        inside = energies[(energies >= lo) & (energies <= hi)]
        if inside.size >= 2:
            pairs[el] = (float(inside.min()), float(inside.max()))
    return pairs
