"""Import smoke for the device run: versions, every spectrotomo module, the GPU peers.

Prints one line per item (OK / MISSING / FAIL, with the reason) and exits 0 unless a
spectrotomo module or a required dependency fails to import. Run with
PYTHONPATH=<carried wheels>:src.

    python gpu_bench/device/smoke.py
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback

REQUIRED = ["numpy", "scipy", "xarray", "zarr", "numcodecs", "dask", "distributed", "h5py",
            "tifffile", "skimage", "matplotlib", "xraydb", "finufft", "pywt", "olefile",
            "psutil", "yaml", "tqdm"]
OPTIONAL = ["cupy", "cufinufft", "astra", "nabu", "tomopy"]


def _version(mod) -> str:
    return str(getattr(mod, "__version__", "?"))


def check_imports() -> int:
    bad = 0
    print(f"python {sys.version.split()[0]} at {sys.executable}")
    for name in REQUIRED + OPTIONAL:
        try:
            mod = importlib.import_module(name)
            print(f"OK      {name} {_version(mod)} ({getattr(mod, '__file__', '')})")
        except Exception as exc:  # ImportError, OSError from a missing CUDA library, ...
            req = name in REQUIRED
            bad += req
            print(f"{'FAIL' if req else 'MISSING'} {name}: {type(exc).__name__}: "
                  f"{str(exc).splitlines()[0] if str(exc) else ''}")
    import spectrotomo

    n = 0
    for info in pkgutil.walk_packages(spectrotomo.__path__, "spectrotomo."):
        if info.name.endswith("__main__"):  # runs the CLI
            continue
        try:
            importlib.import_module(info.name)
            n += 1
        except Exception:
            bad += 1
            print(f"FAIL    {info.name}:\n{traceback.format_exc()}")
    print(f"OK      {n} spectrotomo modules imported")
    return bad


def check_gpu() -> None:
    from spectrotomo._backend import astra_cuda_available, cupy_available

    if not cupy_available():
        print("GPU     cupy cannot allocate on a CUDA device: GPU checks will skip")
        return
    import cupy as cp

    p = cp.cuda.runtime.getDeviceProperties(0)
    print(f"GPU     {p['name'].decode()}, cc {p['major']}.{p['minor']}, "
          f"{p['totalGlobalMem'] / 2**30:.0f} GiB, cupy {cp.__version__}, "
          f"CUDA runtime {cp.cuda.runtime.runtimeGetVersion()}, "
          f"driver {cp.cuda.runtime.driverGetVersion()}")
    try:  # a tiny type-1 2-D transform against finufft on the host
        import cufinufft
        import finufft
        import numpy as np

        rng = np.random.default_rng(0)
        x, y = (rng.uniform(-np.pi, np.pi, 500).astype(np.float32) for _ in range(2))
        c = (rng.standard_normal(500) + 1j * rng.standard_normal(500)).astype(np.complex64)
        ref = finufft.nufft2d1(x.astype(np.float64), y.astype(np.float64),
                               c.astype(np.complex128), (32, 32), eps=1e-12,
                               isign=-1)  # finufft's type-1 default is +1
        plan = cufinufft.Plan(1, (32, 32), n_trans=1, eps=1e-5, isign=-1, dtype="complex64")
        plan.setpts(cp.asarray(x), cp.asarray(y))
        got = plan.execute(cp.asarray(c)).get()
        err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        print(f"{'OK' if err < 1e-4 else 'FAIL':7s} cufinufft {cufinufft.__version__} type-1 2-D "
              f"vs finufft: rel. error {err:.1e}")
    except Exception as exc:
        print(f"MISSING cufinufft unusable: {type(exc).__name__}: {exc}")
    print(f"{'OK' if astra_cuda_available() else 'MISSING':7s} ASTRA CUDA "
          f"({'astra.use_cuda() true' if astra_cuda_available() else 'no FBP_CUDA comparison'})")


if __name__ == "__main__":
    failures = check_imports()
    check_gpu()
    sys.exit(1 if failures else 0)
