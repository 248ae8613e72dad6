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


@pytest.mark.parametrize("code, text", [(errno.ENOSPC, "No space left on device"),
                                        (errno.EROFS, "Read-only file system")])
def test_system_fault_names_the_path_and_exits_1(tmp_path, capsys, monkeypatch, code, text):
    import spectrotomo.pipeline as pipeline

    fault = OSError(code, text, str(tmp_path / "s.zarr" / "recon" / "mu"))
    monkeypatch.setattr(pipeline, "run_pipeline", _raise(fault))
    assert cli.main(["run", str(_config(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert err == f"spectrotomo run: error: {tmp_path / 's.zarr' / 'recon' / 'mu'}: {text}\n"


def test_permission_error_is_a_user_mistake(tmp_path, capsys, monkeypatch):
    import spectrotomo.pipeline as pipeline

    fault = PermissionError(errno.EACCES, "Permission denied", "/data/s.zarr")
    monkeypatch.setattr(pipeline, "run_pipeline", _raise(fault))
    assert cli.main(["run", str(_config(tmp_path))]) == 2
    assert capsys.readouterr().err == "spectrotomo run: error: /data/s.zarr: Permission denied\n"


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
