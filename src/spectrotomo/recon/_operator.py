"""Matched parallel-beam projector pair built on the Fourier-slice theorem.

Geometry (identical to ``spectrotomo.simulate.project``): ``f[z, y, x]``
rotates about ``z``; with ``X = x - (nx - 1) / 2`` and ``Y = y - (ny - 1) / 2``
the projection at angle ``theta`` (degrees) and column ``u`` integrates
``f`` over the line ``X cos(theta) + Y sin(theta) = u - c``.

The image is a sum of point samples at voxel centres, band-limited to the
detector's Nyquist frequency. The forward projection evaluates the image's
2-D Fourier transform on polar lines ``omega * (cos theta, sin theta)``
(type-2 NUFFT), applies the centre shift as a phase ramp, and inverts the 1-D
FFT along the padded detector. The adjoint runs the same steps backwards
(rFFT, conjugate phase, type-1 NUFFT), so the pair is exact up to the NUFFT
tolerance; filtered back-projection is this adjoint with a ramp x window x
angular weight applied in Fourier space (gridding reconstruction).

Peers: ASTRA's parallel geometry has its volume y axis pointing up (row 0 at
the top), so our angle ``theta`` (deg) is ASTRA's ``-deg2rad(theta)``; its
detector centre ``(n - 1) / 2`` equals our default centre. TomoPy's default
centre is ``n / 2`` (half a pixel right of ours).

Every detector row is an independent slice: a batch of rows is transformed
at once with ``n_trans`` (one plan, many slices), never a loop over slices or
angles.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_angles, check_center
from ._nufft import cached_plan, host_threads, irfft, rfft, run_batches

__all__ = ["ParallelBeamOperator"]

_BATCH_BYTES = 192 * 2**20  # complex work buffer per batch of slices


def _fast_len(n: int) -> int:
    import scipy.fft

    return int(scipy.fft.next_fast_len(int(n), real=True))


class ParallelBeamOperator:
    """Forward/adjoint parallel-beam projector for stacks of slices.

    Parameters
    ----------
    angles : array_like, shape (n_angles,)
        Tilt angles in degrees.
    n_cols : int
        Detector width in pixels.
    center : float, optional
        Rotation-axis column (column ``i``'s centre is at ``i``); default
        ``(n_cols - 1) / 2``. Sub-pixel values are exact (phase ramp).
    shape : tuple of int, optional
        Slice shape ``(ny, nx)`` in voxels, default ``(n_cols, n_cols)``.
    eps : float
        NUFFT relative tolerance (single precision: 1e-6 .. 1e-2).
    pad : float
        Detector padding factor: the 1-D FFT length is the next fast length
        >= ``pad * n_cols`` and >= ``(n_cols + diagonal) / 2``, the least
        for which periodic copies of a projection miss the slice (fewer
        polar points = faster NUFFTs; FBP filters on its own 2x padding).
    xp : module, optional
        ``numpy`` or ``cupy``; arrays passed to the methods must live there.
    batch : int, optional
        Slices per NUFFT call; default sized to ~192 MiB of work buffer.
    response : {None, "box"}
        Detector pixel response in the model: ``"box"`` integrates each
        projection over the pixel width (a ``sinc(omega)`` factor on both
        ``forward`` and ``adjoint``, still an exact pair). The band-limited
        model alone rings at sharp edges in least-squares solutions;
        measured on a 48^2 ball, 60 angles: SIRT (100 it) RMSE 1.10x -> 0.99x
        ASTRA's linear-projector SIRT, CGLS (20 it) 1.30x -> 1.11x.

    Notes
    -----
    ``forward`` maps ``(n_rows, ny, nx)`` float32 volumes (values per voxel)
    to ``(n_angles, n_rows, n_cols)`` float32 line integrals in voxel units;
    ``adjoint`` maps back. ``<forward(f), p> == <f, adjoint(p)>`` to the NUFFT
    tolerance.
    """

    def __init__(self, angles, n_cols: int, center: float | None = None, shape=None, *,
                 eps: float = 1e-5, pad: float = 1.25, xp=np, batch: int | None = None,
                 response: str | None = None):
        self.angles = check_angles(angles, where="ParallelBeamOperator")
        self.n_cols = int(n_cols)
        if self.n_cols < 1:
            raise ValueError(f"ParallelBeamOperator: 'n_cols' must be >= 1; got {n_cols}")
        self.center = check_center(center, self.n_cols, where="ParallelBeamOperator")
        self.shape = (self.n_cols, self.n_cols) if shape is None else tuple(int(s) for s in shape)
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise ValueError(f"ParallelBeamOperator: 'shape' must be (ny, nx); got {shape}")
        self.eps = float(eps)
        self.xp = xp
        if response not in (None, "box"):
            raise ValueError(f"ParallelBeamOperator: 'response' must be None or 'box'; "
                             f"got {response!r}")
        self.response = response
        ny, nx = self.shape
        # Periodic copies of a projection must miss the detector: L > (n_cols + diagonal) / 2.
        need = max(pad * self.n_cols, 0.5 * (self.n_cols + np.hypot(ny, nx)) + 2 * abs(
            self.center - (self.n_cols - 1) / 2) + 2)
        self.n_pad = _fast_len(int(np.ceil(need)))
        self.n_freq = self.n_pad // 2 + 1
        per_slice = self.angles.size * self.n_freq * 8 + ny * nx * 8
        self._threads = host_threads() if xp is np else 1
        # Each host thread works on its own batch: the budget is shared.
        self.batch = int(batch) if batch else max(1, _BATCH_BYTES // (per_slice * self._threads))
        self._setup_points()

    # ------------------------------------------------------------------ #
    def _setup_points(self):
        xp = self.xp
        ny, nx = self.shape
        theta = np.deg2rad(self.angles)[:, None]
        omega = np.fft.rfftfreq(self.n_pad)[None, :]  # cycles per pixel, >= 0
        ky, kx = omega * np.sin(theta), omega * np.cos(theta)
        # finufft's mode k sits at X = k + o with o = floor(n/2) - (n-1)/2.
        oy, ox = ny // 2 - (ny - 1) / 2, nx // 2 - (nx - 1) / 2
        phase = np.exp(-2j * np.pi * (kx * ox + ky * oy + omega * self.center))
        if self.response == "box":
            phase = phase * np.sinc(omega)
        # irfft counts interior frequencies twice (Hermitian pair); its adjoint needs c_k / L.
        herm = np.full(self.n_freq, 2.0)
        herm[0] = 1.0
        if self.n_pad % 2 == 0:
            herm[-1] = 1.0
        self._phase = xp.asarray(phase.astype(np.complex64))
        self._adj_phase = xp.asarray((np.conj(phase) * herm / self.n_pad).astype(np.complex64))
        px, py = (2 * np.pi * ky).ravel().astype(np.float32), (2 * np.pi * kx).ravel().astype(
            np.float32)
        self._pts = (xp.asarray(px), xp.asarray(py))
        # Two real slices travel as one complex image a + i b; splitting them
        # needs the spectrum at -k as well (Hermitian symmetry): twice the
        # points, half the FFTs per slice.
        self._pts2 = (xp.asarray(np.concatenate([px, -px])), xp.asarray(np.concatenate([py, -py])))
        self._geometry = (self.angles.tobytes(), self.n_pad)
        self.omega = omega[0]

    def _plan(self, kind: int, n_trans: int, packed: bool = False):
        isign = -1 if kind == 2 else 1
        pts = self._pts2 if packed else self._pts
        return cached_plan(self.xp, kind, self.shape, n_trans, self.eps, isign,
                           (*self._geometry, packed), *pts)

    def _batches(self, n_rows: int):
        """Row ranges of at most ``batch`` slices, two per host thread when the
        stack is small (load balance on a shared machine); pairs travel packed,
        so every range but a final single row is even."""
        step = self.batch
        if self._threads > 1:
            step = min(step, -(-n_rows // (2 * self._threads)))
        step = max(2, step + step % 2)
        out = []
        for s in range(0, n_rows, step):
            e = min(s + step, n_rows)
            if e - s > 1 and (e - s) % 2:
                out += [(s, e - 1), (e - 1, e)]
            else:
                out.append((s, e))
        return out

    def _spectra(self, vol, phase):
        """Polar spectra of real slices (b, ny, nx) times ``phase`` (n_angles,
        n_freq) -> (n_angles, b, n_freq) complex64."""
        xp = self.xp
        b = vol.shape[0]
        n_a, n_f = self.angles.size, self.n_freq
        if b == 1:
            c = self._plan(2, 1).execute(vol.astype(xp.complex64))
            return c.reshape(n_a, 1, n_f) * phase[:, None, :]
        h = b // 2
        m = n_a * n_f
        z = (vol[0::2] + 1j * vol[1::2]).astype(xp.complex64, copy=False)
        t = self._plan(2, h, packed=True).execute(z)  # (h, 2m): F(a + ib) at k, then -k
        tk = t[:, :m].reshape(h, n_a, n_f).transpose(1, 0, 2)
        tm = xp.conj(t[:, m:]).reshape(h, n_a, n_f).transpose(1, 0, 2)
        spec = xp.empty((n_a, b, n_f), dtype=xp.complex64)
        xp.add(tk, tm, out=spec[:, 0::2])  # 2 F(a)
        xp.subtract(tk, tm, out=spec[:, 1::2])  # 2i F(b)
        spec[:, 0::2] *= (0.5 * phase)[:, None, :]
        spec[:, 1::2] *= (-0.5j * phase)[:, None, :]
        return spec

    def _grid(self, spec, out):
        """Type-1 gridding of weighted spectra (n_angles, b, n_freq) into real
        slices ``out`` (b, ny, nx); the adjoint of :meth:`_spectra`. For
        ``b > 1`` the spectra must carry an extra factor 1/2 (see ``adjoint``)."""
        xp = self.xp
        n_a, b, n_f = spec.shape
        if b == 1:
            img = self._plan(1, 1).execute(xp.ascontiguousarray(spec.reshape(1, -1)))
            out[...] = img.real
            return out
        h = b // 2
        u, v = spec[:, 0::2], 1j * spec[:, 1::2]  # Hermitian halves of a and i b
        d = xp.empty((h, 2, n_a, n_f), dtype=xp.complex64)
        xp.add(u, v, out=d[:, 0].transpose(1, 0, 2))  # at k: a + ib
        xp.subtract(u, v, out=d[:, 1].transpose(1, 0, 2))
        xp.conj(d[:, 1], out=d[:, 1])  # at -k: conj(a - ib)
        img = self._plan(1, h, packed=True).execute(d.reshape(h, -1))
        out[0::2] = img.real
        out[1::2] = img.imag
        return out

    # ------------------------------------------------------------------ #
    def forward(self, volume, out=None, *, weights=None):
        """Project ``volume`` (n_rows, ny, nx) -> (n_angles, n_rows, n_cols) float32.

        ``weights`` (n_angles, n_freq), optional: real Fourier-space weights
        applied before the inverse detector FFT; ``forward(., weights=w)`` is
        the exact adjoint of ``adjoint(., weights=w)``.
        """
        xp = self.xp
        phase = self._phase if weights is None else self._phase * xp.asarray(
            weights, dtype=xp.float32)
        vol = xp.asarray(volume)
        if vol.ndim == 2:
            vol = vol[None]
        if vol.shape[1:] != self.shape:
            raise ValueError(f"forward: volume slices must be {self.shape} (ny, nx); "
                             f"got {vol.shape[1:]}")
        vol = vol.astype(xp.float32, copy=False)
        n_rows = vol.shape[0]
        if out is None:
            out = xp.empty((self.angles.size, n_rows, self.n_cols), dtype=xp.float32)

        def rows(s, e):  # bounded memory, each batch is one NUFFT
            spec = self._spectra(vol[s:e], phase)
            out[:, s:e] = irfft(xp, spec, self.n_pad)[..., :self.n_cols]

        self._run(rows, n_rows)
        return out

    def _run(self, fn, n_rows: int):
        run_batches(fn, self._batches(n_rows), parallel=self.xp is np)

    def adjoint(self, projections, out=None, *, weights=None, periodic: bool = False):
        """Back-project (n_angles, n_rows, n_cols) -> (n_rows, ny, nx) float32.

        Parameters
        ----------
        weights : array, shape (n_angles, n_freq) or (n_angles, 1), optional
            Real Fourier-space weights per angle and frequency ``self.omega``
            (e.g. angular quadrature weights for FBP). None: exact adjoint.
        periodic : bool
            ``projections`` already span the periodic window (last axis
            ``n_pad``, see :meth:`filter_detector`) instead of the detector.
        """
        xp = self.xp
        p = xp.asarray(projections)
        if p.ndim == 2:
            p = p[:, None]
        width = self.n_pad if periodic else self.n_cols
        if p.shape[0] != self.angles.size or p.shape[2] != width:
            raise ValueError(f"adjoint: projections must be ({self.angles.size}, n_rows, "
                             f"{width}); got {p.shape}")
        n_rows = p.shape[1]
        if out is None:
            out = xp.empty((n_rows, *self.shape), dtype=xp.float32)
        factor = self._adj_phase if weights is None else self._adj_phase * xp.asarray(
            weights, dtype=xp.float32)
        factor = factor[:, None, :]
        self._run(lambda s, e: self._adjoint_block(p[:, s:e], out[s:e], factor), n_rows)
        return out

    def _adjoint_block(self, p, out, factor):
        """Adjoint of one batch: p (n_angles, b, n_pad or n_cols) -> out (b, ny, nx)."""
        xp = self.xp
        spec = rfft(xp, p.astype(xp.float32, copy=False), self.n_pad)
        # Packed pairs split each Hermitian pair over +-k: half the weight each.
        spec *= factor if p.shape[1] == 1 else 0.5 * factor
        self._grid(spec.astype(xp.complex64, copy=False), out)

    def filter_detector(self, projections, weights, *, n_pad: int | None = None,
                        padding: str = "zero", periodic: bool = False):
        """Apply real Fourier weights along the padded detector (a 1-D convolution).

        Parameters
        ----------
        projections : array, shape (n_angles, n_rows, n_cols)
        weights : array, shape (n_angles, n_pad // 2 + 1) or (n_pad // 2 + 1,)
            Real weights on ``rfftfreq(n_pad)``.
        n_pad : int, optional
            FFT length, default ``self.n_pad``.
        padding : {"zero", "edge"}
        periodic : bool
            Return the filtered data on this operator's whole periodic window,
            shape (n_angles, n_rows, self.n_pad) (columns beyond the detector
            to the right, wrapped ones to the left at the end), for
            ``adjoint(..., periodic=True)``: keeps the filtered tails outside
            the detector, which carry the DC balance of FBP.

        Returns
        -------
        array, shape (n_angles, n_rows, n_cols), float32. With zero padding the
        map is symmetric: ``<filter(a), b> == <a, filter(b)>``.
        """
        xp = self.xp
        n_pad = self.n_pad if n_pad is None else int(n_pad)
        w = xp.asarray(weights, dtype=xp.float32)
        width = self.n_pad if periodic else self.n_cols
        if periodic and n_pad < self.n_pad:
            raise ValueError("filter: n_pad must be >= the operator's n_pad when periodic")
        if padding not in ("zero", "edge"):
            raise ValueError(f"filter: 'padding' must be 'zero' or 'edge'; got {padding!r}")
        w = w if w.ndim == 1 else w[:, None, :]
        out = xp.empty((*projections.shape[:2], width), dtype=xp.float32)
        self._run(lambda s, e: self._filter_block(projections[:, s:e], w, n_pad, padding,
                                                  periodic, out[:, s:e]), projections.shape[1])
        return out

    def _filter_block(self, sino, w, n_pad: int, padding: str, periodic: bool, out):
        """:meth:`filter_detector` of one (n_angles, b, n_cols) block into ``out``."""
        xp = self.xp
        sino = sino.astype(xp.float32, copy=False)
        if padding == "edge":
            sino = _edge_pad(xp, sino, n_pad)
        spec = rfft(xp, sino, n_pad)
        spec *= w
        full = irfft(xp, spec, n_pad)
        if periodic:
            right = self.n_cols + (self.n_pad - self.n_cols) // 2  # window columns [0, right)
            left = self.n_pad - right  # wrapped columns taken from the end
            out[..., :right] = full[..., :right]
            if left:
                out[..., right:] = full[..., n_pad - left:]
        else:
            out[...] = full[..., :self.n_cols]
        return out

    def norm(self, iterations: int = 12, seed: int = 0, *, weights=None) -> float:
        """Largest singular value of the single-slice operator (power iteration),
        optionally of the Fourier-weighted operator ``forward(., weights=w)``."""
        xp = self.xp
        x = xp.asarray(np.random.default_rng(seed).random((1, *self.shape), dtype=np.float32))
        s = 0.0
        for _ in range(iterations):
            x = self.adjoint(self.forward(x, weights=weights), weights=weights)
            s = float(xp.linalg.norm(x))
            x /= s
        return float(np.sqrt(s))


def _edge_pad(xp, sino, n_pad: int):
    """Extend (..., n_cols) to (..., n_pad): right half with the last column, the
    wrapped-around left half with the first (indices beyond n_cols are periodic)."""
    n = sino.shape[-1]
    extra = n_pad - n
    right = extra // 2
    out = xp.empty((*sino.shape[:-1], n_pad), dtype=sino.dtype)
    out[..., :n] = sino
    out[..., n:n + right] = sino[..., -1:]
    out[..., n + right:] = sino[..., :1]
    return out
