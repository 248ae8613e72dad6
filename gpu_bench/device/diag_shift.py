"""Where phase_correlate on cupy departs from numpy (tests/recon/prep/test_prep_backends.py
failed on the device, 2026-12-04: shifts ~0 instead of (0.3, -1.2)). Prints the largest
difference between the numpy and cupy results of each stage on the test's data."""

import numpy as np
from scipy.ndimage import gaussian_filter

from spectrotomo._backend import cupy_available
from spectrotomo.recon.prep import _shift as S


def main():
    if not cupy_available():
        print("no CUDA device: diag_shift skipped")
        return
    import cupy as cp

    rng = np.random.default_rng(0)
    stack = gaussian_filter(rng.uniform(0, 1, (12, 6, 40)), (0, 1, 2))
    d = np.array([[0.3, -1.2]] * 12)

    def diff(name, a, b):
        a = a.get() if hasattr(a, "get") else np.asarray(a)
        b = b.get() if hasattr(b, "get") else np.asarray(b)
        print(f"DIAG {name:<34} max|cupy - numpy| {np.max(np.abs(a - b)):.3e}  "
              f"(numpy max {np.max(np.abs(b)):.3e})")

    mn = S.fourier_shift(stack, d)
    mg = S.fourier_shift(cp.asarray(stack), d)
    diff("fourier_shift", mg, mn)
    print("DIAG phase_correlate numpy/numpy", S.phase_correlate(stack, mn)[:2].tolist())
    print("DIAG phase_correlate cupy/cupy  ", S.phase_correlate(cp.asarray(stack), mg)[:2].tolist())
    print("DIAG phase_correlate cupy, moved from numpy",
          S.phase_correlate(cp.asarray(stack), cp.asarray(mn))[:2].tolist())
    for xp, ref, mov in ((np, stack, mn), (cp, cp.asarray(stack), cp.asarray(mn))):
        sp_m, sp_r = S._spectrum(xp, mov), S._spectrum(xp, ref)
        cross = sp_m * xp.conj(sp_r)
        floor = 1e-12 * float(xp.abs(cross).max())
        w = cross / (xp.abs(cross) + floor)
        cc = xp.real(xp.fft.ifft2(w))
        flat = xp.argmax(cc.reshape(cc.shape[0], -1), axis=1)
        peaks = S._peaks(xp, cross, whiten=1.0, floor=floor, lowpass=None, max_shift=None,
                         upsample=1)
        up = S._upsampled_dft(xp, w, peaks, 20, 31)
        if xp is np:
            ref_stages = (sp_m, cross, w, cc, flat, peaks, up)
        else:
            for name, a, b in zip(("spectrum", "cross", "whitened", "cc", "argmax", "int peaks",
                                   "upsampled dft"), (sp_m, cross, w, cc, flat, peaks, up),
                                  ref_stages):
                diff(name, a, b)
            # the upsampled DFT by einsum instead of batched matmul
            b_, m, n = w.shape
            offs = (cp.arange(31) - 15) / 20
            fy = cp.asarray(np.fft.fftfreq(m) * m)
            fx = cp.asarray(np.fft.fftfreq(n) * n)
            ys = peaks[:, 0, None] + offs[None]
            xs = peaks[:, 1, None] + offs[None]
            ey = cp.exp(2j * np.pi * ys[:, :, None] * fy[None, None, :] / m)
            ex = cp.exp(2j * np.pi * fx[None, :, None] * xs[:, None, :] / n)
            diff("upsampled dft, einsum", cp.real(cp.einsum("bim,bmn,bnj->bij", ey, w, ex)),
                 ref_stages[-1])
            diff("upsampled dft, matmul of copies",
                 cp.real(cp.matmul(cp.matmul(cp.ascontiguousarray(ey), cp.ascontiguousarray(w)),
                                   cp.ascontiguousarray(ex))), ref_stages[-1])
            full = S._peaks(xp, cross, whiten=1.0, floor=floor, lowpass=None, max_shift=None,
                            upsample=20)
            print("DIAG _peaks cupy upsample 20", full[:2].get().tolist())


if __name__ == "__main__":
    main()
