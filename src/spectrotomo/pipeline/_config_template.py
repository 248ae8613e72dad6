"""The commented default configuration (TOML) that ``spectrotomo init`` writes."""

from __future__ import annotations

from pathlib import Path

TEMPLATE = '''\
# spectrotomo run configuration (TOML). Units: angles deg, energies eV, lengths nm
# unless a key name says otherwise (_m: metres, _gb: GiB).

[input]
path = "simulate:small"      # a beamline file (Data Exchange, NXtomo, txrm/xrm, TIFF sidecar,
                             # FXI HDF5), a list of files or a glob, one tilt series per
                             # energy (["tomo_525eV.txrm", ...] or "scan/tomo_*eV.h5"; formats
                             # may be mixed), or "simulate:<preset>" (tiny | small | demo), or
                             # "simulate-holo:<preset>" (hard X-ray holotomography, 17 keV)
angles = "same"              # same: every file has the same angles | common: keep the
                             # angles all files share (a file that lost a few projections)
xanes = ""                   # 2-D XANES energy scan(s) for the valence step: a file (Xradia
                             # energy scan, TIFF + sidecar, NXtomo, HDF5), a list or a glob
seed = 0                     # simulator seed (simulate: inputs only)
energies_ev = []             # override the files' energies (eV), one per file
# pixel_size_nm = 10.0       # override the file's pixel size (nm)
pixel_size_metadata = false  # simulate: inputs record the true pixel size per energy
# crop = {rows = [100, 900], columns = [50, 950]}  # detector pixels kept, stop exclusive
binning = 1                  # 1 | 2 | 4: average binning^2 pixels after the crop (projections,
                             # flats, darks; the pixel size grows by the factor)

[output]
store = "sample.zarr"        # one zarr v3 store per sample
overwrite = false            # replace finished results instead of refusing
figures = true               # report PNG figures (tables and summary are always written)
ome_zarr = false             # after the report, export maps and labels as OME-Zarr to
                             # <store>-ome/ (as `spectrotomo export STORE OUT` does)
ome_zarr_version = "0.5"     # 0.5 (zarr v3) | 0.4 (zarr v2, older viewers)

[preprocess]
flat_mode = "median"         # mean | median of several flats
rings = "blind"              # blind | offset | sorting | fourier-wavelet | none (before
                             # energy registration; the others reshape the particle's edges
                             # more, differently at each energy's sub-pixel position)
center = "auto"              # rotation-axis column (column i's centre at i), or "auto"
align = true                 # jitter correction by re-projection alignment
align_iterations = 4
register_energies = true     # translation + magnification across energies
magnification = "auto"       # auto: the per-energy pixel sizes the files recorded when present
                             # (exact), else estimated from the images (biased 0.1-0.3 % across
                             # the O/Mn edges by surface chemistry; on a XANES tomography under
                             # the linear law below) | metadata (required) |
                             # estimate | linear (estimated, constrained to a magnification
                             # linear in energy, as zone-plate optics give) | none (scale 1)

[phase]
method = "none"              # none | paganin | ctf (holotomography; a raw series with a
                             # distance dim retrieves phase even with "none": ctf if >1)
delta_beta = 100.0           # delta/beta ratio (Paganin, CTF low-frequency prior)
# energy_ev = 17000.0        # photon energy (eV) if the file lacks it
distances_m = []             # effective propagation distances (m); default: the file's
# pixel_size_m = 2.0e-8      # effective (sample-plane) pixel size (m); default: the file's
# Phase runs: the Paganin/CTF background varies per angle and biases the coarse jitter
# stage; set [preprocess] align = false unless the scan has jitter.

[reconstruct]
algorithm = "auto"           # auto | fbp | joint | sirt | cgls | tv. auto: FBP for scans of
                             # >= 170 deg, else joint (regularised, all energies at once:
                             # at -65..+65 deg amounts within 3 % instead of 25-30 % low
                             # with FBP, at ~6-12x FBP's CPU time)
# iterations = 100          # joint/sirt/cgls/tv: an integer >= 1 (default 5/100/20/100);
                             # above 10000 only sirt/cgls/tv with max_seconds
# max_seconds = 600.0        # joint/sirt/cgls/tv: wall-clock cap of each chunk's solve (s); an early
                             # stop is logged and kept in the recon group
filter = "ram-lak"           # ram-lak | shepp-logan | cosine | hamming | hann | parzen
nonneg = true
chunk_rows = 16              # detector rows per chunk (memory per worker scales with it; fewer where
                             # one chunk's solve would not fit [compute] memory_limit_gb)
xanes_components = 6         # joint solver, XANES tomography: spectral components kept per edge
                             # window (fit-then-reconstruct; >= the window's energies: all)

[spectra]
elements = ["O", "Mn", "Co", "Ni"]
references = "builtin"       # builtin (synthetic model spectra), or a CSV/text file: energy (eV)
                             # then one column per state named like Mn2+, Mn3+, O2- (element,
                             # valence); relative paths from the working directory
nonneg = true                # state weights >= 0
sum_to_one = false           # false: absolute fit (references = cross sections per atom, nm^2,
                             # plus a smooth background); true: edge-step normalize each element's
                             # window (spectra and references) and fit fractions summing to 1
energy_offset = "fit"        # eV by which the references are moved up to match the scan's energy
                             # scale, or "fit": per element window, the offset (+-1.5 eV) whose
                             # LCF fits best (a calibration difference of 0.3 eV moves the Mn
                             # valence by ~0.1); 0 uses the references as they are
# formula = "Li1.2Mn0.56Ni0.16Co0.08O2"  # sample formula; default from the input's metadata.
                             # Elements without an edge pair (Li) are counted at their ratio to O
                             # in the amounts (their cross section falls across every pair:
                             # neglected, Co reads 1.6 % low, Ni 0.8 %)

[segmentation]
# target_tm_o = 0.4          # target TM/O atomic ratio; default from the input's metadata
tolerance = 0.05             # relative band around the target (5 %)
smoothing_nm = 30.0          # Gaussian sigma (nm) averaging the TM and O amounts over the
                             # particle's solid before the class ratio (0: per voxel, noisy)
surface_layer_nm = 40.0      # within this depth (nm) average only along the surface, inside
                             # one-voxel depth layers, so thin surface layers stay resolved
layer_pooling = 0.6          # within surface_layer_nm, pull each voxel's TM/O this far towards
                             # its iso-depth layer's mean (whole particle): a skin thinner than
                             # the resolution stays classified where the missing wedge blurs it
                             # (0: off; measured: class agreement +0.01-0.03, gpu_bench/RESULTS.recon.md);
                             # grains reaching the surface keep 1 - pooling of their contrast
n_shells = 5                 # equal-volume shells from surface to centre
chunk = 128                  # segment/profile run block by block (voxels per edge; memory
                             # per worker ~ 100 bytes x (2 chunk)^3, whatever the volume)
depth_bins_nm = [0.0, 30.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 2500.0]

[compute]
scheduler = "threads"        # threads (this process), or a dask.distributed scheduler
                             # address ("tcp://host:8786"; workers must see the store path)
cluster = "none"             # none | local (LocalCluster) | slurm (dask-jobqueue) |
                             # cuda (dask-cuda, one worker per GPU); reconstruct and
                             # quantify then run one task per chunk on the workers
n_workers = 1                # workers of a local/slurm cluster
threads_per_worker = 1       # threads per worker (also each task's FFT threads)
memory_limit_gb = 8.0        # per worker (GiB); a run whose plan exceeds it refuses to
                             # start, and a local/slurm/cuda cluster's workers get it
device = "auto"              # reconstruction tasks on: auto (the GPU when cupy can use
                             # one, else CPU) | cpu | gpu (refused without a usable GPU)
'''


def write_template(path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the commented config template to ``path`` (refuses to overwrite)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists; pass overwrite=True to replace it")
    path.write_text(TEMPLATE)
    return path
