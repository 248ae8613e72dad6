"""A real experiment as a set of files: ``[input] path`` as a list or a glob,
``[input] xanes``, ``angles``, ``energies_ev``, ``crop`` and ``binning``, and the
same in batch manifests. The simulator's data written one file per energy must
give the results of the ``simulate:`` run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "io"))
from _writers import write_dxchange, write_nxtomo, write_tiff_multipage  # noqa: E402

from spectrotomo import io, provenance, simulate  # noqa: E402
from spectrotomo.pipeline import run_pipeline  # noqa: E402
from spectrotomo.pipeline._config import ConfigError, config_from_dict  # noqa: E402
from spectrotomo.pipeline._manifest import load_manifest, scan_config  # noqa: E402
from spectrotomo.pipeline._source import parse_source  # noqa: E402

QUIET = {"log": lambda m: None}


def _member(ds, e, angles=None):
    keep = slice(None) if angles is None else angles
    return {"projections": ds["projections"].values[e][keep], "flats": ds["flats"].values[e],
            "darks": ds["darks"].values[e], "angles": ds["angle"].values[keep],
            "energy": float(ds["energy"].values[e]), "pixel_size": float(ds.attrs["pixel_size"])}


def write_sample(tree, folder: Path) -> tuple[list[str], Path]:
    """The sample's tilt series as one file per energy in three formats, and its
    XANES scan as one NXtomo file with one entry per energy."""
    folder.mkdir(parents=True, exist_ok=True)
    ts, xanes = tree["tilt_series"].to_dataset(), tree["xanes"].to_dataset()
    writers = (lambda p, t: write_dxchange(p.with_suffix(".h5"), t),
               lambda p, t: write_nxtomo(p.with_suffix(".nx"), t),
               lambda p, t: write_tiff_multipage(p.with_suffix(".tif"), t))
    paths = []
    for e in range(ts.sizes["energy"]):
        sub = folder / f"e{e}"  # the TIFF sidecars share names: one folder per energy
        sub.mkdir(exist_ok=True)
        paths.append(str(writers[e % 3](sub / f"tomo_{e}", _member(ts, e))))
    entries = [(f"entry{e:04d}", _member(xanes, e), {}) for e in range(xanes.sizes["energy"])]
    return paths, write_nxtomo(folder / "xanes.nx", None, entries=entries)


def _cfg(path, store, **sections):
    data = {"input": {"path": path}, "output": {"store": str(store), "figures": False},
            "preprocess": {"align": False}}
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return config_from_dict(data)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-files")
    tree = simulate.sample("tiny")
    paths, xanes = write_sample(tree, root)
    return root, tree, paths, xanes


def test_files_run_equals_the_simulated_run(tmp_path):
    """simulate:small written as 8 files (Data Exchange, NXtomo, TIFF + sidecar) plus
    its XANES scan (NXtomo, one entry per energy): od, recon, chemistry and valence
    are bit-identical to the simulate:small run (measured 2026-12-03: so are
    segmentation and profiles)."""
    tree = simulate.sample("small")
    paths, xanes = write_sample(tree, tmp_path / "files")
    steps = ["acquire", "preprocess", "reconstruct", "quantify", "valence"]
    # the simulated store's truth names the formula (quantify ties Li to O from it); the
    # files carry none, so both runs are given it
    formula = {"formula": "Li1.2Mn0.56Ni0.16Co0.08O2"}
    sim = _cfg("simulate:small", tmp_path / "sim.zarr", spectra=formula)
    files = _cfg(paths[::-1], tmp_path / "files.zarr", input={"xanes": str(xanes)},
                 spectra=formula)
    for cfg in (sim, files):
        run_pipeline(cfg, steps=steps, report_dir=tmp_path / "r", **QUIET)
    raw = io.read_group(files.output.store, "raw")
    assert sorted(raw.attrs["source_files"]) == sorted(paths)
    for group in ("od", "recon", "chemistry", "valence"):
        a = io.read_group(sim.output.store, group).load()
        b = io.read_group(files.output.store, group).load()
        assert set(a.data_vars) == set(b.data_vars), group
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_glob_xanes_glob_and_energies_override(tiny_files, tmp_path):
    root, tree, paths, xanes = tiny_files
    # a glob over the DX files only (energies 0, 3, 6), XANES as a one-element list
    pattern = str(root / "e*" / "tomo_*.h5")
    assert parse_source(pattern).kind == "files"
    cfg = _cfg(pattern, tmp_path / "g.zarr", input={"xanes": [str(xanes)]})
    run_pipeline(cfg, steps=["acquire"], **QUIET)
    raw = io.read_group(cfg.output.store, "raw")
    ts = tree["tilt_series"].to_dataset()
    np.testing.assert_array_equal(raw["energy"].values, ts["energy"].values[[0, 3, 6]])
    np.testing.assert_array_equal(raw["projections"].values, ts["projections"].values[[0, 3, 6]])
    got = io.read_group(cfg.output.store, "raw_xanes")
    np.testing.assert_array_equal(got["projections"].values, tree["xanes"]["projections"].values)
    # energies_ev: one per file (values=), in file order
    cfg = _cfg(paths[:2], tmp_path / "e.zarr", input={"energies_ev": [640.0, 630.0]})
    run_pipeline(cfg, steps=["acquire"], **QUIET)
    raw = io.read_group(cfg.output.store, "raw")
    assert raw["energy"].values.tolist() == [630.0, 640.0]
    np.testing.assert_array_equal(raw["projections"].values[0], ts["projections"].values[1])
    cfg = _cfg(paths[:2], tmp_path / "bad.zarr", input={"energies_ev": [640.0]})
    with pytest.raises(ConfigError, match=r"energies_ev must give one value per input file "
                                          r"\(2: .*got 1"):
        run_pipeline(cfg, steps=["acquire"], **QUIET)


def test_angles_common_when_a_file_lost_projections(tiny_files, tmp_path):
    _, tree, paths, _ = tiny_files
    ts = tree["tilt_series"].to_dataset()
    lost = write_dxchange(tmp_path / "lost.h5", _member(ts, 1, angles=np.s_[2:]))
    files = [paths[0], str(lost)]
    with pytest.raises(io.ReaderError, match=r"lost\.h5.*angles.*angles='common'"):
        run_pipeline(_cfg(files, tmp_path / "s.zarr"), steps=["acquire"], **QUIET)
    cfg = _cfg(files, tmp_path / "c.zarr", input={"angles": "common"})
    run_pipeline(cfg, steps=["acquire"], **QUIET)
    raw = io.read_group(cfg.output.store, "raw")
    np.testing.assert_array_equal(raw["angle"].values, ts["angle"].values[2:])


def test_crop_and_binning_apply_to_frames_flats_darks_and_pixel_size(tiny_files, tmp_path):
    _, tree, paths, _ = tiny_files
    ts = tree["tilt_series"].to_dataset()
    cfg = _cfg(paths[:2], tmp_path / "cb.zarr",
               input={"crop": {"rows": [4, 29], "columns": [2, 30]}, "binning": 2})
    run_pipeline(cfg, steps=["acquire"], **QUIET)
    raw = io.read_group(cfg.output.store, "raw").load()
    assert raw["projections"].shape == (2, 66, 12, 14)  # 25 rows -> 12 bins (last row dropped)
    assert raw.attrs["pixel_size"] == pytest.approx(2 * ts.attrs["pixel_size"], rel=1e-12)

    def binned(a):  # (..., y, x) counts -> crop, 2x2 means
        a = a[..., 4:28, 2:30].astype(np.float64)
        return a.reshape(*a.shape[:-2], 12, 2, 14, 2).mean(axis=(-3, -1))

    for name in ("projections", "flats", "darks"):
        assert raw[name].dtype == np.float32
        np.testing.assert_allclose(raw[name].values, binned(ts[name].values[:2]), rtol=1e-6)
    np.testing.assert_allclose(raw["x"].values, ts["x"].values[2:30].reshape(14, 2).mean(1))
    step = provenance(raw)[-1]
    assert step["step"] == "pipeline.acquire"
    assert step["parameters"]["binning"] == 2
    assert step["parameters"]["crop"] == {"rows": [4, 29], "columns": [2, 30]}


@pytest.mark.parametrize("section, match", [
    ({"crop": {"rows": [0, 40]}}, r"crop\.rows = \[0, 40\] must lie within the frame's 32 rows"),
    ({"binning": 3}, r"\[input\] binning must be 1, 2 or 4"),
    ({"crop": {"rows": [5, 2]}}, r"crop\.rows must be \[start, stop\]"),
    ({"crop": {"z": [0, 2]}}, r"crop must be a table with rows and/or columns"),
])
def test_crop_and_binning_errors_name_the_key(tiny_files, tmp_path, section, match):
    paths = tiny_files[2]
    with pytest.raises((ConfigError, ValueError), match=match):
        run_pipeline(_cfg(paths[:2], tmp_path / "x.zarr", input=section), steps=["acquire"],
                     **QUIET)


def test_simulated_input_refuses_crop(tmp_path):
    with pytest.raises(ConfigError, match=r"crop/binning apply to measured files"):
        run_pipeline(_cfg("simulate:tiny", tmp_path / "s.zarr", input={"binning": 2}),
                     steps=["acquire"], **QUIET)


def test_config_path_types():
    with pytest.raises(ConfigError, match=r"\[input\] path must be a path string or a "
                                          r"non-empty list"):
        config_from_dict({"input": {"path": []}})
    assert config_from_dict({"input": {"path": ["a.h5", "b.h5"]}}).input.path == ["a.h5", "b.h5"]
    src = parse_source(["scan/a_*.h5", "b.h5"])
    assert (src.kind, src.paths, src.label) == ("files", ("scan/a_*.h5", "b.h5"), "scan")
    assert parse_source(["/d/tomo_525.h5", "/d/tomo_555.h5"]).label == "tomo"
    assert parse_source(["x.h5"]).kind == "file"


def test_manifest_file_lists_and_xanes(tiny_files, tmp_path):
    root, _, paths, xanes = tiny_files
    rel = [str(Path(p).relative_to(root)) for p in paths[:2]]
    (root / "m.toml").write_text(
        f'[[scan]]\nlabel = "a"\ninput = {rel!r}\nxanes = "xanes.nx"\n'.replace("'", '"')
        + '[[scan]]\nlabel = "b"\ninput = "e*/tomo_*.h5"\n')
    m = load_manifest(root / "m.toml")
    a, b = m.scans
    assert a.input == paths[:2] and a.xanes == str(xanes)
    assert a.input_text == ";".join(paths[:2])
    assert b.input == str(root / "e*/tomo_*.h5") and b.xanes == ""
    cfg = scan_config(_cfg("simulate:tiny", tmp_path / "x.zarr"), a, tmp_path / "a.zarr")
    assert cfg.input.path == paths[:2] and cfg.input.xanes == str(xanes)
    (root / "m.csv").write_text(f"input,label,xanes\n{rel[0]};{rel[1]},c,xanes.nx\n")
    c = load_manifest(root / "m.csv").scans[0]
    assert c.input == paths[:2] and c.xanes == str(xanes)
    (root / "bad.toml").write_text('[[scan]]\nlabel = "a"\ninput = "a.h5"\nxanes = 3\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: scan 1.*field 'xanes' must be a 2-D "
                                          r"XANES file"):
        load_manifest(root / "bad.toml")
