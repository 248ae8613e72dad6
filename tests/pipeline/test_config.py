import numpy as np
import pytest

from spectrotomo.pipeline._config import (TEMPLATE, Config, ConfigError, config_from_dict,
                                          load_config, write_template)


def test_template_parses_to_defaults(tmp_path):
    path = write_template(tmp_path / "run.toml")
    assert load_config(path) == Config()
    with pytest.raises(FileExistsError):
        write_template(path)


def test_overrides_win(tmp_path):
    path = write_template(tmp_path / "run.toml")
    cfg = load_config(path, {"reconstruct.algorithm": "tv", "segmentation.tolerance": 0.1})
    assert cfg.reconstruct.algorithm == "tv" and cfg.segmentation.tolerance == 0.1


def test_yaml_safe_load(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("reconstruct:\n  algorithm: cgls\n  iterations: 30\n")
    cfg = load_config(path)
    assert cfg.reconstruct.algorithm == "cgls" and cfg.reconstruct.iterations == 30
    path.write_text("reconstruct: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)


@pytest.mark.parametrize(
    "data, match",
    [
        ({"recon": {}}, "unknown section"),
        ({"reconstruct": {"algo": "fbp"}}, "unknown key"),
        ({"reconstruct": {"algorithm": "art"}}, "one of auto, fbp, joint"),
        ({"reconstruct": {"iterations": 1.5}}, "integer"),
        ({"segmentation": {"tolerance": 0.0}}, "tolerance"),
        ({"preprocess": {"center": "middle"}}, "auto"),
        ({"phase": {"method": "paganin", "pixel_size_m": 20.0}}, "metres"),
        ({"spectra": {"elements": "Mn"}}, "list"),
        ({"spectra": {"formula": "Li(Mn2"}}, "chemical formula"),
        ({"spectra": {"formula": "LiMn2"}}, "with O"),
        ({"spectra": {"formula": 3}}, "string"),
    ],
)
def test_bad_values_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data, source="run.toml")


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[input\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)
    assert "memory_limit_gb" in TEMPLATE


def test_magnification_modes_pick_metadata_or_estimate():
    from spectrotomo import tilt_series
    from spectrotomo.pipeline._config import config_from_dict
    from spectrotomo.pipeline.steps.preprocess import magnification_pixel_sizes as _magnification

    kw = dict(angles=[0.0], energies=[640.0, 655.0], pixel_size=20.0)
    with_sizes = tilt_series(np.ones((2, 1, 4, 4)), pixel_sizes=[20.0, 20.04], **kw)
    plain = tilt_series(np.ones((2, 1, 4, 4)), **kw)
    np.testing.assert_array_equal(_magnification(with_sizes, "auto"), [20.0, 20.04])
    np.testing.assert_array_equal(_magnification(with_sizes, "metadata"), [20.0, 20.04])
    assert _magnification(plain, "auto") is None
    assert _magnification(with_sizes, "estimate") is None and \
        _magnification(with_sizes, "none") is None
    with pytest.raises(ValueError, match=r"magnification = \"metadata\".*pixel_size_energy"):
        _magnification(plain, "metadata")
    assert config_from_dict({"preprocess": {"magnification": "none"}}).preprocess.magnification \
        == "none"
    with pytest.raises(ConfigError, match=r"\[preprocess\] magnification must be one of auto"):
        config_from_dict({"preprocess": {"magnification": "exif"}})
    # "linear": estimated (metadata ignored) under a law linear in energy
    from spectrotomo.pipeline.steps.preprocess import scale_options

    assert _magnification(with_sizes, "linear") is None
    opts = scale_options("linear", [640.0, 655.0])
    assert opts["scale_model"] == "linear" and opts["estimate_scale"]
    none, estimate = scale_options("none", [640.0]), scale_options("estimate", [640.0])
    assert not none["estimate_scale"] and estimate["estimate_scale"]
    assert none["scale_model"] == estimate["scale_model"] == "free"
