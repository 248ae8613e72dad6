"""End-to-end pipeline: config, memory plan, resumable steps, report.

Only this package and ``io`` touch files; every step calls stage functions
with explicit arguments taken from the config.
"""

from ._batch import batch_states, run_batch
from ._check import check_inputs, format_check_report
from ._compute import WorkerLostError, make_cluster
from ._config import Config, ConfigError, load_config, write_template
from ._manifest import ManifestError, load_manifest
from ._plan import MemoryPlanError, plan_run
from ._preview import parse_rows, run_center, run_rows, try_centers
from ._run import ALL_STEPS, run as run_pipeline
from ._templates import TEMPLATES, write_config

__all__ = ["ALL_STEPS", "Config", "ConfigError", "ManifestError", "MemoryPlanError",
           "TEMPLATES", "batch_states", "check_inputs", "format_check_report", "load_config",
           "load_manifest", "make_cluster", "parse_rows", "plan_run", "run_batch", "run_center",
           "run_pipeline", "run_rows", "try_centers", "WorkerLostError", "write_config",
           "write_template"]
