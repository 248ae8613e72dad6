"""Peak memory and CPU of the report step vs volume size, at fixed store chunks.

Builds, from a finished store (default: the seed-0 demo, 128^3), copies whose volumes
are repeated ``f`` times along z, y and x (``--factors 1 2``: 128^3 and 256^3), with the
segmentation rechunked to ``--chunk``^3 voxels (the segment step's ``[segmentation]
chunk``) and the chemistry / reconstruction in the quantify / reconstruct steps' chunks
(``pipeline.steps._layout.volume_chunks``: one element / energy x 16 z rows x a y/x tile of
``--tile`` px, default the pipeline's; ``--cubic``: ``--chunk``^3 as well), the truth group removed (its errors hold whole volumes up to
``TRUTH_MAX_VOXELS``; measure them separately). Then runs the report step on each copy,
each in a fresh process (``report_ab.py``: ``run_pipeline(steps=["report"])`` on a copy), and prints the
step's record line (wall s, peak RSS, cpu/wall, runnable) per size.

Usage: python gpu_bench/diagnostics/report_scale.py [--store S] [--factors 1 2]
                                                    [--chunk 64] [--work DIR] [--tile PX]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

SPATIAL = ("z", "y", "x")
#: chunk of each volume's z rows (quantify / reconstruct tasks: chunk_rows = 16)
ROWS = 16


def _grow(src: Path, dst: Path, f: int, chunk: int, cubic: bool = False,
          tile: int | None = None) -> None:
    import zarr

    from spectrotomo.pipeline.steps._layout import volume_chunks

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("truth"))
    for group in ("segmentation", "chemistry", "recon"):
        g = zarr.open_group(dst / group, mode="r+", zarr_format=3)
        for name, arr in list(g.arrays()):
            dims = tuple(arr.metadata.dimension_names or ())
            data = arr[...]
            for axis, d in enumerate(dims):
                if d in SPATIAL:
                    data = np.repeat(data, f, axis=axis)
            if dims in (("z",), ("y",), ("x",)):  # coordinates: f x finer, same extent
                step = float(data[1] - data[0]) / f if data.size > f else 1.0
                data = (float(data[0]) + step * np.arange(data.size)).astype(arr.dtype)
            if cubic or group == "segmentation":
                chunks = tuple(chunk if d in SPATIAL else n for d, n in zip(dims, data.shape))
            else:  # the pipeline's own layout of the volume groups
                chunks = volume_chunks(dims, data.shape, ROWS, tile=tile)
            attrs = dict(arr.attrs)
            g.create_array(name, shape=data.shape, dtype=arr.dtype, chunks=chunks,
                           dimension_names=dims, fill_value=arr.fill_value,
                           attributes=attrs, overwrite=True)
            g[name][...] = data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", default="/tmp/s4/demo0/sample.zarr")
    ap.add_argument("--factors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--work", default="/tmp/report-scale")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--cubic", action="store_true",
                    help="chemistry and reconstruction in --chunk^3 chunks too (fixed chunk "
                         "size; the pipeline writes them in 16 z rows x the whole plane)")
    ap.add_argument("--tile", type=int, default=None,
                    help="y/x tile of the volume groups' chunks (default: the pipeline's)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for f in args.factors:
        tag = "-cubic" if args.cubic else f"-tile{args.tile}" if args.tile else ""
        built = work / f"x{f}{tag}.zarr"
        if not (built / "zarr.json").exists():
            _grow(Path(args.store), built, f, args.chunk, args.cubic, args.tile)
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, str(Path(__file__).with_name("report_ab.py")),
                                  str(built), str(work / f"run-x{f}.zarr"), "1"],
                                 capture_output=True, text=True)
            lines = [ln for ln in out.stdout.splitlines() if " wall " in ln]
            print(f"x{f} ({128 * f}^3 from the demo):", lines[-1] if lines else out.stderr[-2000:],
                  flush=True)


if __name__ == "__main__":
    main()
