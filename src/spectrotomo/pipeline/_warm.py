"""Warm a run's dask workers while this process prepares the first chunk step.

A worker's first chunk task paid the imports and first calls of everything the tasks
use that the worker had not yet loaded: zarr and its codecs, the NUFFT/FFT libraries,
xraydb's tables, xarray's first indexed DataArray (dask.array, pint). Measured on a
bench worker that had already imported ``spectrotomo.recon`` and ``spectrotomo.spectra``
(2-core VM, demo preset): the first reconstruct task 1.08 s vs 0.80 s for the next, the
first quantify task 0.27-0.34 s vs 0.07 s, and 0.7 CPU s on a worker that had imported
nothing (a run's fresh workers). Each worker pays that once, before its first task, so
N workers pay it side by side: it is a constant of the step time that more workers
do not shorten. :func:`warm_workers` starts it on every worker as soon as the client
connects (:func:`~spectrotomo.pipeline._compute.open_client`), while this process
plans and prepares the first chunk step.
"""

from __future__ import annotations

import importlib
import uuid

__all__ = ["WARM_MODULES", "warm_first_calls", "warm_worker", "warm_workers"]

#: Modules the chunk tasks import on first use (optional ones are skipped where absent).
WARM_MODULES = ("zarr", "numcodecs", "ducc0", "finufft", "xraydb", "spectrotomo.recon",
                "spectrotomo.spectra", "spectrotomo.pipeline.steps.reconstruct",
                "spectrotomo.pipeline.steps.quantify")


def warm_worker() -> list[str]:
    """Import :data:`WARM_MODULES` in this (worker) process and tune its malloc as the
    tasks do.

    Returns
    -------
    list of str
        The modules imported (those not installed are left out).
    """
    from ._malloc import tune_worker_malloc

    tune_worker_malloc()
    imported = []
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # optional backends (ducc0, finufft): the tasks fall back too
            continue
        imported.append(name)
    return imported


def warm_first_calls() -> None:
    """The first calls of quantify's tasks in this (worker) process: xraydb opens its
    tables at the first query (~0.1 CPU s), xarray's first indexed DataArray imports
    dask.array and pint (~0.3 CPU s in a fresh process)."""
    import numpy as np
    import xarray as xr

    from ..spectra import cross_section

    cross_section("O", [530.0])
    xr.DataArray(np.zeros(1), dims="x", coords={"x": [0.0]})


def warm_workers(client) -> list:
    """Start :func:`warm_worker` and :func:`warm_first_calls` on every worker connected
    to ``client``, pinned to it, without waiting.

    :func:`warm_worker` is submitted before the step's tasks, so it runs first on its
    worker and overlaps this process's preparation of the step (the first reconstruct
    task needs its imports anyway). :func:`warm_first_calls` is only needed by the
    later quantify step: it has a lower priority, so dask starts it only when its worker
    has no chunk task ready (while this process prepares a step, or in the tail of one);
    a chunk that arrives while it runs waits for it (~0.3 CPU s in a fresh worker, less
    where the imports are done). Hold the returned futures while the tasks run: a
    released future's task is cancelled.
    """
    workers = list(client.scheduler_info().get("workers", {}))
    return [client.submit(fn, workers=[w], allow_other_workers=False, pure=False,
                          priority=priority, key=f"{fn.__name__}-{uuid.uuid4().hex}")
            for fn, priority in ((warm_worker, 0), (warm_first_calls, -1)) for w in workers]
