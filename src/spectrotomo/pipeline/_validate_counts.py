"""Plan-time checks of the counts: a sample of frames (at most ``SAMPLE_BYTES``) is read
and refused when frames are all zero or saturated, flats are not above darks, or
too many counts are non-positive after dark subtraction."""

from __future__ import annotations

import numpy as np


#: Most bytes of frames read at plan time for the count checks.
SAMPLE_BYTES = 64 * 2**20
NONPOSITIVE_REFUSE, NONPOSITIVE_WARN = 0.20, 0.01
SATURATED_REFUSE, SATURATED_WARN = 0.99, 0.05


def short_values(values, n: int = 8) -> str:
    v = [f"{x:g}" for x in np.asarray(values).ravel()[:n]]
    return "[" + ", ".join(v) + (", ..." if np.size(values) > n else "") + "]"


def _sample_frames(ds) -> tuple[np.ndarray, np.ndarray]:
    """(frames (energy, k, ny, nx), angle indices) within ``SAMPLE_BYTES``."""
    proj = ds["projections"]
    proj = proj.transpose("energy", "angle", ..., "y", "x")
    n_e, n_a = proj.sizes["energy"], proj.sizes["angle"]
    frame = int(np.prod(proj.shape[2:])) * proj.dtype.itemsize
    per_energy = max(1, SAMPLE_BYTES // max(frame * n_e, 1))
    idx = np.unique(np.linspace(0, n_a - 1, min(n_a, per_energy)).round().astype(int))
    frames = np.asarray(proj.isel(angle=idx).values)
    return frames.reshape(n_e, -1, *frames.shape[-2:]), idx


def check_counts(inp, problems: list, warnings: list) -> None:
    ds, where = inp.ds, inp.where
    frames, idx = _sample_frames(ds)
    n_frames_per = frames.shape[1] // max(idx.size, 1)
    finite = np.isfinite(frames) if frames.dtype.kind == "f" else None
    flat_frames = frames.reshape(-1, frames.shape[-2] * frames.shape[-1])
    zero = ~np.any(np.where(np.isfinite(flat_frames), flat_frames, 0) != 0, axis=1)
    if zero.any():
        bad = _frame_names(np.flatnonzero(zero), idx, n_frames_per, frames.shape[1], inp)
        problems.append(f"{where}: projections: {int(zero.sum())} all-zero frame(s) ({bad}); "
                        "expected counts (a detector read-out failed?)")
    if frames.dtype.kind in "ui":
        top = np.iinfo(frames.dtype).max
        saturated = (flat_frames == top).mean(axis=1)
        full = saturated >= SATURATED_REFUSE
        if full.any():
            bad = _frame_names(np.flatnonzero(full), idx, n_frames_per, frames.shape[1], inp)
            problems.append(f"{where}: projections: {int(full.sum())} saturated frame(s) "
                            f"({bad}: >= {SATURATED_REFUSE:.0%} of pixels at {top}); expected "
                            "counts below the detector's maximum")
        elif saturated.max() > SATURATED_WARN:
            warnings.append(f"{where}: projections: up to {saturated.max():.1%} of a frame's "
                            f"pixels at the detector maximum ({top}); those pixels carry no "
                            "attenuation")
    dark = _reference_means(ds, "darks")
    flat = _reference_means(ds, "flats")
    if flat is not None:
        dim = flat if dark is None else flat - dark
        energies = np.atleast_1d(ds["energy"].values)
        bad = np.flatnonzero(~(dim > 0))
        if bad.size:
            problems.append(f"{where}: {ds.attrs.get('flats_field', 'flats')}: flats are not "
                            f"brighter than darks at energies {short_values(energies[bad])} eV (mean "
                            f"flat {short_values(flat[bad])} vs dark "
                            f"{short_values(np.zeros_like(flat[bad]) if dark is None else dark[bad])}"
                            "); expected open-beam frames above the dark level")
    base = 0.0 if dark is None else dark[:, None, None, None]
    signal = frames.astype(np.float32) - np.float32(base) if dark is None \
        else frames.astype(np.float32) - base.astype(np.float32)
    valid = np.isfinite(signal)
    nonpos = float(((signal <= 0) & valid).sum() / max(valid.sum(), 1))
    if nonpos > NONPOSITIVE_REFUSE:
        problems.append(f"{where}: projections: {nonpos:.1%} of counts are non-positive (after "
                        f"dark subtraction); expected at most {NONPOSITIVE_REFUSE:.0%} (wrong "
                        "darks, or data already normalised/log-transformed?)")
    elif nonpos > NONPOSITIVE_WARN:
        warnings.append(f"{where}: projections: {nonpos:.1%} of counts are non-positive after "
                        "dark subtraction; they are clipped in the optical density")
    counts = dict(ds.attrs.get("nonfinite_counts") or {})
    if counts.get("projections") is None and finite is not None:
        counts["projections (sampled frames)"] = int(finite.size - finite.sum())
    counts = {k: v for k, v in counts.items() if v}
    if counts:
        warnings.append(f"{where}: NaN/Inf counts {counts}; they are masked and filled "
                        "from their neighbours in preprocess")


def _reference_means(ds, name: str):
    """Mean of flats or darks per energy (None without them)."""
    if name not in ds:
        return None
    ref = ds[name]
    other = [d for d in ref.dims if d != "energy"]
    return np.atleast_1d(np.asarray(ref.astype("float64").mean(other).values, float))


def _frame_names(flat_idx, idx, per_angle: int, per_energy: int, inp) -> str:
    names = []
    energies = np.atleast_1d(inp.energies)
    for i in flat_idx[:5]:
        e, k = divmod(int(i), per_energy)
        a = idx[k // max(per_angle, 1)]
        names.append(f"energy {energies[e]:g} eV, angle {inp.angles[a]:g} deg")
    return "; ".join(names) + (", ..." if len(flat_idx) > 5 else "")
