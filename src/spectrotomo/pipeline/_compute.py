"""Where a run's chunk tasks execute: in this process, or on a dask.distributed cluster.

``[compute]`` chooses:

- ``scheduler = "threads"``, ``cluster = "none"`` (default): tasks run one after
  the other in this process; each reconstruction task already uses
  ``OMP_NUM_THREADS`` host threads (``recon._nufft``), so a second level of
  threads would only contend for the same cores.
- ``scheduler = "tcp://host:8786"``: an existing dask.distributed cluster. Tasks
  carry store paths, not arrays: every worker must see the store at the same
  path (a shared file system).
- ``cluster = "local"``: a :class:`distributed.LocalCluster` of ``n_workers``
  processes with ``threads_per_worker`` threads and ``memory_limit_gb`` each.
- ``cluster = "slurm"``: a ``dask_jobqueue.SLURMCluster`` of ``n_workers`` jobs
  (extra ``cluster``); ``cluster = "cuda"``: a ``dask_cuda.LocalCUDACluster``,
  one worker per visible GPU (extra ``cuda-cluster``).

Tasks are plain module-level functions of picklable arguments, so a worker
process imports spectrotomo and reads/writes its own chunk of the store.
A task whose worker dies (killed, out of memory) is retried on another
worker (dask's ``distributed.scheduler.allowed-failures``, default 3 deaths);
once dask gives it up, :func:`run_tasks` raises :class:`WorkerLostError`
saying so, and the chunks already written stay for a rerun to resume.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ._config import ComputeConfig, ConfigError
from ._malloc import (MALLOC_ARENA_MAX, limit_malloc_arenas,
                      tune_worker_malloc)

__all__ = ["CLUSTER_DASK_CONFIG", "MALLOC_ARENA_MAX", "WorkerLostError", "limit_malloc_arenas",
           "local_dask", "make_cluster", "open_client", "run_tasks", "worker_env"]

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_EXTRA = {"slurm": ("dask_jobqueue", "cluster"), "cuda": ("dask_cuda", "cuda-cluster")}


class WorkerLostError(RuntimeError):
    """Dask gave up a chunk task after the worker(s) running it died."""


def uses_cluster(cfg: ComputeConfig) -> bool:
    """Chunk tasks run on dask workers (a cluster or a scheduler address), not in
    this process."""
    return cfg.cluster != "none" or cfg.scheduler != "threads"


def uses_gpu(cfg: ComputeConfig) -> bool:
    """Reconstruction tasks run on a GPU: ``device = "gpu"``, or ``"auto"`` where cupy
    finds one in this process."""
    from .._backend import cupy_available

    return cfg.device == "gpu" or (cfg.device == "auto" and cupy_available())


def _worker_lost(desc: str, exc: BaseException) -> WorkerLostError:
    return WorkerLostError(
        f"{desc}: a dask worker died while running a chunk task and dask gave the task up "
        f"({exc}). The chunks finished before are kept in the store: rerun the same command "
        "to resume. If workers keep dying they may run out of memory: raise [compute] "
        "memory_limit_gb, or lower n_workers or [reconstruct] chunk_rows")


def _import_cluster_module(kind: str):
    module, extra = _EXTRA[kind]
    try:
        return __import__(module)
    except ImportError as exc:
        raise ConfigError(f"[compute] cluster = {kind!r} needs the {module} package: "
                          f"pip install 'spectrotomo[{extra}]' ({exc})") from None


def local_dask():
    """Context in which dask collections compute with the local threaded scheduler.

    Inside a dask.distributed task, ``.compute()`` otherwise goes back to the
    cluster and *secedes* the task's thread, so the worker starts another task:
    one worker would then run several scans (or chunk tasks) at once, beyond
    its threads, its memory plan and its GPU slot.
    """
    import dask

    return dask.config.set(scheduler="threads")


#: dask settings of the scheduler and workers a run starts (``cluster = ...``). Measured
#: on this 2-core VM at load ~18-29, where 2 workers fill the cores and every CPU second
#: of dask's own upkeep is taken from the tasks: the workers' statistical profiler samples
#: each task thread's stack every 10 ms (0.72 -> 0.32 CPU s of worker event loop per 4 CPU s
#: task without it); every dask server checks its event loop's latency every 20 ms (tick):
#: an idle 2-worker cluster used 0.35 (this process) + 0.5 (workers) CPU s per 15 s, 0.22 +
#: 0.22 with both changes. Kept: the dashboard's task stream, progress and memory pages,
#: and the blocked-event-loop warnings (a tick still measures the delay).
CLUSTER_DASK_CONFIG = {"distributed.worker.profile.enabled": False,
                       "distributed.admin.tick.interval": "500ms"}


def _dask_env(config: dict) -> dict[str, str]:
    """``config`` as dask's environment variables (``DASK_A__B__C``), for workers that
    a job script or shell starts (SLURM, ``dask worker``)."""
    return {"DASK_" + k.upper().replace(".", "__").replace("-", "_"): str(v)
            for k, v in config.items()}


def worker_env(threads: int) -> dict[str, str]:
    """Environment of a worker process with ``threads`` task threads.

    Each task's FFT/NUFFT pool sizes itself from ``OMP_NUM_THREADS``
    (``host_threads``): one pool thread per worker thread, so workers do not
    oversubscribe the cores; BLAS likewise (distributed's pre-spawn default is 1
    whatever ``threads_per_worker``); ``MALLOC_ARENA_MAX`` (this process's value,
    else :data:`MALLOC_ARENA_MAX`; glibc reads it when the worker starts); plus
    :data:`CLUSTER_DASK_CONFIG` as dask's environment variables.
    """
    import os

    arenas = os.environ.get("MALLOC_ARENA_MAX", str(MALLOC_ARENA_MAX))
    return {**{k: str(threads) for k in _THREAD_ENV}, "MALLOC_ARENA_MAX": arenas,
            **_dask_env(CLUSTER_DASK_CONFIG)}


def make_cluster(cfg: ComputeConfig):
    """The dask cluster that ``[compute] cluster`` names (not yet scaled for slurm).

    Parameters
    ----------
    cfg : ComputeConfig
        ``cluster`` one of local | slurm | cuda; ``n_workers``,
        ``threads_per_worker`` and ``memory_limit_gb`` (GiB per worker).
    """
    import dask

    memory = f"{cfg.memory_limit_gb:g}GiB"
    threads = cfg.threads_per_worker
    env = worker_env(threads)
    if cfg.cluster == "local":
        from distributed import LocalCluster

        # the scheduler (in this process) reads it now, the nannies pass it on
        with dask.config.set(CLUSTER_DASK_CONFIG):
            return LocalCluster(n_workers=cfg.n_workers, threads_per_worker=threads,
                                memory_limit=memory, processes=True, env=env,
                                dashboard_address=":0")
    if cfg.cluster == "slurm":
        jobqueue = _import_cluster_module("slurm")
        return jobqueue.SLURMCluster(cores=threads, processes=1, memory=memory,
                                     job_script_prologue=[f"export {k}={v}"
                                                          for k, v in env.items()])
    if cfg.cluster == "cuda":
        dask_cuda = _import_cluster_module("cuda")
        with dask.config.set(CLUSTER_DASK_CONFIG):
            return dask_cuda.LocalCUDACluster(threads_per_worker=threads, memory_limit=memory,
                                              env=env, dashboard_address=":0")
    raise ConfigError(f"[compute] cluster must be one of none, local, slurm, cuda; "
                      f"got {cfg.cluster!r}")


@contextmanager
def _environ_kept():
    """Restore this process's environment after starting local workers.

    distributed's nanny sets the workers' variables (``OMP_NUM_THREADS=1``, ...) in
    *this* process's ``os.environ`` to pass them on, and leaves them there: the steps
    that run here afterwards (valence, segment, profile, report) would then size their
    thread pools (host_threads) to one thread.
    """
    import os

    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def open_client(cfg: ComputeConfig, log: Callable[[str], None] = print) -> Iterator[Any]:
    """Yield a ``distributed.Client`` for ``cfg``, or ``None`` to run in-process.

    A cluster started here is closed on exit; a client of an external scheduler
    is closed, the scheduler is left running. The connected workers are warmed
    (imports, first calls: :func:`~spectrotomo.pipeline._warm.warm_workers`) while
    the caller goes on.
    """
    if cfg.scheduler != "threads" and cfg.cluster != "none":
        raise ConfigError("[compute] give either scheduler (an address) or cluster, not both; "
                          f"got scheduler = {cfg.scheduler!r}, cluster = {cfg.cluster!r}")
    if cfg.scheduler == "threads" and cfg.cluster == "none":
        yield None
        return
    from distributed import Client

    cluster = None
    # set_as_default=False: this process's own dask work (whole-volume steps)
    # stays on the local scheduler instead of shipping the volume through workers
    if cfg.scheduler != "threads":
        client = Client(cfg.scheduler, set_as_default=False)
        where = f"scheduler {cfg.scheduler}"
    else:
        with _environ_kept():
            cluster = make_cluster(cfg)
        if cfg.cluster == "slurm":
            cluster.scale(jobs=cfg.n_workers)
        client = Client(cluster, set_as_default=False)
        where = f"{cfg.cluster} cluster"
    try:
        n = len(client.scheduler_info().get("workers", {}))
        log(f"compute: {where}, {n} worker(s) connected, dashboard {client.dashboard_link}")
        from ._warm import warm_workers

        warm = warm_workers(client)  # noqa: F841 - held: a released future is cancelled
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_tasks(client, fn: Callable, items: Iterable, *, desc: str,
              log: Callable[[str], None] | None = None, threads: int = 1, **kwargs) -> list:
    """Run ``fn(item, **kwargs)`` for every item, with a progress bar on a
    terminal, else one ``log`` line per ~10 % of the tasks
    (:class:`~spectrotomo.pipeline._monitor.Progress`); returns the results in
    item order.

    With ``client=None`` the items run in this process: one after the other, or
    ``threads`` at a time in a thread pool (for tasks whose own parallelism leaves
    cores idle; the caller plans their memory x ``threads``); otherwise each is one task on the cluster (``pure=False``: a rerun after a
    failure recomputes). The first failing task's exception is raised and the
    other tasks are cancelled; a task given up after its workers died raises
    :class:`WorkerLostError` (``distributed.KilledWorker`` reworded).
    """
    from ._monitor import Progress

    items = list(items)
    bar = Progress(len(items), desc, log=log)
    try:
        if client is None and threads > 1 and len(items) > 1:
            return _run_threaded(fn, items, min(int(threads), len(items)), bar, kwargs)
        if client is None:
            results = []
            for item in items:
                results.append(fn(item, **kwargs))
                bar.update()
            return results
        futures = [client.submit(_without_nested_tasks, fn, item, pure=False,
                                 key=f"{fn.__name__}-{uuid.uuid4().hex}", **kwargs)
                   for item in items]
        return _gather_releasing(client, futures, bar, desc)
    finally:
        bar.close()


def _run_threaded(fn: Callable, items: list, threads: int, bar, kwargs: dict) -> list:
    """``fn(item, **kwargs)`` for every item on ``threads`` threads of this process;
    results in item order. The first failure is raised once the running tasks end;
    the tasks not started are cancelled."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(threads, thread_name_prefix="spectrotomo-task") as pool:
        futures = [pool.submit(fn, item, **kwargs) for item in items]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                if future.exception() is not None:
                    for other in pending:
                        other.cancel()
                    raise future.exception()
                bar.update()
    return [f.result() for f in futures]


def _gather_releasing(client, futures: list, bar, desc: str) -> list:
    """Each future's result as it finishes, then the future released.

    A finished task's result is otherwise held by its worker until all are
    gathered, and a worker that dies takes those results with it: dask then
    recomputes every task it had finished (rewriting chunks already written).
    Released, a finished task is forgotten and only the running ones are retried.
    """
    from distributed import KilledWorker, as_completed

    index = {f.key: i for i, f in enumerate(futures)}
    results = [None] * len(futures)
    pending = as_completed(futures, loop=client.loop)  # not the default client
    futures.clear()  # as_completed holds the only references now
    try:
        for future in pending:
            results[index[future.key]] = future.result()
            future.release()
            bar.update()
    except BaseException as exc:
        client.cancel(list(pending.futures))
        if isinstance(exc, KilledWorker):
            raise _worker_lost(desc, exc) from None
        raise
    return results


def _without_nested_tasks(fn: Callable, item, **kwargs):
    tune_worker_malloc()  # on the worker: undo the nanny's per-array mmap (see _malloc)
    with local_dask():
        return fn(item, **kwargs)
