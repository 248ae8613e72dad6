"""Energy registration: magnification / shift error and time, spectrotomo vs a peer.

Data: ``simulate.tilt_series`` of the small (64 px) or demo (128 px) particle
at one angle, 1.5 px RMS energy shifts, magnification drawn in 1 +- 1 %,
2e4 photons: the O, Mn, Co, Ni dual-energy pairs and the 25-energy Mn L3/L2
XANES scan, reference = the lowest energy. Compared in the same run on the
same arrays: ``register_energies`` with ``model="intensity"`` (one gain per
energy) and ``"auto"`` (depth-dependent gain below the particle outline where
significant), and scikit-image's Fourier-Mellin recipe (``warp_polar`` of the
|FFT| with log scaling + ``phase_cross_correlation``, then translation by
``phase_cross_correlation`` on the de-magnified image).

    python gpu_bench/register_bench.py --preset small --seeds 3 4 5
"""

from __future__ import annotations

import numpy as np

import harness

#: The 25 energies of ``simulate.sample``'s Mn L3/L2 XANES scan (eV), dense over the L3
#: white lines.
MN_L_XANES_EV = np.concatenate([[635.0, 636.5, 638.0], np.arange(639.0, 646.01, 0.5),
                                [647.0, 649.0, 651.0, 655.0, 658.0, 661.0, 665.0]])


def make_case(truth, energies, seed):
    from spectrotomo.recon.prep import normalize
    from spectrotomo.simulate import Imperfections, tilt_series

    ts = tilt_series(truth, energies=energies, angles=[20.0],
                     imperfections=Imperfections(energy_shift_px=1.5, magnification=0.01),
                     photons=2e4, seed=seed)
    od = np.stack([normalize(ts.projections.values[k], ts.flats.values[k],
                             ts.darks.values[k])[0][0] for k in range(len(energies))])
    d, s = ts.true_energy_shift.values, ts.true_scale.values
    rel = s / s[0]
    return od, d - rel[:, None] * d[0], rel


def skimage_register(od):
    """Fourier-Mellin scale + phase-correlation shift against image 0 (scikit-image)."""
    from scipy import ndimage
    from skimage.filters import window
    from skimage.registration import phase_cross_correlation
    from skimage.transform import warp_polar

    n, ny, nx = od.shape
    radius = min(ny, nx) // 2
    spec = [np.abs(np.fft.fftshift(np.fft.fft2(img * window("hann", img.shape)))) for img in od]
    polar = [warp_polar(s, radius=radius, output_shape=(360, 4 * radius), scaling="log")
             for s in spec]
    klog = 4 * radius / np.log(radius)
    scales, shifts = np.ones(n), np.zeros((n, 2))
    c = np.array([(ny - 1) / 2, (nx - 1) / 2])
    for e in range(1, n):  # the peer works pair by pair
        sh, _, _ = phase_cross_correlation(polar[0][:180], polar[e][:180], upsample_factor=40,
                                           normalization=None)
        scales[e] = np.exp(sh[1] / klog)
        s = scales[e]
        demag = ndimage.affine_transform(od[e], [s, s], offset=c - s * c, order=3, mode="nearest")
        d, _, _ = phase_cross_correlation(demag, od[0], upsample_factor=40, normalization=None)
        shifts[e] = d * s
    return scales, shifts


def main():
    from spectrotomo.recon.prep import register_energies
    from spectrotomo.simulate import particle
    from spectrotomo.spectra import EDGES

    ap = harness.parser(__doc__, quick={"seeds": [3]})
    ap.add_argument("--preset", default="small", choices=["small", "demo"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    args = ap.parse_args()
    harness.start(f"register_bench: energy registration, {args.preset}, seeds {args.seeds}")
    truth = particle(args.preset, seed=0)
    cases = [(f"{el} pair", [EDGES[el]["below"], EDGES[el]["above"]]) for el in ("O", "Mn", "Co", "Ni")]
    cases += [("shared 600-615", [600.0, 605.0, 610.0, 615.0]), ("Mn XANES 25", list(MN_L_XANES_EV))]
    tools = {
        "intensity": lambda od: register_energies(od, reference=0, model="intensity")[1],
        "auto": lambda od: register_energies(od, reference=0)[1],
        "skimage": skimage_register,
    }
    print(f"preset {args.preset}, seeds {args.seeds}; max |scale error| % (max |shift error| px;"
          " s per registration)")
    rows, notes = [], []
    for name, energies in cases:
        data = [make_case(truth, energies, seed) for seed in args.seeds]
        row = [name]
        for tool, fn in tools.items():
            err_s, err_d, t = [], [], 0.0
            for od, d, s in data:
                run = harness.once(lambda: fn(od))
                out, t = run.out, t + run.best
                sc, sh = (out.scales, out.shifts) if hasattr(out, "scales") else out
                err_s.append(np.abs(sc / s - 1) * 100)
                err_d.append(np.abs(sh - d).max())
            row.append(f"{np.max(err_s):.3f} ({max(err_d):.3f}; {t / len(data):.2f} s)")
            if len(energies) > 4:
                notes.append(f"{name}, {tool} per energy %: "
                             + " ".join(f"{v:.2f}" for v in np.max(err_s, axis=0)))
        rows.append(row)
    harness.print_table(["case", *tools], rows)
    print("\n".join(notes))

if __name__ == "__main__":
    main()
