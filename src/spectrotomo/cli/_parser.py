"""The ``spectrotomo`` command line's arguments: one sub-parser per command.

Each sub-parser names its handler (``handler="run"``); :mod:`spectrotomo.cli._commands` maps
the name to the function, so this module holds only the interface (options, help, units).
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["build_parser", "OVERRIDES"]

_PRESET_HELP = ("simulator preset: 'small' (<= 64^3 voxels, seconds; for tests) or "
                "'demo' (128^3 voxels); voxel size 10-25 nm, energies in eV around the "
                "O K, Mn/Co/Ni L3 edges, angles -65..+65 deg; 'xanes3d' ('xanes3d-tiny'): "
                "a XANES tomography, 25 Mn L energies at every angle (default: %(default)s)")


#: CLI option dest -> config "section.key" (CLI options override the config file).
OVERRIDES = {"store": "output.store", "algorithm": "reconstruct.algorithm",
              "iterations": "reconstruct.iterations", "center": "preprocess.center",
              "chunk_rows": "reconstruct.chunk_rows", "memory_limit_gb": "compute.memory_limit_gb",
              "tolerance": "segmentation.tolerance", "target_tm_o": "segmentation.target_tm_o",
              "overwrite": "output.overwrite", "scheduler": "compute.scheduler",
              "cluster": "compute.cluster", "n_workers": "compute.n_workers",
              "threads_per_worker": "compute.threads_per_worker", "device": "compute.device"}


def _add_run_options(p) -> None:
    p.add_argument("config", type=Path, metavar="CONFIG", help="run configuration (TOML or YAML)")
    p.add_argument("--store", help="sample store (.zarr); overrides [output] store")
    p.add_argument("--algorithm", choices=("auto", "fbp", "joint", "sirt", "cgls", "tv"),
                   help="reconstruction algorithm; overrides [reconstruct] algorithm")
    p.add_argument("--iterations", type=int, help="iterations of sirt/cgls/tv")
    p.add_argument("--center", type=float,
                   help="rotation-axis column (pixels; column i's centre at i); default auto")
    p.add_argument("--chunk-rows", type=int, help="detector rows per reconstruction chunk")
    p.add_argument("--memory-limit-gb", type=float,
                   help="per-worker memory limit in GiB; a larger plan refuses to start")
    p.add_argument("--tolerance", type=float,
                   help="relative composition tolerance (0.05 = 5 %%)")
    p.add_argument("--target-tm-o", type=float, help="target TM/O atomic ratio (dimensionless)")
    p.add_argument("--overwrite", action="store_const", const=True,
                   help="recompute steps whose results are already complete")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="dask.distributed scheduler address (tcp://host:8786): reconstruct and "
                   "quantify run one task per chunk there (workers must see the store path)")
    p.add_argument("--cluster", choices=("none", "local", "slurm", "cuda"),
                   help="start a dask cluster for the chunk tasks: local processes, SLURM jobs "
                   "(dask-jobqueue) or one worker per GPU (dask-cuda); overrides [compute]")
    p.add_argument("--n-workers", type=int, help="workers of a local/slurm cluster (count)")
    p.add_argument("--threads-per-worker", type=int,
                   help="threads per worker, also each task's FFT threads (count)")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"),
                   help="where reconstruction tasks run: auto (a usable GPU, else CPU), cpu, gpu")
    p.add_argument("--dry-run", action="store_true",
                   help="print the memory plan (GiB per worker and GPU, output size) and stop")
    p.add_argument("--report-dir", type=Path, help="directory of figures and summary tables")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spectrotomo",
        description="Spectro-tomography of battery cathode particles: simulate, store and "
                    "inspect samples (one zarr v3 store per sample). Units: angles in deg, "
                    "energies in eV, lengths in nm.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"spectrotomo {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error instead of one message")
    debug = argparse.ArgumentParser(add_help=False)  # also accepted after the command
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the Python traceback of an error instead of one message")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for add in (_add_store_commands, _add_input_commands, _add_run_commands,
                _add_export_command, _add_batch_command):
        add(sub, debug)
    return parser


def _add_store_commands(sub, debug) -> None:
    """simulate, info, demo."""
    p = sub.add_parser("simulate", parents=[debug],
                       help="simulate a particle and its measurements into a store",
                       description="Simulate a ground-truth particle, its dual-energy tilt "
                       "series (-65..+65 deg), a 2D Mn L XANES scan and model reference "
                       "spectra, and write them to groups truth, raw, raw_xanes and "
                       "references of OUT.zarr.")
    p.add_argument("out", type=Path, metavar="OUT.zarr", help="sample store to create")
    p.add_argument("--preset", default="small", help=_PRESET_HELP)
    p.add_argument("--seed", type=int, default=0,
                   help="random seed; the same seed gives identical data (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace groups that already exist in the store")
    p.set_defaults(handler="simulate")

    p = sub.add_parser("info", parents=[debug], help="summarise a sample store",
                       description="List the groups of a store with their variables "
                       "(dims, shapes, dtypes, units), completion state and provenance "
                       "steps, and the pipeline steps the store was planned with. Exit "
                       "status 1 if any group or planned step is unfinished (or, with "
                       "--verify, any chunk is missing or corrupt).")
    p.add_argument("store", type=Path, metavar="STORE", help="sample store (.zarr directory)")
    p.add_argument("--verify", action="store_true",
                   help="read every chunk and check its CRC-32C checksum and that no chunk "
                   "is missing; name each damaged chunk (group/array chunk key)")
    p.set_defaults(handler="info")

    p = sub.add_parser("demo", parents=[debug], help="run the demo into OUT_DIR",
                       description="Simulate the demo particle, store it in "
                       "OUT_DIR/sample.zarr and print a summary.")
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="output directory")
    p.add_argument("--preset", default="demo", help=_PRESET_HELP)
    p.add_argument("--seed", type=int, default=0,
                   help="random seed (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace results already in OUT_DIR")
    p.set_defaults(handler="demo")


def _add_input_commands(sub, debug) -> None:
    """check, init: what the input files hold, and a config from them."""
    p = sub.add_parser("check", parents=[debug],
                       help="describe input files as a run would read them",
                       description="Read each file (lazily) and print its format, energies "
                       "(eV), angles (range, step, count in deg), flats/darks counts, frame "
                       "size and pixel sizes (nm), with warnings; several files are also "
                       "combined as one tilt series per energy, as a run would. Exit status "
                       "1 if a file cannot be read or the files do not combine.")
    p.add_argument("files", nargs="+", metavar="FILE", help="input files or glob patterns")
    p.add_argument("--angles", choices=("same", "common"), default="same",
                   help="as [input] angles: files must share their angles (same) or keep the "
                   "angles all files have (common) (default: %(default)s)")
    p.set_defaults(handler="check")

    p = sub.add_parser("init", parents=[debug], help="write a commented config template",
                       description="Write a commented TOML run configuration to CONFIG; "
                       "with --input, pre-filled from the files (paths, energies, angles, "
                       "pixel size in comments; the store named after CONFIG) for the "
                       "experiment type of --template. Exit status 1 if the files do not "
                       "combine (the config is still written).")
    p.add_argument("config", type=Path, metavar="CONFIG", nargs="?",
                   help="file to create (.toml)")
    p.add_argument("--input", nargs="+", metavar="FILE",
                   help="tilt-series files or glob patterns (one per energy, or per distance "
                   "for holo)")
    p.add_argument("--xanes", nargs="+", metavar="FILE",
                   help="2-D XANES energy scan file(s) or a glob, for the valence step")
    p.add_argument("--template", default="txm-dual-energy",
                   choices=("txm-dual-energy", "xanes2d", "xanes3d", "holo"),
                   help="experiment type (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(handler="init")


def _add_run_commands(sub, debug) -> None:
    """run, center and one command per step."""
    p = sub.add_parser("run", parents=[debug], help="run the whole pipeline from a config",
                       description="read -> normalize/register/centre/align -> reconstruct -> "
                       "element amounts -> valence (LCF) -> segmentation -> profiles -> report, "
                       "into one store; completed steps are skipped, so rerunning resumes.")
    _add_run_options(p)
    rows = p.add_mutually_exclusive_group()
    rows.add_argument("--rows", metavar="A:B",
                      help="fast look: reconstruct only detector rows A..B-1 (after crop and "
                      "binning) into <store>-rowsA-B.zarr and its report; acquire and "
                      "preprocess still run on the whole field, into the main store")
    rows.add_argument("--slice", type=int, metavar="N", help="fast look at one row: --rows N:N+1")
    p.set_defaults(handler="run", step=None)

    p = sub.add_parser("center", parents=[debug],
                       help="rotation-centre try-stack (one slice per candidate)",
                       description="Run acquire and preprocess if needed, then reconstruct "
                       "one detector row (energies averaged) at every candidate rotation-axis "
                       "column around the preprocess step's centre (auto or [preprocess] "
                       "center) and write a TIFF stack and a PNG montage labelled with the "
                       "centre, like tomocupy's try mode. Set the sharpest one as "
                       "[preprocess] center.")
    _add_run_options(p)
    p.add_argument("--search", type=float, default=5.0,
                   help="half-width of the search, pixels (default: %(default)s)")
    p.add_argument("--step", dest="step_px", type=float, default=0.5,
                   help="distance between candidates, pixels (default: %(default)s)")
    p.add_argument("--row", type=int,
                   help="detector row (default: the row of largest optical density)")
    p.add_argument("--out", type=Path,
                   help="output folder (default: <store stem>-report/center)")
    p.set_defaults(handler="center", step=None)
    for step, text in (("preprocess", "normalize, de-ring, register energies, centre, align"),
                       ("reconstruct", "reconstruct every energy (resumable per chunk)"),
                       ("quantify", "element amounts (atoms/nm^3) and TM/O per voxel"),
                       ("fit", "LCF of the XANES scan into valence maps"),
                       ("valence3d", "LCF of every voxel of a XANES tomography (an energy scan "
                        "at every angle) into 3D valence maps"),
                       ("segment", "particle mask, composition classes, shells, depth, pores"),
                       ("profile", "TM/O and element amounts (or electron density) per shell, "
                        "depth bin (nm) and class into the profiles group"),
                       ("report", "figures, profile tables and summary of a finished store")):
        p = sub.add_parser(step, parents=[debug], help=text,
                           description=f"One step on an existing store: {text}.")
        _add_run_options(p)
        p.set_defaults(handler="run", step="valence" if step == "fit" else step)


def _add_export_command(sub, debug) -> None:
    p = sub.add_parser("export", parents=[debug],
                       help="write a store's maps and labels as OME-Zarr or TIFF",
                       description="Write every map and volume of STORE (float variables; "
                       "a leading energy/element dim becomes the channel axis) as an "
                       "image, and every integer/boolean volume (classes, shells, pores, "
                       "cracks, mask) as a label image, to OUT/<group>/<variable>.ome.zarr "
                       "(OME-Zarr 0.5, or 0.4; labels under the group's TM/O image; opens in "
                       "napari with napari-ome-zarr) or OUT/<group>/<variable>.tif (ImageJ "
                       "hyperstacks with the voxel size in nm). Display windows: 1st-99th "
                       "percentile inside the particle. Lists the files in OUT/index.json.")
    p.add_argument("store", type=Path, metavar="STORE", help="sample store (.zarr directory)")
    p.add_argument("out", type=Path, metavar="OUT", help="output directory")
    p.add_argument("--format", choices=("ome-zarr", "tiff"), default="ome-zarr",
                   help="output format (default: %(default)s)")
    p.add_argument("--groups", nargs="+", metavar="GROUP",
                   help="groups to export (default: every complete group but raw, "
                   "raw_xanes, od and references)")
    p.add_argument("--ome-version", choices=("0.5", "0.4"), default="0.5",
                   help="OME-Zarr version: 0.5 (zarr v3) or 0.4 (zarr v2, older viewers) "
                   "(default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace files already in OUT")
    p.set_defaults(handler="export")


def _add_batch_command(sub, debug) -> None:
    p = sub.add_parser("batch", parents=[debug],
                       help="run the pipeline for every scan of a manifest",
                       description="Run the whole pipeline for every scan listed in MANIFEST "
                       "(TOML, YAML or CSV: input, label and free labels such as voltage_v, "
                       "state_of_charge, c_rate, cycle; per-scan config overrides), each into "
                       "OUT/<label>.zarr with its report in OUT/<label>-report, concurrently; "
                       "complete scans are skipped and unfinished ones resumed. Writes "
                       "OUT/batch_summary.csv/.nc, OUT/figures/*.png and OUT/batch.log. Exit "
                       "status 1 if any scan failed.")
    p.add_argument("manifest", type=Path, metavar="MANIFEST", help="batch manifest "
                   "(.toml, .yaml/.yml or .csv)")
    p.add_argument("--config", type=Path, help="shared run configuration (TOML or YAML); "
                   "default the manifest's 'config', else the defaults")
    p.add_argument("--out", type=Path, help="output directory; default the manifest's "
                   "'out_dir', else <manifest stem>_batch beside the manifest")
    p.add_argument("--workers", type=int, default=1,
                   help="scans run at once in a local process pool (default: %(default)s)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="dask.distributed scheduler address (e.g. tcp://host:8786): one task "
                   "per scan; workers started with --resources GPU=1 get one scan per GPU")
    p.add_argument("--gpus", type=int, help="GPUs to share, one scan per GPU at a time "
                   "(default: every GPU cupy sees; 0 disables the limit)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the scans and their state (complete / partial / failed / new) "
                   "and stop")
    p.set_defaults(handler="batch")
