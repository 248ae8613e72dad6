"""Command line: ``spectrotomo {simulate,info,demo,check,init,run,center,<step>,export,batch}``.

Thin wiring only: every command calls library functions with explicit
arguments; the work lives in :mod:`spectrotomo.simulate` and
:mod:`spectrotomo.io`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

_PRESET_HELP = ("simulator preset: 'small' (<= 64^3 voxels, seconds; for tests) or "
                "'demo' (128^3 voxels); voxel size 10-25 nm, energies in eV around the "
                "O K, Mn/Co/Ni L3 edges, angles -65..+65 deg; 'xanes3d' ('xanes3d-tiny'): "
                "a XANES tomography, 25 Mn L energies at every angle (default: %(default)s)")


def _write_simulated(preset: str, seed: int, store: Path, overwrite: bool) -> None:
    from . import io
    from .pipeline.steps.acquire import simulate_preset, simulated_groups

    tree = simulate_preset(preset, seed=seed)
    groups = {group: tree[child].to_dataset(inherit=False)
              for child, group in simulated_groups(preset).items()}
    with io.store_lock(store):
        io.write_groups(store, groups, overwrite=overwrite)


def _info(store: Path, verify: bool = False) -> int:
    """Print the store summary (and the verification); 1 if anything is unfinished or
    damaged."""
    from . import io

    description = io.describe_store(store)
    print(io.format_store(description))
    ok = description["complete"]
    if verify:
        report = io.verify_store(store)
        print(report.format())
        ok = ok and report.ok
    return 0 if ok else 1


def cmd_simulate(args) -> int:
    _write_simulated(args.preset, args.seed, args.out, args.overwrite)
    print(f"wrote simulated sample (preset {args.preset!r}, seed {args.seed}) to {args.out}")
    return _info(args.out)


def cmd_info(args) -> int:
    return _info(args.store, verify=args.verify)


def cmd_demo(args) -> int:
    from .pipeline import Config, run_pipeline

    args.out_dir.mkdir(parents=True, exist_ok=True)
    cfg = Config()
    cfg.input.path = f"simulate:{args.preset}"
    cfg.input.seed = args.seed
    cfg.output.store = str(args.out_dir / "sample.zarr")
    cfg.output.overwrite = args.overwrite
    result = run_pipeline(cfg, report_dir=args.out_dir / "report")
    _print_errors(result.get("summary", {}).get("errors_vs_truth", {}))
    print(f"demo: store {cfg.output.store}, report {args.out_dir / 'report'}")
    return 0


def _print_errors(errors: dict) -> None:
    if not errors:
        return
    print("errors against ground truth:")
    for key, value in errors.items():
        if isinstance(value, dict):
            print(f"  {key:<26} " + ", ".join(f"{k} {v:.4g}" for k, v in value.items()))
        else:
            print(f"  {key:<26} {value if value is None else f'{value:.4g}'}")


def _config_from_args(args):
    from .pipeline import load_config

    overrides = {}
    for dest, key in _OVERRIDES.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides[key] = value
    return load_config(args.config, overrides)


def cmd_check(args) -> int:
    from .pipeline import check_inputs, format_check_report

    reports = check_inputs(args.files, angles=args.angles)
    print(format_check_report(reports))
    return 1 if any(r.errors for r in reports) else 0


_CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")


def _init_target(args) -> Path:
    """CONFIG of ``init``: ``--input a.h5 b.h5 run.toml`` lets the file list swallow
    CONFIG (argparse does not backtrack), so a trailing config name is taken back."""
    if args.config is not None:
        return args.config
    for key in ("xanes", "input"):
        items = getattr(args, key)
        if items and items[-1].endswith(_CONFIG_SUFFIXES):
            return Path(items.pop())
    raise ValueError("CONFIG is required: the config file to create (.toml), e.g. "
                     "spectrotomo init --input scan/*.h5 run.toml")


def cmd_init(args) -> int:
    from .pipeline import write_config

    args.config = _init_target(args)

    if not args.input and not args.xanes and args.template == "txm-dual-energy":
        from .pipeline import write_template

        path = write_template(args.config, overwrite=args.overwrite)
        print(f"wrote config template {path}; edit it, then: spectrotomo run {path}")
        return 0
    path, reports = write_config(args.config, args.template, inputs=args.input or (),
                                 xanes=args.xanes or (), overwrite=args.overwrite)
    problems = [e for r in reports for e in r.errors]
    for message in problems:
        print(f"warning: {message}", file=sys.stderr)
    print(f"wrote {args.template} config {path} for {len(args.input or ())} input(s); check "
          f"it (spectrotomo check FILE... describes the files), then: spectrotomo run {path}")
    return 1 if problems else 0


def cmd_run(args) -> int:
    from .pipeline import run_pipeline

    cfg = _config_from_args(args)
    rows = getattr(args, "rows", None)
    slice_row = getattr(args, "slice", None)
    if rows is not None or slice_row is not None:
        from .pipeline import parse_rows, run_rows

        if args.dry_run:
            raise ValueError("--rows/--slice and --dry-run: plan the full run without --rows")
        result = run_rows(cfg, parse_rows(rows, slice_row=slice_row), report_dir=args.report_dir)
        print(f"preview store {result['preview_store']} (the main store holds only the "
              "full-field acquire and preprocess)")
        return 0
    steps = [args.step] if getattr(args, "step", None) else None
    result = run_pipeline(cfg, steps=steps, dry_run=args.dry_run, report_dir=args.report_dir)
    _print_errors(result.get("summary", {}).get("errors_vs_truth", {}))
    return 0


def cmd_center(args) -> int:
    from .pipeline import run_center

    cfg = _config_from_args(args)
    run_center(cfg, search=args.search, step=args.step_px, row=args.row, out_dir=args.out)
    return 0


def cmd_batch(args) -> int:
    from .pipeline import run_batch

    result = run_batch(args.manifest, config=args.config, out_dir=args.out, workers=args.workers,
                       executor=_dask_client(args.scheduler), gpus=args.gpus,
                       dry_run=args.dry_run)
    return 1 if result["failed"] else 0


def cmd_export(args) -> int:
    from . import io

    written = io.export_store(args.store, args.out, format=args.format, groups=args.groups,
                              version=args.ome_version, overwrite=args.overwrite)
    for entry in written:
        print(f"{entry['kind']:<7} {entry['group']}/{entry['variable']:<24} "
              f"{'x'.join(map(str, entry['shape'])):<14} {entry['path']}")
    print(f"export: {len(written)} files in {args.out} (index: {args.out / 'index.json'})")
    return 0


def _dask_client(address):
    if not address:
        return None
    from distributed import Client

    return Client(address)


#: CLI option dest -> config "section.key" (CLI options override the config file).
_OVERRIDES = {"store": "output.store", "algorithm": "reconstruct.algorithm",
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
    from . import __version__

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
    p.set_defaults(func=cmd_simulate)

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
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", parents=[debug], help="run the demo into OUT_DIR",
                       description="Simulate the demo particle, store it in "
                       "OUT_DIR/sample.zarr and print a summary.")
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="output directory")
    p.add_argument("--preset", default="demo", help=_PRESET_HELP)
    p.add_argument("--seed", type=int, default=0,
                   help="random seed (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace results already in OUT_DIR")
    p.set_defaults(func=cmd_demo)


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
    p.set_defaults(func=cmd_check)

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
    p.set_defaults(func=cmd_init)


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
    p.set_defaults(func=cmd_run, step=None)

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
    p.set_defaults(func=cmd_center, step=None)
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
        p.set_defaults(func=cmd_run, step="valence" if step == "fit" else step)


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
    p.set_defaults(func=cmd_export)


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
    p.set_defaults(func=cmd_batch)


def _user_errors() -> tuple[type, ...]:
    """Exceptions that are a user's mistake (config, input, store state): exit 2."""
    from .io import StoreCorruptError, StoreLockedError, StoreWriteError
    from .pipeline import ConfigError, ManifestError, MemoryPlanError, WorkerLostError

    return (ConfigError, ManifestError, MemoryPlanError, WorkerLostError, StoreLockedError,
            StoreWriteError, StoreCorruptError, ValueError, KeyError, FileExistsError, FileNotFoundError,
            IsADirectoryError, NotADirectoryError, PermissionError)


def _error_message(command: str, exc: BaseException) -> tuple[str, int]:
    """(one clear message, exit status) for ``exc``: 2 for a user mistake (also a
    full, read-only or forbidden output: :class:`~spectrotomo.io.StoreWriteError`),
    1 for another system fault or an internal error."""
    from .io import StoreWriteError

    if isinstance(exc, OSError) and not isinstance(exc, StoreWriteError):
        # disk full / read-only outside the store (run.log, report): explained
        exc = StoreWriteError.from_os_error(exc, exc.filename or Path.cwd(), "output") or exc
    if isinstance(exc, _user_errors()):
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        if type(exc) in (FileNotFoundError, FileExistsError, IsADirectoryError,
                         NotADirectoryError, PermissionError) and exc.filename and exc.strerror:
            # "path: reason", not "[Errno 2] reason: 'path'"
            message = f"{exc.filename}: {exc.strerror}"
        return f"spectrotomo {command}: error: {message}", 2
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"spectrotomo {command}: error: {where}{exc.strerror or exc}", 1
    return (f"spectrotomo {command}: internal error: {type(exc).__name__}: {exc}\n"
            f"  rerun with --debug for the traceback (and report it)", 1)


def main(argv=None) -> int:
    """Entry point of the ``spectrotomo`` command; returns the exit status.

    A user mistake (invalid config or input, a locked or damaged store, a full or
    read-only output, a memory plan over the limit) prints one message and exits
    2; another system fault (OSError) or an internal error exits 1; ``--debug``
    shows the traceback instead.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"spectrotomo {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        message, status = _error_message(args.command, exc)
        print(message, file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
