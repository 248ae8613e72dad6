"""``[spectra] references / nonneg / sum_to_one`` reach the valence step's LCF.

One acquired tiny store per session; each variant reruns only the valence step.
"""

import json

import numpy as np
import pytest
import xarray as xr

from spectrotomo import io
from spectrotomo.pipeline import Config, run_pipeline
from spectrotomo.pipeline._config import config_from_dict
from spectrotomo.pipeline.steps.valence import config_references, fit_valence
from spectrotomo.spectra import builtin_references


def _write_csv(path, refs):
    """``refs`` as a CSV table: energy_eV then one column per state (full precision)."""
    lines = ["energy_eV," + ",".join(str(s) for s in refs["state"].values)]
    for e, row in zip(refs["energy"].values, refs.values.T):
        lines.append(",".join(repr(float(v)) for v in (e, *row)))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("spectra")
    cfg = _config(root / "s.zarr")
    run_pipeline(cfg, steps=["acquire"], log=lambda m: None)
    return root


def _config(store, **spectra):
    return config_from_dict({"input": {"path": "simulate:tiny"},
                             "output": {"store": str(store), "overwrite": True},
                             "spectra": spectra})


def _valence(root, **spectra) -> xr.Dataset:
    """Run the valence step with these ``[spectra]`` keys; the stored group."""
    run_pipeline(_config(root / "s.zarr", **spectra), steps=["valence"], log=lambda m: None)
    return io.read_group(root / "s.zarr", "valence").load()


def _provenance(ds, step) -> dict:
    return next(e for e in json.loads(ds.attrs["provenance"]) if e["step"] == step)["parameters"]


def test_references_file_gives_the_builtin_valence(store):
    builtin = _valence(store)
    path = _write_csv(store / "refs.csv", builtin_references(None, normalized=False))
    from_file = _valence(store, references=str(path))
    valence = builtin["valence"].sel(element="Mn").values
    assert np.isfinite(valence).sum() > 100
    np.testing.assert_array_equal(from_file["valence"].values, builtin["valence"].values)
    np.testing.assert_array_equal(from_file["fractions"].values, builtin["fractions"].values)
    assert _provenance(from_file, "pipeline.valence")["references"] == str(path)
    assert _provenance(builtin, "pipeline.valence")["references"] == "builtin"
    # the file is really what is fitted: labelling Mn2+'s column Mn4+ and back moves valences
    refs = builtin_references(None, normalized=False)
    names = [{"Mn2+": "Mn4+", "Mn4+": "Mn2+"}.get(s, s) for s in refs["state"].values]
    swapped = _write_csv(store / "swapped.csv", refs.assign_coords(state=names))
    moved = _valence(store, references=str(swapped))["valence"].sel(element="Mn").values
    ok = np.isfinite(moved) & np.isfinite(valence)
    assert np.abs(moved[ok] - valence[ok]).mean() > 0.5


def test_sum_to_one_and_nonneg_change_the_recorded_fit(store):
    absolute = _valence(store)  # default: sum_to_one = false
    assert _provenance(absolute, "pipeline.valence")["fit_mode"] == "absolute"
    assert _provenance(absolute, "spectra.valence_maps")["sum_to_one"] is False
    normalized = _valence(store, sum_to_one=True)
    params = _provenance(normalized, "pipeline.valence")
    assert params["fit_mode"] == "normalized" and params["sum_to_one"] is True
    fit = _provenance(normalized, "spectra.valence_maps")
    assert fit["sum_to_one"] is True and fit["normalized"] is True
    assert "amount" in absolute and "amount" not in normalized  # fractions, not amounts
    a = absolute["valence"].sel(element="Mn").values
    n = normalized["valence"].sel(element="Mn").values
    both = np.isfinite(a) & np.isfinite(n)
    assert both.sum() > 100
    # two different fits of the same pixels; measured mean |difference| 0.05 e
    assert 0 < np.abs(a[both] - n[both]).mean() < 0.15
    free = _valence(store, nonneg=False)
    assert _provenance(free, "spectra.valence_maps")["nonneg"] is False
    assert (free["fractions"].values < 0).any() and not (absolute["fractions"].values < 0).any()


def test_references_errors_name_the_file_and_column(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no file '.*missing.csv'.*Mn3\+"):
        config_references(str(tmp_path / "missing.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("energy,Mn2+,manganite\n640,1,2\n650,2,3\n")
    with pytest.raises(ValueError, match=r"bad.csv: column\(s\) \['manganite'\] must be named"):
        config_references(str(bad))
    refs = config_references(str(_write_csv(tmp_path / "ok.csv", builtin_references(["O"]))))
    assert list(refs["state_valence"].values) == [-2.0, -1.0]
    assert list(refs["state_element"].values) == ["O", "O"]


def test_normalized_fit_of_two_elements_recovers_known_valences():
    """Synthetic pixels: Mn 3.5 (half Mn3+, half Mn4+), Co 3 (all Co3+)."""
    refs = builtin_references(["Mn", "Co"], normalized=False)
    energies = np.concatenate([np.arange(636.0, 664.0, 0.5), np.arange(776.0, 804.0, 0.5)])
    on_grid = refs.interp(energy=energies)
    weights = {"Mn3+": 0.5, "Mn4+": 0.5, "Co3+": 1.0}
    spectrum = sum(w * on_grid.sel(state=s).values for s, w in weights.items())
    spectra = xr.DataArray(np.broadcast_to(spectrum[:, None, None], (energies.size, 2, 3)).copy(),
                           dims=("energy", "y", "x"), coords={"energy": energies},
                           attrs={"units": "1", "pixel_size": 10.0})
    for sum_to_one in (False, True):
        cfg = Config().spectra
        cfg.sum_to_one = sum_to_one
        ds = fit_valence(spectra, refs, ["Mn", "Co"], cfg)
        assert ds.attrs["fit_mode"] == ("normalized" if sum_to_one else "absolute")
        assert list(ds["element"].values) == ["Mn", "Co"]
        assert ds.sizes["state"] == 6
        # normalized fractions are step-weighted: the two Mn steps differ by a few %
        np.testing.assert_allclose(ds["valence"].sel(element="Mn"), 3.5, atol=0.05)
        np.testing.assert_allclose(ds["valence"].sel(element="Co"), 3.0, atol=0.02)


def test_energy_offset_is_fitted_recorded_and_reported(store):
    """``[spectra] energy_offset``: "fit" (default) finds the simulator's calibration offset."""
    from spectrotomo.pipeline._config import ConfigError
    from spectrotomo.pipeline.steps.report import truth_errors

    fitted = _valence(store)  # default "fit"
    true = float(io.read_group(store / "s.zarr", "raw_xanes").attrs["true_energy_offset_ev"])
    assert true == pytest.approx(0.3)  # the simulator's default calibration offset
    mn = list(fitted["element"].values).index("Mn")
    assert abs(fitted.attrs["energy_offset_ev"][mn] - true) < 0.1
    assert fitted.attrs["true_energy_offset_ev"] == true
    assert _provenance(fitted, "pipeline.valence")["energy_offset"] == "fit"
    errors = truth_errors(store / "s.zarr")
    assert errors["energy_offset_true_ev"] == true
    assert errors["energy_offset_error_ev"] == pytest.approx(errors["energy_offset_ev"] - true)
    fixed = _valence(store, energy_offset=0.3)
    assert fixed.attrs["energy_offset_ev"] == [0.3] * fixed.sizes["element"]
    for sum_to_one in (False, True):  # both fit modes honour the offset
        none = _valence(store, energy_offset=0, sum_to_one=sum_to_one)
        assert none.attrs["energy_offset_ev"] == [0.0] * none.sizes["element"]
    with pytest.raises(ConfigError, match=r'\[spectra\] energy_offset must be "fit" or an offset'):
        _config(store / "s.zarr", energy_offset="auto")


def test_xanes_scan_is_normalized_like_the_tomography(store):
    """The valence step normalizes the XANES scan with ``normalize_series`` and
    ``[preprocess] flat_mode``: the tomography's numbers, pixel masks and checks."""
    from spectrotomo import ValidationError
    from spectrotomo.pipeline.steps.valence import xanes_od
    from spectrotomo.recon.prep import normalize

    raw = io.read_group(store / "s.zarr", "raw_xanes").load()
    od, masked = xanes_od(raw, flat_mode="median")
    assert od.shape == (raw.sizes["energy"], raw.sizes["y"], raw.sizes["x"])
    e = raw.sizes["energy"] // 2
    same, _ = normalize(raw["projections"].values[e], raw["flats"].values[e],
                        raw["darks"].values[e], flat_mode="median")
    np.testing.assert_array_equal(od[e], same[0])
    dead = raw.copy(deep=True)
    dead["projections"].values[:, 0, 5, 7] = 0  # a dead pixel at every energy
    od_dead, masked_dead = xanes_od(dead, flat_mode="median")
    assert masked_dead >= masked + raw.sizes["energy"]
    assert np.isfinite(od_dead).all()  # masked and filled from its neighbours
    assert np.abs(od_dead[:, 5, 7] - od[:, 5, 7]).max() < 0.2
    dark_flats = raw.copy(deep=True)
    dark_flats["flats"].values[:] = 0  # e.g. a shutter that stayed closed
    with pytest.raises(ValidationError, match="flats must exceed darks"):
        xanes_od(dark_flats)
    stored = _valence(store)
    assert stored.attrs["masked_pixels"] >= 0
    assert _provenance(stored, "pipeline.valence")["flat_mode"] == "median"
