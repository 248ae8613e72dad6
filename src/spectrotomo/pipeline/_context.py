"""The state one pipeline run hands to each step."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ._config import Config

__all__ = ["RunContext"]


@dataclass
class RunContext:
    config: Config
    store: Path
    report_dir: Path
    log: Callable[[str], None] = print
    results: dict = field(default_factory=dict)
    #: dask.distributed Client the chunk tasks run on (None: in this process)
    client: Any = None

    @property
    def overwrite(self) -> bool:
        return self.config.output.overwrite
