"""Fast looks before a full run: a row range reconstructed into a preview store,
and a centre try-stack (one slice per candidate rotation-axis column).

Both first run ``acquire`` and ``preprocess`` on the whole field into the main
store (complete, reusable by the full run: the centre and the jitter need every
row); only the later steps are restricted. A preview never writes ``recon`` or
later groups into the main store, so the main store is never marked complete
with part of its rows.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import numpy as np

from .. import io
from ._config import Config
from ._run import ALL_STEPS, run

__all__ = ["parse_rows", "preview_paths", "run_rows", "center_candidates", "try_centers",
           "write_try_stack"]

#: Steps that need every row; a preview runs them on the main store.
_FULL_FIELD = ("acquire", "preprocess")


def parse_rows(text: str | None = None, *, slice_row: int | None = None) -> tuple[int, int]:
    """``"a:b"`` (stop exclusive) or one row ``slice_row`` -> ``(a, b)``.

    Raises ValueError naming ``--rows``/``--slice`` when malformed.
    """
    if slice_row is not None:
        if slice_row < 0:
            raise ValueError(f"--slice must be a detector row >= 0; got {slice_row}")
        return slice_row, slice_row + 1
    try:
        a, b = (int(v) for v in str(text).split(":"))
    except ValueError:
        raise ValueError(f"--rows must be START:STOP detector rows (stop exclusive), e.g. "
                         f"100:132; got {text!r}") from None
    if not 0 <= a < b:
        raise ValueError(f"--rows {text}: need 0 <= START < STOP")
    return a, b


def preview_paths(config: Config, rows: tuple[int, int],
                  report_dir: str | Path | None = None) -> tuple[Path, Path]:
    """(preview store, its report folder): ``<store stem>-rows<a>-<b>.zarr`` beside the
    store and ``<that stem>-report`` (or ``report_dir``)."""
    store = Path(config.output.store)
    stem = f"{store.with_suffix('').name}-rows{rows[0]}-{rows[1]}"
    preview = store.with_name(stem + ".zarr")
    return preview, Path(report_dir) if report_dir else preview.with_name(stem + "-report")


def _check_rows(rows: tuple[int, int], ny: int) -> None:
    if rows[1] > ny:
        raise ValueError(f"rows {rows[0]}:{rows[1]} exceed the {ny} detector rows of the "
                         "preprocessed series (after [input] crop/binning)")


def run_rows(config: Config, rows: tuple[int, int], *, report_dir: str | Path | None = None,
             log: Callable[[str], None] = print) -> dict:
    """Reconstruct (and quantify, fit, segment, report) only detector rows ``rows``.

    ``acquire`` and ``preprocess`` run on the main store (whole field); rows
    ``[a, b)`` of its ``od`` go to a separate preview store (see
    :func:`preview_paths`), recomputed on every call, where the later steps
    run. Segmentation depths and shells of a thin slab are those of the slab.

    Returns what :func:`spectrotomo.pipeline.run_pipeline` returns for the preview,
    plus ``"preview_store"``.
    """
    run(config, steps=list(_FULL_FIELD), log=log)
    store = Path(config.output.store)
    od = io.read_group(store, "od")
    _check_rows(rows, od.sizes["y"])
    preview, preview_report = preview_paths(config, rows, report_dir)
    with io.store_lock(preview):
        io.write(preview, "od", od.isel(y=slice(*rows)).load(), overwrite=True)
        if "raw_xanes" in io.list_groups(store):  # the 2-D fit does not depend on rows
            io.write(preview, "raw_xanes", io.read_group(store, "raw_xanes"), overwrite=True)
    pcfg = copy.deepcopy(config)
    pcfg.output.store, pcfg.output.overwrite = str(preview), True
    if pcfg.segmentation.target_tm_o is None and "truth" in io.list_groups(store):
        # the simulated truth stays in the main store; its target composition is one number
        pcfg.segmentation.target_tm_o = io.read_group(store, "truth").attrs.get("target_tm_o")
    log(f"preview of rows {rows[0]}:{rows[1]} in {preview} (the main store {store} keeps "
        "only the full-field acquire and preprocess)")
    result = run(pcfg, steps=[s for s in ALL_STEPS if s not in _FULL_FIELD],
                 report_dir=preview_report, log=log)
    result["preview_store"] = preview
    return result


def center_candidates(estimate: float, search: float, step: float) -> np.ndarray:
    """Columns ``estimate - search .. estimate + search`` in ``step`` pixels."""
    if search <= 0 or step <= 0:
        raise ValueError(f"--search and --step must be > 0 pixels; got {search}, {step}")
    n = int(np.floor(search / step + 1e-9))
    return estimate + step * np.arange(-n, n + 1)


def try_centers(sinogram: np.ndarray, angles, candidates, *, filter: str = "ram-lak",
                pixel_size: float | None = None) -> np.ndarray:
    """One FBP slice per candidate rotation-axis column, in one reconstruction call.

    Parameters
    ----------
    sinogram : ndarray, shape (n_angles, n_cols)
        Optical density of one detector row.
    angles : array_like, shape (n_angles,)
        Degrees.
    candidates : array_like, shape (k,)
        Rotation-axis columns (column ``i``'s centre at ``i``).
    filter : str
        FBP window.
    pixel_size : float, optional
        nm; values in 1/nm instead of 1/pixel.

    Returns
    -------
    ndarray, shape (k, n_cols, n_cols) float32
        Slice ``i`` reconstructed with the axis at ``candidates[i]``.
    """
    from ..recon import reconstruct
    from ..recon.prep import candidate_stack

    candidates = np.asarray(candidates, dtype=float)
    sino = np.asarray(sinogram, np.float32)[:, None, :]
    # every candidate's sinogram shifted so that its axis sits at the detector centre
    stack, ref = candidate_stack(np, sino, [0], candidates)
    return np.asarray(reconstruct(stack, angles, algorithm="fbp", center=ref, filter=filter,
                                  pixel_size=pixel_size), np.float32)


def write_try_stack(slices: np.ndarray, candidates, out_dir: str | Path, *, row: int,
                    pixel_size: float | None = None) -> tuple[Path, Path]:
    """``try_center_row<N>.tif`` (ImageJ stack, one page per candidate, labelled
    with the centre) and ``try_center_row<N>.png`` (montage with the centres)."""
    import tifffile

    from .._figure import new_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = [f"center {c:.2f}" for c in candidates]
    tif = out / f"try_center_row{row}.tif"
    meta = {"Labels": labels, "axes": "ZYX"}
    res = {}
    if pixel_size:
        meta["unit"] = "nm"
        res["resolution"] = (1.0 / pixel_size, 1.0 / pixel_size)
    tifffile.imwrite(tif, slices.astype(np.float32), imagej=True, metadata=meta, **res)
    k = len(candidates)
    cols = int(np.ceil(np.sqrt(k)))
    nrows = int(np.ceil(k / cols))
    lo, hi = np.percentile(slices, [1, 99.5])
    fig = new_figure(figsize=(2.2 * cols, 2.3 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, label in zip(axes.ravel(), slices, labels):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(label, fontsize=9)
    fig.suptitle(f"rotation-centre try-stack, detector row {row}")
    fig.tight_layout()
    png = out / f"try_center_row{row}.png"
    fig.savefig(png, dpi=90)
    return tif, png


def run_center(config: Config, *, search: float, step: float, row: int | None = None,
               out_dir: str | Path | None = None,
               log: Callable[[str], None] = print) -> dict:
    """Centre try-stack around the preprocess step's centre, like tomocupy's ``try``.

    Runs ``acquire`` and ``preprocess`` on the main store (if not complete),
    takes detector ``row`` (default: the row of largest mean optical density)
    of the optical density averaged over energies, reconstructs one slice per
    candidate column ``center +- search`` in ``step`` pixels and writes the
    TIFF stack and PNG montage (see :func:`write_try_stack`) into ``out_dir``
    (default ``<store stem>-report/center``).

    Returns ``{"center": estimate, "candidates", "row", "tiff", "png"}``.
    """
    run(config, steps=list(_FULL_FIELD), log=log)
    store = Path(config.output.store)
    od = io.read_group(store, "od")
    ny = od.sizes["y"]
    if row is None:
        profile = od["od"].isel(angle=od.sizes["angle"] // 2).mean("energy").sum("x").values
        row = int(np.argmax(profile))
    if not 0 <= row < ny:
        raise ValueError(f"--row {row} outside the {ny} detector rows of the preprocessed series")
    sino = od["od"].isel(y=row).mean("energy").values  # (angle, x)
    estimate = float(od.attrs["center"])
    candidates = center_candidates(estimate, search, step)
    slices = try_centers(sino, od["angle"].values, candidates,
                         filter=config.reconstruct.filter,
                         pixel_size=float(od.attrs["pixel_size"]))
    out = Path(out_dir) if out_dir else store.with_suffix("").parent / (
        store.with_suffix("").name + "-report") / "center"
    tif, png = write_try_stack(slices, candidates, out, row=row,
                               pixel_size=float(od.attrs["pixel_size"]))
    log(f"centre try-stack: row {row}, {len(candidates)} candidates "
        f"{candidates[0]:.2f}..{candidates[-1]:.2f} around {estimate:.2f}: {tif}, {png}; "
        "pick the sharpest slice and set [preprocess] center (or --center)")
    return {"center": estimate, "candidates": candidates, "row": row, "tiff": tif, "png": png}
