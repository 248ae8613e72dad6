"""Energy registration under a magnification law linear in energy (scale_model="linear").

Data: ``simulate.tilt_series`` of ``particle(preset, seed=0)`` over the 25-energy Mn L
XANES scan, one angle (20 deg), 1.5 px RMS energy shifts, 2e4 photons, magnification
``(1 + U(-rand, rand)) * (1 + per_ev * (E - E0))``; reference = the lowest energy.
Prints the max |scale error| (%) and |shift error| (px) of the free per-energy
estimates and of the fitted law, for seeds 3-5.

    python gpu_bench/diagnostics/register_law.py small 2e-4 0      # PRESET PER_EV RAND
"""
import numpy as np, sys
from spectrotomo.recon.prep import normalize, register_energies
from spectrotomo.simulate import Imperfections, particle, tilt_series
from spectrotomo.simulate._sample import XANES_ENERGIES
E = np.asarray(XANES_ENERGIES, float)
preset = sys.argv[1]; per_ev = float(sys.argv[2]); rand = float(sys.argv[3])
truth = particle(preset, seed=0)
for seed in (3, 4, 5):
    imp = Imperfections(energy_shift_px=1.5, magnification=rand, magnification_per_ev=per_ev)
    ts = tilt_series(truth, energies=E, angles=[20.0], imperfections=imp, photons=2e4, seed=seed)
    od = np.stack([normalize(ts.projections.values[k], ts.flats.values[k], ts.darks.values[k])[0][0] for k in range(E.size)])
    s = ts.true_scale.values; rel = s / s[0]
    d = ts.true_energy_shift.values; dt = d - rel[:, None] * d[0]
    out = []
    for law in ("free", "linear"):
        _, r = register_energies(od, reference=0, scale_model=law, energies=E)
        out.append(f"{law}: max scale err {100*np.abs(r.scales - rel).max():.3f} %  shift {np.abs(r.shifts - dt).max():.3f} px")
    print(preset, "seed", seed, "per_ev", per_ev, "rand", rand, "E range", E.min(), E.max(), "|", " | ".join(out))
