"""Command line: ``spectrotomo {simulate,info,demo}``.

Thin wiring only: every command calls library functions with explicit
arguments; the work lives in :mod:`spectrotomo.simulate` and
:mod:`spectrotomo.io`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

#: Children of ``simulate.sample()`` -> groups of the sample store.
SIMULATED_GROUPS = {"truth": "truth", "tilt_series": "raw", "xanes": "raw_xanes",
                    "references": "references"}

_PRESET_HELP = ("simulator preset: 'small' (<= 64^3 voxels, seconds; for tests) or "
                "'demo' (128^3 voxels); voxel size 10-25 nm, energies in eV around the "
                "O K, Mn/Co/Ni L3 edges, angles -65..+65 deg (default: %(default)s)")


def _write_simulated(preset: str, seed: int, store: Path, overwrite: bool) -> None:
    from . import io
    from .simulate import sample

    tree = sample(preset, seed=seed)
    groups = {group: tree[child].to_dataset(inherit=False)
              for child, group in SIMULATED_GROUPS.items()}
    with io.store_lock(store):
        io.write_groups(store, groups, overwrite=overwrite)


def _info(store: Path) -> int:
    from . import io

    description = io.describe_store(store)
    print(io.format_store(description))
    unfinished = [g for g in description["groups"] if g["state"] not in ("complete", "container")]
    return 1 if unfinished else 0


def cmd_simulate(args) -> int:
    _write_simulated(args.preset, args.seed, args.out, args.overwrite)
    print(f"wrote simulated sample (preset {args.preset!r}, seed {args.seed}) to {args.out}")
    return _info(args.out)


def cmd_info(args) -> int:
    return _info(args.store)


def cmd_demo(args) -> int:
    args.out_dir.mkdir(parents=True, exist_ok=True)
    store = args.out_dir / "sample.zarr"
    _write_simulated(args.preset, args.seed, store, args.overwrite)
    print(f"demo: simulated sample (preset {args.preset!r}, seed {args.seed}) in {store}")
    return _info(store)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spectrotomo",
        description="Spectro-tomography of battery cathode particles: simulate, store and "
                    "inspect samples (one zarr v3 store per sample). Units: angles in deg, "
                    "energies in eV, lengths in nm.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"spectrotomo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="simulate a particle and its measurements into a store",
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

    p = sub.add_parser("info", help="summarise a sample store",
                       description="List the groups of a store with their variables "
                       "(dims, shapes, dtypes, units), completion state and provenance "
                       "steps. Exit status 1 if any group is unfinished.")
    p.add_argument("store", type=Path, metavar="STORE", help="sample store (.zarr directory)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="run the demo into OUT_DIR",
                       description="Simulate the demo particle, store it in "
                       "OUT_DIR/sample.zarr and print a summary.")
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="output directory")
    p.add_argument("--preset", default="demo", help=_PRESET_HELP)
    p.add_argument("--seed", type=int, default=0,
                   help="random seed (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace results already in OUT_DIR")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``spectrotomo`` command; returns the exit status."""
    from .io import StoreLockedError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, FileExistsError, FileNotFoundError, StoreLockedError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"spectrotomo {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
