"""Batched sub-pixel image shifts and phase correlation (numpy or cupy).

Convention: a displacement ``d = (dy, dx)`` in pixels means the content at
``p`` in the reference appears at ``p + d`` in the moved image, i.e.
``moved(p) = ref(p - d)``. ``fourier_shift(img, d)`` applies ``d``;
``phase_correlate(ref, moved)`` measures it.
"""

from __future__ import annotations

import numpy as np

from ..._backend import array_module

__all__ = ["candidate_stack", "fourier_shift", "pad_width", "phase_correlate"]


def _fft(xp):
    """scipy.fft on the host (pocketfft in single precision: ~2x numpy.fft's float32
    transforms here; one thread, as callers run energies in threads), else ``xp.fft``."""
    if xp is np:
        import scipy.fft

        return scipy.fft
    return xp.fft


def pad_width(shifts) -> int:
    """Edge padding (px) :func:`fourier_shift` gives a stack shifted by ``shifts`` (n, 2) px."""
    return int(np.ceil(float(np.max(np.abs(np.asarray(shifts))) if np.size(shifts) else 0))) + 2


def fourier_shift(images, shifts, *, pad: bool | int = True, workers: int = 1, out=None,
                  chunk_bytes: int | None = None):
    """Shift each image of a stack by its own sub-pixel displacement.

    Parameters
    ----------
    images : ndarray, shape (n, ny, nx)
        Real images (numpy or cupy).
    shifts : array_like, shape (n, 2)
        Displacement (dy, dx) in pixels applied to each image.
    pad : bool or int
        Pad with edge values before the FFT so content does not wrap around: by the
        largest shift + 2 px (True), or by this many px (an int: the parts of one
        stack shifted in chunks then get the whole stack's padding, hence its values).
    workers : int
        Threads of the host FFTs (``scipy.fft``: they split the stack, so the
        result does not depend on it); 1 where the caller runs stacks in threads.
    out : ndarray, shape (n, ny, nx), optional
        Where the result goes (may be ``images`` itself: each chunk is read before
        it is written).
    chunk_bytes : int, optional
        Shift chunks of frames of about this many input bytes (at least one frame,
        and ``workers`` frames) one after the other, each with the whole stack's
        padding: the same values as one call, with work arrays that follow the
        chunk, not the stack.

    Returns
    -------
    ndarray, shape (n, ny, nx), float32 or float64 like the input (``out`` if given)
    """
    if chunk_bytes is not None or out is not None:
        return _shift_by_chunks(images, shifts, pad, workers, out, chunk_bytes)
    xp = array_module(images)
    images = xp.asarray(images)
    dtype = images.dtype if images.dtype in (np.float32, np.float64) else np.float32
    shifts_h = np.asarray(shifts.get() if hasattr(shifts, "get") else shifts, dtype=float)
    shifts_h = shifts_h.reshape(images.shape[0], 2)
    p = pad_width(shifts_h) if pad is True else int(pad)  # False: 0
    work = xp.pad(images, ((0, 0), (p, p), (p, p)), mode="edge") if p else images
    n, my, mx = work.shape
    # the phase ramp is separable: one (n, my) and one (n, mx // 2 + 1) factor instead of
    # a complex exp per frequency; float32 images transform in complex64 (numpy >= 2 and
    # cupy keep the precision): 5x less CPU than complex128 with a full ramp on 131 x
    # 128^2, same values to 5e-7 of an optical density of 1.6
    cdt = np.complex64 if dtype == np.float32 else np.complex128
    ry = xp.asarray(np.exp(-2j * np.pi * np.fft.fftfreq(my)[None] * shifts_h[:, :1]), cdt)
    rx = xp.asarray(np.exp(-2j * np.pi * np.fft.rfftfreq(mx)[None] * shifts_h[:, 1:]), cdt)
    fft, kw = _fft(xp), ({"workers": int(workers)} if xp is np else {})
    spectrum = fft.rfft2(work.astype(dtype, copy=False), **kw)
    spectrum *= ry[:, :, None]
    spectrum *= rx[:, None, :]
    out = fft.irfft2(spectrum, s=(my, mx), **kw)
    if p:
        out = out[:, p:p + images.shape[1], p:p + images.shape[2]]
    return out.astype(dtype, copy=False)


def _shift_by_chunks(images, shifts, pad, workers: int, out, chunk_bytes):
    """:func:`fourier_shift` into ``out`` by chunks of frames of ``chunk_bytes`` (None: one
    chunk), every chunk padded as the whole stack."""
    xp = array_module(images)
    shifts_h = np.asarray(shifts.get() if hasattr(shifts, "get") else shifts, dtype=float)
    shifts_h = shifts_h.reshape(images.shape[0], 2)
    p = pad_width(shifts_h) if pad is True else int(pad)
    n = images.shape[0]
    frame = images[0].nbytes if n else 1
    per = n if chunk_bytes is None else max(int(workers), int(chunk_bytes) // frame, 1)
    if out is None:
        dtype = images.dtype if images.dtype in (np.float32, np.float64) else np.float32
        out = xp.empty(images.shape, dtype)
    elif tuple(out.shape) != tuple(images.shape):
        raise ValueError(f"fourier_shift: 'out' must have the images' shape {images.shape}; "
                         f"got {tuple(out.shape)}")
    for a in range(0, n, per):  # chunks of frames, not frames: a few per stack
        out[a:a + per] = fourier_shift(images[a:a + per], shifts_h[a:a + per], pad=p,
                                       workers=workers)
    return out


def _upsampled_dft(xp, spectrum, peaks, upsample: int, n_up: int):
    """Cross-correlation on an ``n_up`` x ``n_up`` grid of step 1/upsample around peaks.

    spectrum (b, m, n) complex, peaks (b, 2) float -> (b, n_up, n_up) real.
    """
    b, m, n = spectrum.shape
    offs = (xp.arange(n_up) - n_up // 2) / upsample
    fy = xp.asarray(np.fft.fftfreq(m) * m)
    fx = xp.asarray(np.fft.fftfreq(n) * n)
    ys = peaks[:, 0, None] + offs[None]  # (b, n_up)
    xs = peaks[:, 1, None] + offs[None]
    ey = xp.exp(2j * np.pi * ys[:, :, None] * fy[None, None, :] / m)  # (b, n_up, m)
    ex = xp.exp(2j * np.pi * fx[None, :, None] * xs[:, None, :] / n)  # (b, n, n_up)
    return xp.real(ey @ spectrum @ ex)


#: Work arrays of phase_correlate: ~5 complex128 / float64 images per input image.
_BYTES_PER_PIXEL = 80
_BATCH_BYTES = 2**28  # per batch of images: 256 MiB of work arrays


def correlate_batch(ny: int, nx: int, batch_bytes: int | None = None) -> int:
    """Images per batch of :func:`phase_correlate` on (ny, nx) images, whose work arrays
    take about ``batch_bytes`` (default :data:`_BATCH_BYTES`; its whitening floor is taken
    per batch: a caller splitting a long stack into multiples of this gets the values of
    one call)."""
    budget = _BATCH_BYTES if batch_bytes is None else int(batch_bytes)
    return max(1, budget // (_BYTES_PER_PIXEL * int(ny) * int(nx)))


def phase_correlate(ref, moved, *, upsample: int = 20, whiten: float = 1.0,
                    lowpass: float | None = None, max_shift: float | None = None,
                    batch_bytes: int | None = None):
    """Displacement of each ``moved`` image relative to ``ref`` (batched).

    Parameters
    ----------
    ref, moved : ndarray, shape (n, ny, nx) or (ny, nx)
        Images; ``ref`` may be a single image shared by all.
    upsample : int
        Sub-pixel precision 1/upsample px (DFT upsampling, Guizar-Sicairos
        et al. 2008), refined by a parabola through the upsampled peak.
    whiten : float
        Exponent of the spectral whitening (1 = phase correlation, 0 = plain
        cross-correlation).
    lowpass : float, optional
        Gaussian low-pass sigma in cycles/pixel applied to the cross power
        (suppresses noise-dominated frequencies).
    max_shift : float, optional
        Only peaks within this many pixels of zero are considered.
    batch_bytes : int, optional
        Work arrays per batch, bytes (default 256 MiB, :func:`correlate_batch`).

    Returns
    -------
    ndarray, shape (n, 2) float64 (numpy), (dy, dx) in pixels.

    Notes
    -----
    Long stacks run in batches of about 256 MiB (``batch_bytes``) of work arrays (~80 bytes
    per pixel of each image); the whitening floor is then taken per batch.
    On the host a batch of 16 or more images is split over ``host_threads()``
    (one floor for the batch): the one-thread result, to rounding where
    numpy's complex product takes another SIMD path for a part's alignment.
    """
    xp = array_module(ref, moved)
    if moved.ndim == 2:
        moved = moved[None]
    if ref.ndim == 2:
        ref = ref[None]
    batch = correlate_batch(moved.shape[1], moved.shape[2], batch_bytes)
    if moved.shape[0] > batch:  # bounded work arrays for long stacks (angles, energies)
        return np.concatenate([
            phase_correlate(ref if ref.shape[0] == 1 else ref[i:i + batch], moved[i:i + batch],
                            upsample=upsample, whiten=whiten, lowpass=lowpass,
                            max_shift=max_shift, batch_bytes=batch_bytes)
            for i in range(0, moved.shape[0], batch)])
    moved = xp.asarray(moved, dtype=np.float64)
    ref = xp.asarray(ref, dtype=np.float64)
    shared = _spectrum(xp, ref) if ref.shape[0] == 1 else None
    parts = _thread_parts(xp, moved.shape[0])
    # two passes over parts of the stack in threads (numpy's FFTs and products release the
    # GIL): cross powers, then -- after the one floor of the whitening, the largest
    # |cross| of the whole stack -- the peaks; every other step is per image
    # each part in chunks of _CHUNK_BYTES: the per-image work arrays of a chunk, not a
    # part's, are held beside the cross powers (16 B per pixel, kept for the floor)
    pixels = moved.shape[1] * moved.shape[2]
    crosses = _map(parts, lambda part: _chunked(xp, part, lambda ch: _spectrum(
        xp, moved[ch]) * xp.conj(shared if shared is not None else _spectrum(xp, ref[ch])),
        pixels))
    floor = 1e-12 * max(float(xp.abs(c).max()) for c in crosses) if whiten else 0.0
    peaks = _map(range(len(parts)), lambda i: _chunked(xp, slice(0, crosses[i].shape[0]),
                 lambda ch: _peaks(xp, crosses[i][ch], whiten=whiten, floor=floor,
                                   lowpass=lowpass, max_shift=max_shift, upsample=upsample),
                 pixels))
    out = xp.concatenate(peaks)
    out = out.get() if hasattr(out, "get") else out
    return np.asarray(out, dtype=np.float64)


#: Work arrays of one chunk of a part of :func:`phase_correlate`'s stack, bytes: its
#: cross powers (16 B per pixel) are kept whole for the whitening floor, the rest of
#: the ~80 B per pixel comes and goes by chunks (the same values: every step is per image)
_CHUNK_BYTES = 2**24


def _chunked(xp, part: slice, fn, pixels: int):
    """``fn`` of ``part`` (a slice of images of ``pixels`` each) by chunks of
    :data:`_CHUNK_BYTES` of work arrays, joined along the images."""
    step = max(1, _CHUNK_BYTES // (_BYTES_PER_PIXEL * pixels))
    return xp.concatenate([fn(slice(i, min(i + step, part.stop)))
                           for i in range(part.start, part.stop, step)])


def _thread_parts(xp, n: int, *, min_part: int = 8) -> list[slice]:
    """Parts of a stack of ``n`` images for the host's threads, at least ``min_part``
    images each (one part on a GPU, and for small stacks: threads would cost more
    than they give)."""
    from ..._backend import host_threads

    k = 1 if xp is not np else max(1, min(host_threads(), n // min_part))
    bounds = np.linspace(0, n, k + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def _map(items, fn) -> list:
    items = list(items)
    if len(items) == 1:
        return [fn(items[0])]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(items), thread_name_prefix="spectrotomo-shift") as pool:
        return list(pool.map(fn, items))


def _spectrum(xp, images):
    """2-D spectrum (b, m, n) complex of the mean-free images (b, m, n)."""
    return xp.fft.fft2(images - images.mean(axis=(-2, -1), keepdims=True))


def _peaks(xp, cross, *, whiten, floor, lowpass, max_shift, upsample):
    """(b, 2) displacements from cross powers (b, m, n): whitened with the shared
    ``floor``, low-passed, the correlation peak refined by DFT upsampling."""
    _, m, n = cross.shape
    if whiten:
        cross = cross / (xp.abs(cross) + floor) ** whiten
    if lowpass:
        ky = xp.asarray(np.fft.fftfreq(m))[:, None]
        kx = xp.asarray(np.fft.fftfreq(n))[None, :]
        cross = cross * xp.exp(-(ky ** 2 + kx ** 2) / (2 * lowpass ** 2))
    cc = xp.real(xp.fft.ifft2(cross))
    if max_shift is not None:
        dy = xp.asarray(np.fft.fftfreq(m) * m)[:, None]
        dx = xp.asarray(np.fft.fftfreq(n) * n)[None, :]
        cc = xp.where((xp.abs(dy) <= max_shift) & (xp.abs(dx) <= max_shift), cc, -xp.inf)
    flat = xp.argmax(cc.reshape(cc.shape[0], -1), axis=1)
    py, px = flat // n, flat % n
    peaks = xp.stack([xp.where(py > m // 2, py - m, py), xp.where(px > n // 2, px - n, px)],
                     axis=1).astype(np.float64)
    if upsample > 1:
        n_up = int(np.ceil(1.5 * upsample)) | 1
        up = _upsampled_dft(xp, cross, peaks, upsample, n_up)
        k = xp.argmax(up.reshape(up.shape[0], -1), axis=1)
        iy, ix = k // n_up, k % n_up
        iy = xp.clip(iy, 1, n_up - 2)
        ix = xp.clip(ix, 1, n_up - 2)
        b = xp.arange(up.shape[0])
        ry = _parabola(up[b, iy - 1, ix], up[b, iy, ix], up[b, iy + 1, ix])
        rx = _parabola(up[b, iy, ix - 1], up[b, iy, ix], up[b, iy, ix + 1])
        peaks = peaks + xp.stack([(iy - n_up // 2 + ry) / upsample,
                                  (ix - n_up // 2 + rx) / upsample], axis=1)
    return peaks


def _parabola(a, b, c):
    """Vertex offset of the parabola through (-1, a), (0, b), (1, c), clipped to +-0.5."""
    den = a - 2 * b + c
    safe = (den < 0) & (abs(den) > 1e-30)
    off = 0.5 * (a - c) / (den + (~safe))
    return (off * safe).clip(-0.5, 0.5)


def candidate_stack(xp, projections, rows, candidates):
    """The chosen rows shifted so that each candidate axis sits at the detector
    centre -- all candidates go through one reconstruction call.

    Parameters
    ----------
    xp : module
        numpy or cupy (the module of ``projections``).
    projections : ndarray, shape (A, n_rows, n)
        Optical density.
    rows : sequence of int, length r
        Detector rows used.
    candidates : ndarray, shape (k,)
        Candidate rotation-axis columns (column ``i``'s centre at ``i``).

    Returns
    -------
    stack : ndarray, shape (A, k*r, n) float32
        Candidate-major: rows ``i*r .. (i+1)*r`` are shifted for ``candidates[i]``.
    ref : float
        The detector centre ``(n - 1) / 2``: reconstruct ``stack`` with this centre.
    """
    n = projections.shape[-1]
    ref = (n - 1) / 2.0
    sub = projections[:, rows, :].astype(np.float32)  # (A, r, n)
    a, r, _ = sub.shape
    stack = xp.broadcast_to(sub[:, None], (a, candidates.size, r, n)).reshape(a, -1, n)
    d = np.repeat(ref - candidates, r)
    shifted = fourier_shift(xp.moveaxis(stack, 1, 0), np.stack([np.zeros_like(d), d], axis=1))
    return xp.moveaxis(shifted, 0, 1), ref
