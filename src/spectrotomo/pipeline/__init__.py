"""End-to-end pipeline: config, plan, resumable steps, report. Only this and io touch files."""

from ._config import Config, ConfigError, load_config, write_template

__all__ = ["Config", "ConfigError", "load_config", "write_template"]
