"""The CLI shows one clear message for a user mistake (exit 2), one for a system
fault (exit 1) and keeps the traceback for ``--debug``."""

from __future__ import annotations

import errno

import pytest

from spectrotomo import cli


def _config(tmp_path, extra=""):
    path = tmp_path / "run.toml"
    path.write_text(f'[input]\npath = "simulate:tiny"\n[output]\nstore = '
                    f'"{tmp_path / "s.zarr"}"\n{extra}')
    return path


@pytest.mark.parametrize("text, match", [
    (None, r"run\.toml: cannot read config \(No such file or directory\)"),
    ("[input\n", r"run\.toml: invalid TOML"),
    ('[input]\npath = "missing.h5"\n', r"\[input\] path = 'missing\.h5': no such file or "
                                       r"directory; expected a beamline file"),
])
def test_config_and_input_mistakes_exit_2_without_traceback(tmp_path, capsys, text, match):
    path = tmp_path / "run.toml"
    if text is not None:
        path.write_text(text)
    assert cli.main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert __import__("re").search(match, err), err
    assert "Traceback" not in err and err.count("\n") <= 2


@pytest.mark.parametrize("argv", [["--debug", "run"], ["run", "--debug"]])
def test_debug_shows_the_traceback(tmp_path, argv):
    path = _config(tmp_path, "[reconstruct]\niterations = 0\n")
    with pytest.raises(Exception, match=r"iterations must be an integer >= 1"):
        cli.main([*argv, str(path)])


def _raise(exc):
    def fail(*args, **kwargs):
        raise exc
    return fail


def test_internal_error_is_one_message_pointing_to_debug(tmp_path, capsys, monkeypatch):
    import spectrotomo.pipeline as pipeline

    monkeypatch.setattr(pipeline, "run_pipeline", _raise(TypeError("unsupported operand")))
    assert cli.main(["run", str(_config(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert err.startswith("spectrotomo run: internal error: TypeError: unsupported operand\n")
    assert "rerun with --debug" in err and "Traceback" not in err


@pytest.mark.parametrize("code, why", [(errno.ENOSPC, "no space left on the device"),
                                       (errno.EROFS, "the file system is read-only"),
                                       (errno.EACCES, "permission denied")])
def test_full_or_read_only_output_is_one_message_exit_2(tmp_path, capsys, monkeypatch, code,
                                                        why):
    import spectrotomo.pipeline as pipeline

    target = str(tmp_path / "s-report" / "run.log")
    monkeypatch.setattr(pipeline, "run_pipeline", _raise(OSError(code, "x", target)))
    assert cli.main(["run", str(_config(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"spectrotomo run: error: cannot write output to {target}: {why}")
    assert "Traceback" not in err and err.count("\n") == 1


def test_other_system_fault_names_the_path_and_exits_1(tmp_path, capsys, monkeypatch):
    import spectrotomo.pipeline as pipeline

    fault = OSError(errno.EIO, "Input/output error", "/data/scan.h5")
    monkeypatch.setattr(pipeline, "run_pipeline", _raise(fault))
    assert cli.main(["run", str(_config(tmp_path))]) == 1
    assert capsys.readouterr().err == "spectrotomo run: error: /data/scan.h5: Input/output error\n"


def test_missing_file_is_path_and_reason(tmp_path, capsys, monkeypatch):
    import spectrotomo.pipeline as pipeline

    fault = FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/refs.csv")
    monkeypatch.setattr(pipeline, "run_pipeline", _raise(fault))
    assert cli.main(["run", str(_config(tmp_path))]) == 2
    assert capsys.readouterr().err == ("spectrotomo run: error: /data/refs.csv: No such file or "
                                       "directory\n")


def test_interrupt_exits_130(tmp_path, capsys, monkeypatch):
    import spectrotomo.pipeline as pipeline

    monkeypatch.setattr(pipeline, "run_pipeline", _raise(KeyboardInterrupt()))
    assert cli.main(["run", str(_config(tmp_path))]) == 130
    assert capsys.readouterr().err == "spectrotomo run: interrupted\n"


def test_dry_run_validates(tmp_path, capsys):
    path = _config(tmp_path, "[preprocess]\ncenter = 40.0\n")
    assert cli.main(["run", str(path), "--dry-run"]) == 2
    assert "center = 40 is outside the detector" in capsys.readouterr().err
    assert not (tmp_path / "s.zarr").exists()
