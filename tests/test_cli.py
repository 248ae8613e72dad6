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


@pytest.mark.parametrize("command", [[], ["simulate"], ["info"], ["demo"]])
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
