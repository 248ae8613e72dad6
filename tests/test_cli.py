import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import spectrotomo
from spectrotomo import add_provenance, tilt_series
from spectrotomo.cli import build_parser, main
from spectrotomo.pipeline.steps.acquire import SIMULATED_GROUPS
from spectrotomo.io import init_array, read_group


def _fake_sample(preset="small", *, seed=0):
    """A tiny DataTree shaped like ``simulate.sample``'s (stand-in until it lands)."""
    rng = np.random.default_rng(seed)
    n = 8
    truth = xr.Dataset(
        {"occupancy": (("z", "y", "x"), rng.random((n, n, n), dtype=np.float32), {"units": "1"}),
         "composition_class": (("z", "y", "x"), rng.integers(0, 4, (n, n, n), dtype=np.uint8))},
        coords={d: (d, np.arange(n) * 20.0, {"units": "nm"}) for d in "zyx"},
        attrs={"pixel_size": 20.0, "preset": preset, "seed": seed})
    add_provenance(truth, "simulate.particle", preset=preset, seed=seed)
    counts = rng.poisson(1000, (2, 5, n, n)).astype(np.float32)
    ts = tilt_series(counts, angles=np.linspace(-65, 65, 5), energies=[640.0, 660.0],
                     pixel_size=20.0, flats=np.full((2, 2, n, n), 1000, np.float32),
                     darks=np.zeros((2, 1, n, n), np.float32))
    add_provenance(ts, "simulate.tilt_series", photons=1000)
    xanes = tilt_series(counts[:, :1], angles=[0.0], energies=[640.0, 660.0], pixel_size=20.0)
    refs = xr.Dataset({"spectra": (("state", "energy"), rng.random((3, 4)), {"units": "nm^2"})},
                      coords={"state": ["Mn2+", "Mn3+", "Mn4+"],
                              "energy": ("energy", np.linspace(635, 665, 4), {"units": "eV"})},
                      attrs={"synthetic": 1})
    return xr.DataTree.from_dict({"/truth": truth, "/tilt_series": ts, "/xanes": xanes,
                                  "/references": refs})


@pytest.fixture
def fake_sample(monkeypatch):
    import spectrotomo.simulate as sim

    # The fast CLI tests wire a tiny tree; test_simulate_real_small_preset runs the real one.
    monkeypatch.setattr(sim, "sample", _fake_sample, raising=False)
    return sim.sample


@pytest.mark.parametrize("command", [[], ["simulate"], ["info"], ["demo"], ["check"], ["init"],
                                     ["center"], ["run"]])
def test_help_on_every_command(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: spectrotomo" in out
    if command == ["simulate"]:
        assert "--preset" in out and "deg" in out and "eV" in out and "nm" in out


def test_simulate_then_info(tmp_path, fake_sample, capsys):
    store = tmp_path / "s.zarr"
    assert main(["simulate", "--preset", "small", "--seed", "3", str(store)]) == 0
    out = capsys.readouterr().out
    for group in SIMULATED_GROUPS.values():
        assert f"[{group}] complete" in out
    assert "all groups complete" in out
    truth = read_group(store, "truth").load()
    expected = fake_sample("small", seed=3)["truth"].to_dataset()
    assert truth["occupancy"].values.tobytes() == expected["occupancy"].values.tobytes()
    raw = read_group(store, "raw")
    spectrotomo.validate_tilt_series(raw)
    assert main(["info", str(store)]) == 0
    out = capsys.readouterr().out
    assert "projections" in out and "angle" in out and "[eV]" in out
    assert "provenance:" in out


def test_simulate_refuses_existing_store_and_info_flags_unfinished(tmp_path, fake_sample, capsys):
    store = tmp_path / "s.zarr"
    assert main(["simulate", str(store)]) == 0
    capsys.readouterr()
    assert main(["simulate", str(store)]) == 2
    assert "overwrite=True" in capsys.readouterr().err
    assert main(["simulate", "--overwrite", "--seed", "1", str(store)]) == 0
    init_array(store, "recon", "volume", shape=(4, 4), dtype="float32", chunks=(2, 2),
               dims=("y", "x"))
    capsys.readouterr()
    assert main(["info", str(store)]) == 1
    out = capsys.readouterr().out
    assert "[recon] writing   <-- UNFINISHED" in out and "unfinished groups: recon" in out


def test_info_missing_store_and_demo(tmp_path, fake_sample, capsys):
    assert main(["info", str(tmp_path / "none.zarr")]) == 2
    assert "no zarr v3 store" in capsys.readouterr().err
    # the demo runs the whole pipeline; tests/pipeline/test_run.py runs it end to end
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0 and "OUT_DIR" in capsys.readouterr().out


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "spectrotomo", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "simulate" in out.stdout, out.stderr
    assert build_parser().prog == "spectrotomo"


def test_simulate_real_small_preset(tmp_path, capsys):
    import spectrotomo.simulate as sim

    if not hasattr(sim, "sample"):
        pytest.skip("simulate.sample not available yet")
    store = tmp_path / "s.zarr"
    assert main(["simulate", "--preset", "small", str(store)]) == 0
    out = capsys.readouterr().out
    assert "all groups complete" in out
    truth = read_group(store, "truth")
    assert truth.attrs["preset"] == "small" and truth["composition_class"].dtype == np.uint8
    spectrotomo.validate_tilt_series(read_group(store, "raw"))
    spectrotomo.validate_tilt_series(read_group(store, "raw_xanes"))
    assert "spectra" in read_group(store, "references")


# --------------------------------------------------------------------------- #
# real experiments: check, init --input, center, run --rows
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """simulate.sample('tiny') as one Data Exchange file per energy + its XANES scan."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "io"))
    from _writers import write_dxchange, write_nxtomo

    import spectrotomo.simulate as sim

    root = tmp_path_factory.mktemp("cli-files")
    tree = sim.sample("tiny")
    ts, xa = tree["tilt_series"].to_dataset(), tree["xanes"].to_dataset()

    def member(ds, e, keep=slice(None)):
        return {"projections": ds["projections"].values[e][keep],
                "flats": ds["flats"].values[e], "darks": ds["darks"].values[e],
                "angles": ds["angle"].values[keep], "energy": float(ds["energy"].values[e]),
                "pixel_size": float(ds.attrs["pixel_size"])}

    paths = [write_dxchange(root / f"tomo_{e}.h5", member(ts, e)) for e in range(8)]
    xanes = write_nxtomo(root / "xanes.nx", None, entries=[
        (f"entry{e:04d}", member(xa, e), {}) for e in range(xa.sizes["energy"])])
    lost = write_dxchange(root / "lost.h5", member(ts, 1, np.s_[3:]))
    return root, paths, xanes, lost


def test_check_describes_files_and_fails_on_problems(tiny_files, capsys):
    root, paths, xanes, lost = tiny_files
    assert main(["check", str(root / "tomo_*.h5"), str(xanes)]) == 1  # XANES: 1 angle
    assert main(["check", str(root / "tomo_*.h5")]) == 0
    out = capsys.readouterr().out
    assert "format           dxchange" in out
    assert "energies (eV)    525, 555, 635, 665, 775, 805, 848, 880" in out
    assert "-65..65 deg, step 2 deg, 66 angles" in out
    assert "flats / darks    5 / 3" in out and "pixel size (nm)  36" in out
    assert "missing wedge" in out and "OK: a run can read these files" in out
    assert 'algorithm = "auto"' in out  # the default's joint solver, not "tv"
    assert main(["check", str(paths[0]), str(lost)]) == 1
    out = capsys.readouterr().out
    assert "lost.h5" in out and 'with [input] angles = "common" the files combine' in out
    assert main(["check", "--angles", "common", str(paths[0]), str(lost)]) == 0
    assert main(["check", str(root / "nothing_*.h5")]) == 1
    assert "the pattern matches no file" in capsys.readouterr().out


@pytest.mark.parametrize("template", ["txm-dual-energy", "xanes2d", "xanes3d", "holo"])
def test_init_from_files_writes_a_loadable_config(tiny_files, tmp_path, template, capsys):
    from spectrotomo.pipeline import load_config

    root, paths, xanes, _ = tiny_files
    out = tmp_path / "run.toml"
    files = [str(p) for p in paths[:3]]
    assert main(["init", "--input", *files, "--xanes", str(xanes), "--template", template,
                 str(out)]) == 0
    text = out.read_text()
    cfg = load_config(out)
    assert cfg.input.path == files and cfg.input.xanes == str(xanes)
    assert cfg.output.store == str(tmp_path / "run.zarr")
    assert f"# template {template}:" in text and "energies 525, 555, 635 eV" in text
    if template == "holo":
        assert cfg.phase.method == "ctf" and cfg.preprocess.align is False
    if template == "xanes2d":
        assert cfg.spectra.sum_to_one is True
    assert main(["init", "--input", *files, str(out)]) == 2  # exists
    assert "exists" in capsys.readouterr().err


def test_init_refuses_a_sample_store_as_input(tmp_path, capsys):
    store = tmp_path / "s.zarr"
    store.mkdir()
    (store / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    out = tmp_path / "run.toml"
    assert main(["init", "--input", str(store), str(out)]) == 2
    err = capsys.readouterr().err
    assert "sample store, not a beamline file" in err and "[output] store" in err
    assert not out.exists()  # nothing half-written


def test_center_and_rows_preview_from_the_command_line(tiny_files, tmp_path, capsys):
    import tifffile

    root, paths, xanes, _ = tiny_files
    cfg = tmp_path / "run.toml"
    store = tmp_path / "run.zarr"
    assert main(["init", "--input", str(root / "tomo_*.h5"), str(cfg)]) == 0
    text = cfg.read_text().replace("align = true ", "align = false").replace(
        "figures = true", "figures = false")
    cfg.write_text(text + "\n")
    assert main(["center", str(cfg), "--search", "1", "--step", "1", "--row", "16",
                 "--target-tm-o", "0.5"]) == 0
    tif = tmp_path / "run-report" / "center" / "try_center_row16.tif"
    assert tifffile.imread(tif).shape == (3, 32, 32)
    assert (tif.with_suffix(".png")).is_file()
    assert main(["run", str(cfg), "--rows", "8:12", "--target-tm-o", "0.5"]) == 0
    assert "preview store" in capsys.readouterr().out
    preview = tmp_path / "run-rows8-12.zarr"
    assert read_group(preview, "recon")["mu"].shape == (8, 4, 32, 32)
    from spectrotomo.io import list_groups

    assert "recon" not in list_groups(store)
    assert main(["run", str(cfg), "--slice", "40"]) == 2
    assert "exceed the 32 detector rows" in capsys.readouterr().err
