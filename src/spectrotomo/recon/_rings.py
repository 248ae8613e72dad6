"""Stripe (ring-artefact) removal on optical-density stacks, batched over rows.

A detector column with a gain error adds the same offset to every angle of
that column: a vertical stripe in each sinogram, a ring in the
reconstruction. Both methods below work on the whole stack
``(n_angles, n_rows, n_cols)`` at once (every row is a sinogram).

- ``"sort"``: Vo, Atwood & Drakopoulos, Opt. Express 26, 28396 (2018),
  algorithm 3: sort each column along angles, median-filter the sorted
  sinogram across columns, unsort.
- ``"offset"``: the sorting idea applied to the defect itself (close to
  Vo et al. 2018 algorithm 5, additive form): in the sorted sinogram,
  remove the smooth trend across columns (Gaussian), take the part a
  median across columns rejects, and average it over the middle 80 % of
  ranks -- one offset per column, constant over angles like the defect.
  Detrending keeps steep object edges of small detectors from passing
  through the median as stripes.
- ``"fw"``: Muench, Trtik, Marone & Stampanoni, Opt. Express 17, 8567
  (2009): wavelet-decompose each sinogram, damp the vertical-detail bands
  at low angular frequency with a Gaussian notch, recompose.
"""

from __future__ import annotations

import numpy as np

from .._backend import array_module, to_numpy
from .._model import ValidationError

__all__ = ["remove_rings"]


def _median_filter(xp):
    if xp is np:
        from scipy.ndimage import median_filter
    else:
        from cupyx.scipy.ndimage import median_filter
    return median_filter


def _remove_stripes_sorting(xp, stack, size: int):
    """Vo et al. 2018 algorithm 3 on every row of ``stack`` (n_angles, n_rows, n_cols)."""
    order = xp.argsort(stack, axis=0)
    sorted_ = xp.take_along_axis(stack, order, axis=0)
    smooth = _median_filter(xp)(sorted_, size=(1, 1, size), mode="reflect")
    out = xp.empty_like(stack)
    xp.put_along_axis(out, order, smooth, axis=0)
    return out


def _remove_stripes_offset(xp, stack, size: int, sigma: float, trim: float = 0.1):
    """One additive offset per column and row, from the sorted, detrended stack."""
    if xp is np:
        from scipy.ndimage import gaussian_filter1d
    else:
        from cupyx.scipy.ndimage import gaussian_filter1d
    sorted_ = xp.sort(stack, axis=0)
    trend = gaussian_filter1d(sorted_, sigma, axis=-1, mode="nearest")
    high = sorted_ - trend
    spikes = high - _median_filter(xp)(high, size=(1, 1, size), mode="nearest")
    n = stack.shape[0]
    k = int(trim * n)
    offset = spikes[k:n - k].mean(axis=0) if n - 2 * k > 0 else spikes.mean(axis=0)
    return stack - offset[None]


def _remove_stripes_fw(stack, level: int, sigma: float, wavelet: str):
    """Muench et al. 2009 on every row; numpy (PyWavelets) only."""
    try:
        import pywt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("remove_rings(method='fw') needs PyWavelets "
                          "(pip install PyWavelets)") from exc
    n_angles, n_rows, n_cols = stack.shape
    sino = np.ascontiguousarray(np.moveaxis(stack, 1, 0), dtype=np.float64)  # (rows, angles, cols)
    max_level = pywt.dwt_max_level(min(n_angles, n_cols), pywt.Wavelet(wavelet).dec_len)
    level = int(min(level, max(max_level, 1)))
    coeffs = pywt.wavedec2(sino, wavelet, level=level, axes=(-2, -1), mode="symmetric")
    damped = [coeffs[0]]
    for c_h, c_v, c_d in coeffs[1:]:
        # c_v: approximation along angles, detail along columns: stripes live here,
        # at (near-)zero angular frequency.
        m = c_v.shape[-2]
        f = np.fft.rfftfreq(m) * m
        notch = 1.0 - np.exp(-(f ** 2) / (2.0 * sigma ** 2))
        spec = np.fft.rfft(c_v, axis=-2) * notch[:, None]
        damped.append((c_h, np.fft.irfft(spec, n=m, axis=-2), c_d))
    rec = pywt.waverec2(damped, wavelet, axes=(-2, -1), mode="symmetric")
    rec = rec[:, :n_angles, :n_cols]
    return np.moveaxis(rec, 0, 1)


def remove_rings(projections, *, method: str = "offset", size: int | None = None,
                 level: int = 2, sigma: float | None = None, wavelet: str = "db5"):
    """Remove detector stripes (ring artefacts) from an optical-density stack.

    Parameters
    ----------
    projections : ndarray, shape (n_angles, n_rows, n_cols)
        Optical density (numpy or cupy); each row ``[:, r, :]`` is a sinogram.
        A 2-D array is taken as one sinogram (n_angles, n_cols).
    method : {"offset", "sort", "fw"}
        ``"offset"``: per-column offsets from the sorted, detrended
        sinogram (numpy/cupy; the most accurate on small detectors).
        ``"sort"``: sorting + median filter (Vo et al. 2018 algorithm 3,
        as ``algotom.prep.removal.remove_stripe_based_sorting``; numpy/cupy).
        ``"fw"``: Fourier-wavelet (Muench et al. 2009; runs on the host with
        PyWavelets, result returned on the input's device).
    size : int, optional
        ``"sort"``/``"offset"``: median window across columns, pixels (odd,
        wider than the widest stripe); default 21 for "sort", 5 for "offset".
    sigma : float, optional
        ``"offset"``: width of the trend removed across columns, pixels
        (default 2). ``"fw"``: Gaussian notch width in angular-frequency
        bins of each wavelet level (default 1).
    level, wavelet :
        ``"fw"``: decomposition levels and the PyWavelets wavelet name.

    Returns
    -------
    ndarray, same shape, dtype and device as ``projections``
    """
    xp = array_module(projections)
    arr = xp.asarray(projections)
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[:, None, :]
    if arr.ndim != 3:
        raise ValidationError("remove_rings: projections must be (n_angles, n_rows, n_cols) "
                              f"or one sinogram (n_angles, n_cols), got shape {arr.shape}")
    if not bool(xp.isfinite(arr).all()):
        raise ValidationError("remove_rings: projections contain NaN/inf; normalise with "
                              "fill='median' or mask them first")
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float32
    if method in ("sort", "offset"):
        size = (21 if method == "sort" else 5) if size is None else int(size)
        if size < 3:
            raise ValueError(f"remove_rings: size must be >= 3 pixels, got {size}")
        if method == "sort":
            out = _remove_stripes_sorting(xp, arr.astype(dtype), size | 1)
        else:
            out = _remove_stripes_offset(xp, arr.astype(dtype), size | 1,
                                         2.0 if sigma is None else float(sigma))
    elif method == "fw":
        out = xp.asarray(_remove_stripes_fw(to_numpy(arr), level,
                                            1.0 if sigma is None else float(sigma), wavelet))
    else:
        raise ValueError(f"remove_rings: method must be 'offset', 'sort' or 'fw', got {method!r}")
    out = out.astype(dtype, copy=False)
    return out[:, 0, :] if squeeze else out
