"""Every config key is checked against its domain before anything runs: the CLI
prints one message naming the key, the value and what is expected, exits 2, shows
no traceback and writes nothing."""

from __future__ import annotations

import re
import tomllib

import pytest

from spectrotomo.cli import main
from spectrotomo.pipeline import Config, ConfigError, run_pipeline
from spectrotomo.pipeline._config import check_config, config_from_dict

BAD = [
    ("reconstruct", "iterations = 0", r"\[reconstruct\] iterations must be an integer >= 1.*got 0"),
    ("reconstruct", "iterations = -3", r"\[reconstruct\] iterations must be an integer >= 1"),
    ("reconstruct", "iterations = 2.5", r"\[reconstruct\] iterations must be an integer; "
                                        r"got 2\.5"),
    ("reconstruct", 'iterations = "ten"', r"\[reconstruct\] iterations must be an integer; "
                                          r"got 'ten'"),
    ("reconstruct", "iterations = true",
     r"\[reconstruct\] iterations must be an integer; got True"),
    ("reconstruct", "iterations = 1000000000",
     r"\[reconstruct\] iterations must be <= 10000 unless \[reconstruct\] max_seconds caps"),
    ("reconstruct", "max_seconds = 0", r"\[reconstruct\] max_seconds must be > 0.*got 0\.0"),
    ("reconstruct", "max_seconds = -5.0", r"\[reconstruct\] max_seconds must be > 0"),
    ("reconstruct", 'algorithm = "art"', r"\[reconstruct\] algorithm must be one of auto, fbp, joint"),
    ("reconstruct", 'filter = "box"', r"\[reconstruct\] filter must be one of ram-lak"),
    ("reconstruct", "chunk_rows = 0", r"\[reconstruct\] chunk_rows must be >= 1.*got 0"),
    ("segmentation", "target_tm_o = 0.0", r"\[segmentation\] target_tm_o must be > 0.*got 0\.0"),
    ("segmentation", "target_tm_o = -0.4", r"\[segmentation\] target_tm_o must be > 0"),
    ("segmentation", "target_tm_o = nan", r"\[segmentation\] target_tm_o must be a finite number"),
    ("segmentation", "depth_bins_nm = [0.0, 100.0, 50.0]",
     r"\[segmentation\] depth_bins_nm must be at least two depths \(nm\), non-negative and "
     r"strictly increasing; got \[0\.0, 100\.0, 50\.0\]"),
    ("segmentation", "depth_bins_nm = [-10.0, 20.0]", r"depth_bins_nm must be .*non-negative"),
    ("segmentation", "depth_bins_nm = [5.0]", r"depth_bins_nm must be at least two depths"),
    ("segmentation", "tolerance = 0.0", r"\[segmentation\] tolerance must be > 0"),
    ("segmentation", "n_shells = 0", r"\[segmentation\] n_shells must be >= 1"),
    ("spectra", 'elements = ["Fe"]', r"\[spectra\] elements must be a non-empty list of distinct "
                                     r"elements among O, Mn, Co, Ni; got \['Fe'\]"),
    ("spectra", "elements = []", r"\[spectra\] elements must be a non-empty list"),
    ("spectra", 'elements = ["Mn", "Mn"]', r"elements must be .*distinct.*got \['Mn', 'Mn'\]"),
    ("spectra", 'elements = "Mn"', r"\[spectra\] elements must be a list; got 'Mn'"),
    ("preprocess", 'center = "middle"', r"\[preprocess\] center must be \"auto\" or a column"),
    ("preprocess", "center = inf", r"\[preprocess\] center must be \"auto\" or a column position "
                                   r"\(number\), finite; got inf"),
    ("preprocess", 'flat_mode = "max"', r"\[preprocess\] flat_mode must be one of mean, median"),
    ("preprocess", "align_iterations = -1", r"\[preprocess\] align_iterations must be >= 0"),
    ("input", "seed = -1", r"\[input\] seed must be >= 0; got -1"),
    ("input", "pixel_size_nm = 0.0", r"\[input\] pixel_size_nm must be > 0 \(nm\)"),
    ("input", "energies_ev = [-640.0]", r"\[input\] energies_ev must be positive energies in eV"),
    ("phase", "delta_beta = 0.0", r"\[phase\] delta_beta must be > 0"),
    ("phase", "energy_ev = -5.0", r"\[phase\] energy_ev must be > 0 \(eV\)"),
    ("compute", "n_workers = 0", r"\[compute\] n_workers must be >= 1"),
    ("compute", "memory_limit_gb = -1.0", r"\[compute\] memory_limit_gb must be > 0 \(GiB\)"),
    ("compute", 'scheduler = "localhost"', r"\[compute\] scheduler must be \"threads\" or a "
                                           r"scheduler address"),
    ("compute", 'device = "tpu"', r"\[compute\] device must be one of auto, cpu, gpu"),
    ("output", 'overwrite = "yes"', r"\[output\] overwrite must be true or false; got 'yes'"),
    ("output", "typo = 1", r"unknown key \[output\] typo; expected one of store"),
    ("recon", "x = 1", r"unknown section \[recon\]; expected one of input"),
]


def _write(tmp_path, section, line):
    """A config of the tiny preset with ``line`` in ``[section]``."""
    sections = {"input": ['path = "simulate:tiny"'], "output": [f'store = "{tmp_path / "s.zarr"}"']}
    sections.setdefault(section, []).append(line)
    path = tmp_path / "run.toml"
    path.write_text("".join(f"[{name}]\n" + "\n".join(lines) + "\n"
                            for name, lines in sections.items()))
    return path


@pytest.mark.parametrize("section, line, match", BAD, ids=[f"{s}.{line}" for s, line, _ in BAD])
def test_bad_value_exits_2_naming_key_and_value(tmp_path, capsys, section, line, match):
    path = _write(tmp_path, section, line)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spectrotomo run: error: ") and "run.toml" in err
    assert re.search(match, err), err
    assert "Traceback" not in err
    assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "s-report").exists()


def test_all_config_problems_in_one_message(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text('[reconstruct]\niterations = 0\nalgorithm = "art"\n[segmentation]\n'
                    'target_tm_o = -1.0\ndepth_bins_nm = [0.0, 100.0, 50.0]\n[spectra]\n'
                    'elements = ["Fe"]\n[preprocess]\ncenter = "x"\n[bogus]\n')
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "7 problems:" in err and err.count("\n  - ") == 7


def test_config_edited_in_python_is_checked_at_run_time(tmp_path):
    cfg = Config()
    cfg.input.path = "simulate:tiny"
    cfg.output.store = str(tmp_path / "s.zarr")
    cfg.reconstruct.iterations = 2.5
    cfg.spectra.elements = ["Mn", "Fe"]
    cfg.segmentation.target_tm_o = 0.0
    with pytest.raises(ConfigError) as info:
        run_pipeline(cfg, log=lambda m: None)
    assert [p.split(" must")[0] for p in info.value.problems] == [
        "[reconstruct] iterations", "[spectra] elements", "[segmentation] target_tm_o"]
    assert not (tmp_path / "s.zarr").exists()


def test_defaults_and_template_are_valid():
    from spectrotomo.pipeline._config import TEMPLATE

    assert check_config(Config()) == []
    assert config_from_dict(tomllib.loads(TEMPLATE)) == Config()
    assert check_config(config_from_dict({"reconstruct": {
        "algorithm": "sirt", "iterations": 10**6, "max_seconds": 60.0}})) == []
    with pytest.raises(ConfigError, match=r"iterations must be <= 10000 unless \[reconstruct\] "
                                          r"max_seconds caps each solve \(algorithm joint, "
                                          r"sirt, cgls, tv; algorithm = 'auto'\)"):
        config_from_dict({"reconstruct": {"algorithm": "auto", "iterations": 10**6,
                                          "max_seconds": 60.0}})


def test_config_error_lists_problems_and_pickles():
    import pickle

    exc = ConfigError(["a must be b; got c", "d must be e; got f"])
    assert exc.problems == ["a must be b; got c", "d must be e; got f"]
    assert str(exc) == "2 problems:\n  - a must be b; got c\n  - d must be e; got f"
    back = pickle.loads(pickle.dumps(exc))
    assert str(back) == str(exc)


def test_input_reader_error_is_both_and_pickles():
    import pickle

    from spectrotomo.io import ReaderError
    from spectrotomo.pipeline._validate import InputReaderError

    back = pickle.loads(pickle.dumps(InputReaderError(["x.h5: field 'theta' must be ..."])))
    assert isinstance(back, ConfigError) and isinstance(back, ReaderError)
    assert back.problems == ["x.h5: field 'theta' must be ..."]
