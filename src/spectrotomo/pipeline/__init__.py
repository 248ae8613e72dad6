"""End-to-end pipeline: config, memory plan, resumable steps, report.

Only this package and ``io`` touch files; every step calls stage functions
with explicit arguments taken from the config.
"""

from ._config import Config, ConfigError, load_config, write_template
from ._plan import MemoryPlanError, plan_run
from ._run import ALL_STEPS, run as run_pipeline

__all__ = ["ALL_STEPS", "Config", "ConfigError", "MemoryPlanError", "load_config", "plan_run",
           "run_pipeline", "write_template"]
