"""The commands of ``spectrotomo``: one function per command, called with the parsed arguments.

Thin wiring only: every command calls library functions with explicit arguments; the
work lives in :mod:`spectrotomo.simulate`, :mod:`spectrotomo.io` and
:mod:`spectrotomo.pipeline`, the options and help texts in
:mod:`spectrotomo.cli._parser`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ._parser import OVERRIDES, build_parser

__all__ = ["main", "build_parser"]

def _write_simulated(preset: str, seed: int, store: Path, overwrite: bool) -> None:
    from .. import io
    from ..pipeline.steps.acquire import simulate_preset, simulated_groups

    tree = simulate_preset(preset, seed=seed)
    groups = {group: tree[child].to_dataset(inherit=False)
              for child, group in simulated_groups(preset).items()}
    with io.store_lock(store):
        io.write_groups(store, groups, overwrite=overwrite)


def _info(store: Path, verify: bool = False) -> int:
    """Print the store summary (and the verification); 1 if anything is unfinished or
    damaged."""
    from .. import io

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
    from ..pipeline import Config, run_pipeline

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
    from ..pipeline import load_config

    overrides = {}
    for dest, key in OVERRIDES.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides[key] = value
    return load_config(args.config, overrides)


def cmd_check(args) -> int:
    from ..pipeline import check_inputs, format_check_report

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
    from ..pipeline import write_config

    args.config = _init_target(args)

    if not args.input and not args.xanes and args.template == "txm-dual-energy":
        from ..pipeline import write_template

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
    from ..pipeline import run_pipeline

    cfg = _config_from_args(args)
    rows = getattr(args, "rows", None)
    slice_row = getattr(args, "slice", None)
    if rows is not None or slice_row is not None:
        from ..pipeline import parse_rows, run_rows

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
    from ..pipeline import run_center

    cfg = _config_from_args(args)
    run_center(cfg, search=args.search, step=args.step_px, row=args.row, out_dir=args.out)
    return 0


def cmd_batch(args) -> int:
    from ..pipeline import run_batch

    result = run_batch(args.manifest, config=args.config, out_dir=args.out, workers=args.workers,
                       executor=_dask_client(args.scheduler), gpus=args.gpus,
                       dry_run=args.dry_run)
    return 1 if result["failed"] else 0


def cmd_export(args) -> int:
    from .. import io

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


#: sub-parser handler name (``_cli_parser``) -> command function.
_HANDLERS = {"simulate": cmd_simulate, "info": cmd_info, "demo": cmd_demo, "check": cmd_check,
             "init": cmd_init, "run": cmd_run, "center": cmd_center, "export": cmd_export,
             "batch": cmd_batch}


def _user_errors() -> tuple[type, ...]:
    """Exceptions that are a user's mistake (config, input, store state): exit 2."""
    from ..io import StoreCorruptError, StoreLockedError, StoreWriteError
    from ..pipeline import ConfigError, ManifestError, MemoryPlanError, WorkerLostError

    return (ConfigError, ManifestError, MemoryPlanError, WorkerLostError, StoreLockedError,
            StoreWriteError, StoreCorruptError, ValueError, KeyError, FileExistsError, FileNotFoundError,
            IsADirectoryError, NotADirectoryError, PermissionError)


def _error_message(command: str, exc: BaseException) -> tuple[str, int]:
    """(one clear message, exit status) for ``exc``: 2 for a user mistake (also a
    full, read-only or forbidden output: :class:`~spectrotomo.io.StoreWriteError`),
    1 for another system fault or an internal error."""
    from ..io import StoreWriteError

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
        return _HANDLERS[args.handler](args)
    except KeyboardInterrupt:
        print(f"spectrotomo {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        message, status = _error_message(args.command, exc)
        print(message, file=sys.stderr)
        return status

