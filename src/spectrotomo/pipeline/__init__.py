"""End-to-end pipeline: config, memory plan, resumable steps, report.

Only this package and ``io`` touch files; every step calls stage functions
with explicit arguments taken from the config.
"""

from ._batch import batch_states, run_batch
from ._compute import WorkerLostError
from ._config import Config, ConfigError, load_config, write_template
from ._manifest import ManifestError, load_manifest
from ._plan import MemoryPlanError, plan_run
from ._run import ALL_STEPS, run as run_pipeline

__all__ = ["ALL_STEPS", "Config", "ConfigError", "ManifestError", "MemoryPlanError",
           "batch_states", "load_config", "load_manifest", "plan_run", "run_batch",
           "run_pipeline", "WorkerLostError", "write_template"]
