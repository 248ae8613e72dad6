"""Fourier-space weights of filtered back-projection: ramp x window x angle weight."""

from __future__ import annotations

import numpy as np

__all__ = ["FILTERS", "ramp_window", "angular_weights"]

FILTERS = ("ram-lak", "shepp-logan", "cosine", "hamming", "hann", "parzen")


def ramp_window(n_pad: int, filter_name: str = "ram-lak") -> np.ndarray:
    """Ramp x window on ``rfftfreq(n_pad)`` (cycles per pixel), shape (n_pad // 2 + 1,).

    The ramp is the DFT of the band-limited spatial ramp kernel
    (``h[0] = 1/4``, ``h[n odd] = -1/(pi n)^2``), not ``|omega|`` sampled:
    it keeps the small DC term that a zero-padded finite detector needs, which
    removes the cupping / offset of the naive ramp (Kak & Slaney, ch. 3).
    """
    name = filter_name.lower().replace("_", "-")
    if name not in FILTERS:
        raise ValueError(f"fbp: 'filter' must be one of {FILTERS}; got {filter_name!r}")
    n = np.concatenate([np.arange(1, n_pad // 2 + 1, 2), np.arange(n_pad // 2 - 1, 0, -2)])
    h = np.zeros(n_pad)
    h[0] = 0.25
    h[1::2] = -1.0 / (np.pi * n) ** 2
    ramp = np.fft.rfft(h).real
    f = np.fft.rfftfreq(n_pad)  # 0 .. 0.5
    if name == "shepp-logan":
        window = np.sinc(f)
    elif name == "cosine":
        window = np.cos(np.pi * f)
    elif name == "hamming":
        window = 0.54 + 0.46 * np.cos(2 * np.pi * f)
    elif name == "hann":
        window = 0.5 + 0.5 * np.cos(2 * np.pi * f)
    elif name == "parzen":
        x = f / 0.5
        window = np.where(x <= 0.5, 1 - 6 * x**2 + 6 * x**3, 2 * (1 - x) ** 3)
    else:
        window = np.ones_like(f)
    return ramp * window


def angular_weights(angles_deg) -> np.ndarray:
    """Quadrature weights (radians) of each angle for the integral over [0, pi).

    Directions are taken modulo 180 deg; each angle gets half the gaps to its
    neighbours, so non-uniform sets, repeats and 360 deg scans (each direction
    twice, half weight each) are handled. A gap wider than both 10x the median
    gap and 5 deg is a missing wedge: it is not filled (the neighbours get the
    median gap instead), so limited-angle scans get no spurious edge weight.
    Returns shape (n_angles,), summing to ~pi for complete scans.
    """
    a = np.mod(np.asarray(angles_deg, dtype=float), 180.0)
    if a.size == 1:
        return np.array([np.pi])
    order = np.argsort(a, kind="stable")
    s = a[order]
    gaps = np.diff(np.concatenate([s, [s[0] + 180.0]]))  # gap after each sorted angle
    positive = gaps[gaps > 1e-9]
    median = np.median(positive) if positive.size else 180.0 / a.size
    gaps = np.where(gaps > max(10 * median, 5.0), median, gaps)
    w_sorted = 0.5 * (gaps + np.roll(gaps, 1))
    w = np.empty_like(w_sorted)
    w[order] = w_sorted
    return np.deg2rad(w)
