"""Exact k-th smallest value per group over a stream of blocks (radix select).

Medians and equal-count cuts need a global order. Floats are mapped to
unsigned integers of the same order (:func:`sortable`); each pass histograms the
next digit of the values that share the digits found so far (16 bits, then 12),
so five passes over the blocks give the exact 64-bit value (three for float32)
and the rank left inside the group of values equal to it. Memory: 65536 counts
per group in the first pass, 4096 per group and target slot after it, and the
non-zero counts of the blocks in flight.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ._blocks import map_blocks

__all__ = ["sortable", "from_sortable", "sortable32", "from_sortable32", "key_codec",
           "select_kth"]

_SIGN = np.uint64(1) << np.uint64(63)
_SIGN32 = np.uint32(1) << np.uint32(31)


def sortable(values: np.ndarray) -> np.ndarray:
    """float64 -> uint64 with the same order (no NaN)."""
    u = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    return np.where(u & _SIGN, ~u, u | _SIGN)


def from_sortable(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.uint64)
    return np.where(keys & _SIGN, keys & ~_SIGN, ~keys).view(np.float64)


def sortable32(values: np.ndarray) -> np.ndarray:
    """float32 values (given as float32 or float64 holding float32 values) -> uint64 keys
    of 32 significant bits with the same order (no NaN)."""
    u = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    return np.where(u & _SIGN32, ~u, u | _SIGN32).astype(np.uint64)


def from_sortable32(keys) -> np.ndarray:
    """Inverse of :func:`sortable32`, as float64."""
    k = np.asarray(keys).astype(np.uint32)
    return np.where(k & _SIGN32, k & ~_SIGN32, ~k).view(np.float32).astype(np.float64)


def key_codec(dtype) -> tuple:
    """(encode, decode, bits) for values of ``dtype``: float32 data select on 32-bit keys
    (three passes, the same values as five passes over their float64 copies)."""
    if np.dtype(dtype) == np.float32:
        return sortable32, from_sortable32, 32
    return sortable, from_sortable, 64


def select_kth(item: Callable[[object], tuple[np.ndarray, np.ndarray]], cores: Sequence,
               groups, ranks, *, bits: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The key of rank ``ranks[t]`` (0-based) within group ``groups[t]``, per target.

    Parameters
    ----------
    item : callable(core) -> (group int64 array, key uint64 array)
        One block's items; a pass over the data calls it for every core
        (three passes for 32 bits, five for 64), through :func:`map_blocks`.
    cores : sequence
        The blocks (e.g. slices from :func:`blocks`).
    groups, ranks : sequence of int
        Targets; every rank must be below its group's size.
    bits : {32, 64}
        Significant low bits of the keys.

    Returns
    -------
    keys : ndarray, uint64
        The selected keys.
    residual : ndarray, int64
        Rank of the target among the items of its group equal to its key.
    """
    groups = np.asarray(groups, dtype=np.int64)
    residual = np.asarray(ranks, dtype=np.int64).copy()
    prefix = np.zeros(groups.size, dtype=np.uint64)
    n_groups = max(int(groups.max(initial=-1)) + 1, 1)
    done = 0
    for p, digit_bits in enumerate(_digits(bits)):
        shift = np.uint64(bits - done - digit_bits)
        done += digit_bits
        bins = 1 << digit_bits
        # targets of one group with one prefix share a histogram ("slot")
        pairs = {}
        slot = np.array([pairs.setdefault((g, int(pre)), len([k for k in pairs if k[0] == g]))
                         for g, pre in zip(groups, prefix)], dtype=np.int64)
        n_slots = int(slot.max(initial=-1)) + 1
        table = np.full((n_slots, n_groups), np.iinfo(np.uint64).max, dtype=np.uint64)
        table[slot, groups] = prefix
        width = n_groups * bins

        def histogram(core, p=p, shift=shift, table=table, n_slots=n_slots, bins=bins,
                      up=np.uint64(shift + np.uint64(digit_bits))):
            grp, key = item(core)
            high = key >> up if p else np.zeros_like(key)
            digit = ((key >> shift) & np.uint64(bins - 1)).astype(np.int64)
            out = []
            for s in range(n_slots):  # a few slots (targets per group)
                hit = high == table[s, grp]
                counts = np.bincount(grp[hit] * bins + digit[hit], minlength=width)
                where = np.flatnonzero(counts)  # sparse: blocks in flight stay small
                out.append((where, counts[where]))
            return out

        hist = map_blocks(histogram, cores, reduce=_add_into,
                          initial=np.zeros((n_slots, width), np.int64))
        for t in range(groups.size):
            h = hist[slot[t], groups[t] * bins:(groups[t] + 1) * bins]
            below = np.cumsum(h) - h
            d = int(np.searchsorted(np.cumsum(h), residual[t], side="right"))
            residual[t] -= below[d]
            prefix[t] = (prefix[t] << np.uint64(digit_bits)) | np.uint64(d)
    return prefix, residual


def _digits(bits: int) -> list[int]:
    """Digit widths of the passes: 16 bits first (one histogram per group), then 12 (a
    histogram per group and distinct prefix, up to one per target: 4096 counts each
    instead of 65536 keeps them ~1 MiB however many groups the quantiles split)."""
    rest = bits - 16
    return [16] + [12] * (rest // 12) + ([rest % 12] if rest % 12 else [])


def _add_into(acc: np.ndarray, part: list) -> np.ndarray:
    for row, (where, counts) in zip(acc, part):
        row[where] += counts
    return acc
