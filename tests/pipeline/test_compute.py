"""Chunk tasks on a dask cluster: same store as in-process, bounded per-task input,
resumable quantification, cluster configuration errors."""

import shutil

import numpy as np
import pytest

from spectrotomo import io
from spectrotomo.pipeline import Config, ConfigError, run_pipeline
from spectrotomo.pipeline._compute import make_cluster, open_client
from spectrotomo.pipeline._config import config_from_dict
from spectrotomo.spectra import element_maps


def _config(store, algorithm="auto", **compute):
    return config_from_dict({"input": {"path": "simulate:tiny"}, "output": {"store": str(store)},
                             "preprocess": {"align": False},
                             "reconstruct": {"chunk_rows": 8, "algorithm": algorithm},
                             "compute": compute})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A store after preprocess, and the same store reconstructed + quantified here."""
    root = tmp_path_factory.mktemp("compute")
    base = root / "base.zarr"
    run_pipeline(_config(base), steps=["acquire", "preprocess"], log=lambda m: None)
    local = root / "local.zarr"
    shutil.copytree(base, local)
    run_pipeline(_config(local), steps=["reconstruct", "quantify"], log=lambda m: None)
    return root, base, local


def _arrays(store, group):
    ds = io.read_group(store, group).load()
    return {name: ds[name].values for name in ds.data_vars}


def _assert_same_group(a, b, group):
    left, right = _arrays(a, group), _arrays(b, group)
    assert left.keys() == right.keys()
    for name in left:
        assert left[name].dtype == right[name].dtype, name
        assert np.array_equal(left[name], right[name], equal_nan=True), f"{group}/{name}"


def test_local_cluster_writes_the_same_store(prepared):
    root, base, local = prepared
    store = root / "cluster.zarr"
    shutil.copytree(base, store)
    lines = []
    result = run_pipeline(_config(store, cluster="local", n_workers=2, memory_limit_gb=2.0),
                          steps=["reconstruct", "quantify"], log=lines.append)
    assert any("local cluster, 2 worker(s)" in ln for ln in lines)
    for group in ("recon", "chemistry"):
        assert io.is_complete(store, group)
        _assert_same_group(local, store, group)
    chem_a = io.read_group(local, "chemistry")
    chem_b = io.read_group(store, "chemistry")
    assert chem_a.attrs["n_masked"] == chem_b.attrs["n_masked"]
    records = {r.name: r for r in result["records"]}
    # the workers are child processes: their memory is sampled too
    assert records["reconstruct"].peak_worker_rss_gib > 0.02
    assert "peak worker RSS" in records["reconstruct"].line()


def test_chunked_quantify_equals_whole_volume_element_maps(prepared):
    _, _, local = prepared
    mu = io.read_group(local, "recon")["mu"].load()
    chem = io.read_group(local, "chemistry").load()
    params = __import__("json").loads(chem.attrs["provenance"])[-1]["parameters"]
    pairs = {el: tuple(p) for el, p in params["pairs"].items()}
    tied = {el: tuple(t) for el, t in params["tied"].items()}  # Li from the sample formula
    assert tied
    whole = element_maps(mu, pairs=pairs, tied=tied, threshold=-np.inf)
    for name in whole.data_vars:
        assert np.array_equal(whole[name].values, chem[name].values, equal_nan=True), name
    assert chem.attrs["n_masked"] == whole.attrs["n_masked"]
    assert chem.attrs["tm_o_ratio_n_masked"] == whole.attrs["tm_o_ratio_n_masked"]
    assert chem["amount"].attrs["units"] == "1/nm^3"
    assert list(chem["element"].values) == list(whole["element"].values)


def test_quantify_resumes_only_missing_slabs(prepared):
    root, _, local = prepared
    store = root / "resume.zarr"
    shutil.copytree(local, store)
    io._markers.set_marker(store, "chemistry", state="writing")  # as if killed
    marks = io._markers.done_dir(store, "chemistry", "tm_o_ratio")
    kept = sorted(marks.iterdir())
    before = {p.name: p.stat().st_mtime_ns for p in kept[1:]}
    kept[0].unlink()  # the first slab of one array was not written
    lines = []
    run_pipeline(_config(store), steps=["quantify"], log=lines.append)
    n = len(kept)
    assert any(f"resuming, {n - 1} of {n} chunks already written" in ln for ln in lines), lines
    assert {p.name: p.stat().st_mtime_ns for p in sorted(marks.iterdir())[1:]} == before
    _assert_same_group(local, store, "chemistry")


def _input_shapes(monkeypatch, name: str) -> list:
    """Shapes of the first argument of every call of ``spectrotomo.recon.<name>``."""
    import spectrotomo.recon

    seen, real = [], getattr(spectrotomo.recon, name)

    def spy(data, *args, **kwargs):
        seen.append(data.shape)
        return real(data, *args, **kwargs)

    monkeypatch.setattr(spectrotomo.recon, name, spy)
    return seen


def test_reconstruct_task_reads_only_its_rows(prepared, monkeypatch):
    """Each FBP task's sinogram is one row chunk of one energy: memory per task is
    bounded by the chunk."""
    root, base, _ = prepared
    store = root / "rows.zarr"
    shutil.copytree(base, store)
    seen = _input_shapes(monkeypatch, "reconstruct")
    run_pipeline(_config(store, algorithm="fbp"), steps=["reconstruct"], log=lambda m: None)
    n_e, n_a, ny, nx = io.read_group(store, "od")["od"].shape
    assert len(seen) == n_e * -(-ny // 8)
    assert all(s[0] == n_a and s[1] <= 8 and s[2] == nx for s in seen)
    assert io.read_group(store, "recon")["mu"].attrs["algorithm"] == "fbp"


def test_joint_task_reads_one_row_chunk_of_every_energy(prepared, monkeypatch):
    """"auto" on a -65..+65 deg scan is the joint solver: one task per row chunk,
    every energy of those rows, and the same result as the whole run's."""
    root, base, _ = prepared
    store = root / "joint-rows.zarr"
    shutil.copytree(base, store)
    seen = _input_shapes(monkeypatch, "reconstruct_joint")
    run_pipeline(_config(store), steps=["reconstruct"], log=lambda m: None)
    n_e, n_a, ny, nx = io.read_group(store, "od")["od"].shape
    assert len(seen) == -(-ny // 8)
    assert all(s[:2] == (n_e, n_a) and s[2] <= 8 and s[3] == nx for s in seen)
    recon = io.read_group(store, "recon")["mu"]
    assert recon.attrs["algorithm"] == "joint" and recon.attrs["algorithm_requested"] == "auto"
    _assert_same_group(prepared[2], store, "recon")


def test_scheduler_and_cluster_together_refused():
    with pytest.raises(ConfigError, match="either scheduler"):
        config_from_dict({"compute": {"scheduler": "tcp://127.0.0.1:1", "cluster": "local"}})
    cfg = Config()  # built in Python, unvalidated: refused when the client opens
    cfg.compute.scheduler, cfg.compute.cluster = "tcp://127.0.0.1:1", "local"
    with pytest.raises(ConfigError, match="either scheduler"):
        with open_client(cfg.compute):
            pass


@pytest.mark.parametrize("section, match", [
    ({"scheduler": "localhost"}, "scheduler must be"),
    ({"cluster": "kubernetes"}, "cluster must be one of"),
    ({"threads_per_worker": 0}, "threads_per_worker must be >= 1"),
])
def test_compute_config_errors(section, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"compute": section}, source="run.toml")


def test_missing_cluster_extra_names_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_jobqueue(name, *args, **kwargs):
        if name == "dask_jobqueue":
            raise ImportError("No module named 'dask_jobqueue'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jobqueue)
    cfg = config_from_dict({"compute": {"cluster": "slurm"}})
    with pytest.raises(ConfigError, match=r"spectrotomo\[cluster\]"):
        make_cluster(cfg.compute)


def test_slurm_job_script_carries_worker_limits():
    import os

    pytest.importorskip("dask_jobqueue")
    cfg = config_from_dict({"compute": {"cluster": "slurm", "threads_per_worker": 4,
                                        "memory_limit_gb": 6}})
    cluster = make_cluster(cfg.compute)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --cpus-per-task=4" in script
    assert "export OMP_NUM_THREADS=4" in script
    assert "--memory-limit 6.00GiB" in script and "#SBATCH --mem=6G" in script
    assert "export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False" in script
    assert "export DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL=500ms" in script
    assert f"export MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', '1')}" in script


def test_local_cluster_workers_get_threads_and_no_profiler():
    """Workers of ``cluster = "local"``: OMP/BLAS threads = threads_per_worker, the
    statistical profiler off and a 500 ms event-loop tick (dask's upkeep takes CPU from
    the tasks when the workers fill the cores), and
    this process's environment and dask config unchanged."""
    import os
    import platform

    import dask

    from spectrotomo.pipeline import _malloc
    from spectrotomo.pipeline._compute import _without_nested_tasks

    pytest.importorskip("distributed")  # its config defaults (the test alone: not loaded yet)

    before = (dict(os.environ), dask.config.get("distributed.worker.profile.enabled"))
    cfg = config_from_dict({"compute": {"cluster": "local", "n_workers": 1,
                                        "threads_per_worker": 2, "memory_limit_gb": 1}})
    with open_client(cfg.compute, log=lambda m: None) as client:
        seen = client.run(lambda: (dask.config.get("distributed.worker.profile.enabled"),
                                   dask.config.get("distributed.admin.tick.interval"),
                                   os.environ["OMP_NUM_THREADS"],
                                   os.environ["OPENBLAS_NUM_THREADS"],
                                   os.environ["MALLOC_ARENA_MAX"]))
        tuned = client.submit(_without_nested_tasks, lambda _: _malloc._malloc_tuned,
                              0).result()  # a task tunes its worker's malloc
    arenas = os.environ.get("MALLOC_ARENA_MAX", "1")  # ours, unless the caller set one
    assert list(seen.values()) == [(False, "500ms", "2", "2", arenas)]
    assert tuned == (platform.libc_ver()[0] == "glibc")
    assert (dict(os.environ), dask.config.get("distributed.worker.profile.enabled")) == before


_ARENAS = """
import ctypes, sys, tempfile, threading
from spectrotomo.pipeline._compute import limit_malloc_arenas
print(limit_malloc_arenas() if sys.argv[1] == "limit" else None)
barrier = threading.Barrier(4)

def allocate():  # blocks below glibc's 128 KiB mmap threshold come from the thread's arena
    keep = [bytearray(65536) for _ in range(16)]
    barrier.wait()

threads = [threading.Thread(target=allocate) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile() as out:
    fp = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(fp))
    libc.fclose(ctypes.c_void_p(fp))
    print(open(out.name).read().count("<heap nr="))
"""


def test_limit_malloc_arenas_makes_threads_share_one_arena():
    """The pipeline's allocator cap: 4 threads allocating at once use 1 glibc arena
    (without it, one each); a MALLOC_ARENA_MAX in the environment is left to glibc."""
    import os
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}

    def arenas(mode, **extra):
        out = subprocess.run([sys.executable, "-c", _ARENAS, mode], env={**env, **extra},
                             capture_output=True, text=True, check=True).stdout.split()
        return out[0], int(out[1])

    assert arenas("limit") == ("True", 1)
    assert arenas("default")[1] >= 4
    assert arenas("limit", MALLOC_ARENA_MAX="3") == ("False", 3)



def test_run_pipeline_caps_arenas_before_reading_the_store(monkeypatch, tmp_path):
    """The cap comes first: the checks' store reads start zarr's I/O threads, whose arenas
    every later thread would be handed (the profile step's peak, 256^3: 0.38 vs 0.29 GiB)."""
    from spectrotomo.pipeline import _run

    calls = []

    def validate(*args, **kwargs):
        calls.append("validate")
        raise RuntimeError("stop here")

    monkeypatch.setattr(_run, "limit_malloc_arenas", lambda: calls.append("limit"))
    monkeypatch.setattr(_run, "validate_run", validate)
    cfg = Config()
    cfg.output.store = str(tmp_path / "sample.zarr")
    with pytest.raises(RuntimeError, match="stop here"):
        run_pipeline(cfg, steps=["segment"], log=lambda m: None)
    assert calls == ["limit", "validate"]


_FAULTS = """
import resource, sys
import numpy as np
from spectrotomo.pipeline._compute import tune_worker_malloc
print(tune_worker_malloc() if sys.argv[1] == "tune" else None)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):  # a 1 MiB work array made, filled and freed, as a solver loop does
    np.ones(2**18, np.float32).sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_worker_malloc_keeps_work_arrays_mapped():
    """Under distributed's worker environment (MALLOC_TRIM_THRESHOLD_=65536, which pins
    glibc's mmap threshold at 128 KiB) every 1 MiB array is mapped and page-faulted in
    afresh; the tasks' tune_worker_malloc (mmap threshold 32 MiB) reuses the heap: a
    joint reconstruction cost 56 s of system CPU there, 13 s tuned."""
    import os
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}

    def faults(mode):
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], env=env,
                             capture_output=True, text=True, check=True).stdout.split()
        return out[0], int(out[1])

    tuned, untuned = faults("tune"), faults("none")
    assert tuned[0] == "True" and untuned[0] == "None"
    assert untuned[1] > 200 * 200  # ~256 pages per array
    assert tuned[1] < untuned[1] / 10, (tuned, untuned)


def test_cli_scheduler_address_runs_the_chunk_tasks_there(prepared, tmp_path, capsys):
    from distributed import Client, LocalCluster

    from spectrotomo.cli import main

    root, base, local = prepared
    store = tmp_path / "addr.zarr"
    shutil.copytree(base, store)
    config = tmp_path / "run.toml"
    config.write_text(f'[input]\npath = "simulate:tiny"\n[output]\nstore = "{store}"\n'
                      '[preprocess]\nalign = false\n[reconstruct]\nchunk_rows = 8\n')
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        assert main(["reconstruct", str(config), "--scheduler", cluster.scheduler_address]) == 0
        # the tasks ran on the cluster's worker, not in this call's own loop
        assert client.run_on_scheduler(
            lambda dask_scheduler: sum(1 for t in dask_scheduler.task_prefixes
                                       if t.startswith(("reconstruct_region",
                                                         "reconstruct_rows")))) == 1
    assert f"scheduler {cluster.scheduler_address}" in capsys.readouterr().out
    _assert_same_group(local, store, "recon")


def test_cli_two_worker_local_cluster_runs_end_to_end(prepared, tmp_path, capsys):
    """``spectrotomo run CONFIG --cluster local --n-workers 2``: every step from the
    simulator to the report, the chunk steps on two worker processes, the same
    store as the in-process run."""
    from spectrotomo.cli import main

    root, base, local = prepared
    store = tmp_path / "two.zarr"
    config = tmp_path / "run.toml"
    config.write_text(f'[input]\npath = "simulate:tiny"\n[output]\nstore = "{store}"\n'
                      'figures = false\n[preprocess]\nalign = false\n'
                      '[reconstruct]\nchunk_rows = 8\n')
    assert main(["run", str(config), "--cluster", "local", "--n-workers", "2",
                 "--threads-per-worker", "1", "--memory-limit-gb", "2"]) == 0
    out = capsys.readouterr().out
    assert "local cluster, 2 worker(s) connected" in out
    assert all(io.is_complete(store, g) for g in
               ("raw", "od", "recon", "chemistry", "segmentation", "profiles"))
    for group in ("od", "recon", "chemistry"):
        _assert_same_group(local if group != "od" else base, store, group)
    summary = __import__("json").loads((tmp_path / "two-report" / "summary.json").read_text())
    assert summary["errors_vs_truth"]["mask_iou"] > 0.5
    # the workers' CPU time is counted in the chunk steps' record lines
    assert any(ln.startswith("reconstruct ") and "cpu/wall" in ln for ln in out.splitlines())


def test_device_auto_without_gpu_is_the_cpu_store_and_gpu_is_refused(prepared, monkeypatch):
    from spectrotomo.pipeline.steps import reconstruct as _chunked

    root, base, local = prepared
    monkeypatch.setattr(_chunked, "cupy_available", lambda: False)
    auto = root / "auto.zarr"
    shutil.copytree(base, auto)
    cfg = _config(auto)
    cfg.compute.device = "auto"
    run_pipeline(cfg, steps=["reconstruct"], log=lambda m: None)
    _assert_same_group(local, auto, "recon")
    gpu = root / "gpu.zarr"
    shutil.copytree(base, gpu)
    cfg = _config(gpu)
    cfg.compute.device = "gpu"
    # refused at plan time (ConfigError) where cupy sees no GPU, else by the task
    with pytest.raises((ConfigError, RuntimeError), match="no usable CUDA device"):
        run_pipeline(cfg, steps=["reconstruct"], log=lambda m: None)
    assert not io.is_complete(gpu, "recon")


def test_plan_shows_gpu_memory_only_for_gpu_runs():
    from spectrotomo.pipeline._plan import format_plan, plan_run

    shape = dict(n_energies=8, n_angles=131, ny=128, nx=128, chunk_rows=16)
    assert "GPU/task" not in format_plan(plan_run(**shape))
    rows = plan_run(**shape, gpu=True)
    assert "GPU/task" in next(r for r in rows if r.step == "reconstruct").line()


@pytest.mark.gpu
def test_gpu_reconstruction_tasks_match_cpu(prepared):
    root, base, local = prepared
    store = root / "on_gpu.zarr"
    shutil.copytree(base, store)
    cfg = _config(store)
    cfg.compute.device = "gpu"
    run_pipeline(cfg, steps=["reconstruct"], log=lambda m: None)
    cpu = io.read_group(local, "recon")["mu"].values
    gpu = io.read_group(store, "recon")["mu"].values
    assert np.abs(gpu - cpu).max() <= 2e-3 * np.abs(cpu).max()  # as the FBP parity test


def test_run_tasks_on_threads_keeps_order_and_raises_the_first_failure():
    import threading
    import time

    from spectrotomo.pipeline._compute import run_tasks

    names = set()

    def task(item, *, scale):
        names.add(threading.current_thread().name)
        time.sleep(0.02 * (3 - item % 3))  # finish out of order
        if item == 4:
            raise ValueError("task 4 failed")
        return item * scale

    assert run_tasks(None, task, range(4), desc="t", log=lambda m: None, threads=2,
                     scale=10) == [0, 10, 20, 30]
    assert len({n for n in names if n.startswith("spectrotomo-task")}) == 2
    with pytest.raises(ValueError, match="task 4 failed"):
        run_tasks(None, task, range(8), desc="t", log=lambda m: None, threads=2, scale=1)


def test_joint_chunks_at_once_write_the_serial_store(prepared, monkeypatch):
    """Two joint chunk solves at once in this process (the default without a cluster)
    give the store one at a time gives, bit for bit."""
    from spectrotomo.pipeline.steps import reconstruct as recon_step

    root, base, _ = prepared
    stores = {}
    for at_once in (1, 2):
        monkeypatch.setattr(recon_step, "JOINT_TASKS_AT_ONCE", at_once)
        monkeypatch.setattr(recon_step, "host_threads", lambda: 2)
        stores[at_once] = store = root / f"at-once-{at_once}.zarr"
        shutil.copytree(base, store)
        run_pipeline(_config(store), steps=["reconstruct"], log=lambda m: None)
    _assert_same_group(stores[1], stores[2], "recon")


def _spy_writes(monkeypatch) -> list:
    """(group, name, chunk indices) of every ``io.write_region`` call (any thread)."""
    import itertools

    seen, real = [], io.write_region

    def spy(store, group, name, region, data):
        real(store, group, name, region, data)
        chunks = io.stored_chunks(store, group, name)
        shape = np.shape(data)
        starts = [sl.start or 0 for sl in region] + [0] * (len(shape) - len(region))
        ranges = [range(s // c, -(-(s + n) // c)) for s, n, c in zip(starts, shape, chunks)]
        seen.append((group, name, list(itertools.product(*ranges))))

    monkeypatch.setattr(io, "write_region", spy)
    return seen


@pytest.mark.parametrize("algorithm", ["auto", "fbp"])
def test_tiled_chunks_one_writer_per_chunk_and_the_same_store(prepared, monkeypatch, algorithm):
    """Volume chunks of one energy / element x rows x a 16 px y/x tile (2 x 2 tiles of the
    32^2 plane): the tasks still write whole slabs of rows, every chunk by exactly one
    write (two tasks writing one chunk would race), and the arrays equal the untiled
    run's."""
    from spectrotomo.pipeline.steps import _layout

    root, base, local = prepared
    untiled = root / f"untiled-{algorithm}.zarr"
    if algorithm != "auto":  # the fixture's store is the joint ("auto") solve's
        shutil.copytree(base, untiled)
        run_pipeline(_config(untiled, algorithm), steps=["reconstruct"], log=lambda m: None)
    else:
        untiled = local
    store = root / f"tiled-{algorithm}.zarr"
    shutil.copytree(base, store)
    monkeypatch.setattr(_layout, "TILE_PX", 16)
    writes = _spy_writes(monkeypatch)
    run_pipeline(_config(store, algorithm), steps=["reconstruct", "quantify"],
                 log=lambda m: None)
    assert io.stored_chunks(store, "recon", "mu") == (1, 8, 16, 16)
    assert io.stored_chunks(store, "chemistry", "amount") == (1, 8, 16, 16)
    for group, name in {(g, n) for g, n, _ in writes}:
        written = [c for g, n, cs in writes if (g, n) == (group, name) for c in cs]
        assert len(written) == len(set(written)), f"{group}/{name}: a chunk written twice"
        grid = [range(-(-s // c)) for s, c in zip(io.read_group(store, group)[name].shape,
                                                   io.stored_chunks(store, group, name))]
        assert len(written) == int(np.prod([len(r) for r in grid])), f"{group}/{name}"
    # one write per task: a slab of rows spans the 2 x 2 tiles of its chunks
    assert all(len(cs) >= 4 for g, _, cs in writes if g == "recon")
    _assert_same_group(untiled, store, "recon")
    if algorithm == "auto":
        _assert_same_group(local, store, "chemistry")


def test_readers_of_tiled_chunks_give_the_same_results(prepared, monkeypatch, tmp_path):
    """segment's and profile's block reads and the report's planes, samples and block sums
    across 16 px y/x tiles: the same segmentation, profiles and summary as whole planes."""
    import json

    from spectrotomo.pipeline.steps import _layout

    root, base, local = prepared
    steps = ["segment", "profile", "report"]

    def config(store):
        cfg = _config(store)
        cfg.output.figures = False  # the tiny preset's profile plots warn (no labelled lines)
        return cfg

    untiled = tmp_path / "untiled.zarr"
    shutil.copytree(local, untiled)
    run_pipeline(config(untiled), steps=steps, log=lambda m: None,
                 report_dir=tmp_path / "untiled-report")
    tiled = tmp_path / "tiled.zarr"
    shutil.copytree(base, tiled)
    monkeypatch.setattr(_layout, "TILE_PX", 16)
    run_pipeline(config(tiled), steps=["reconstruct", "quantify", *steps], log=lambda m: None,
                 report_dir=tmp_path / "tiled-report")
    assert io.stored_chunks(tiled, "chemistry", "amount") == (1, 8, 16, 16)
    for group in ("segmentation", "profiles"):
        _assert_same_group(untiled, tiled, group)

    def summary(name):
        text = (tmp_path / f"{name}-report" / "summary.json").read_text()
        return json.loads(text.replace(str(tmp_path / f"{name}.zarr"), "STORE"))

    assert summary("tiled") == summary("untiled")
