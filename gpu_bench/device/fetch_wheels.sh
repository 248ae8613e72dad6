#!/usr/bin/env bash
# Run on the CPU machine (PyPI reachable), from anywhere: fills <repo>/.whl/ with
# what the device machine (Python 3.12, x86-64, CUDA 13; package list in
# .library/device/KINDS.md) lacks for `pytest -m gpu` and the GPU benchmarks.
# .whl/ is git-ignored; it travels with `run(carry=[".whl"])` (64 MiB cap in all).
#
# Runtime dependencies that the device lacks, resolved by hand with --no-deps
# (each wheel's Requires-Dist checked against the device's list; already there:
# numpy scipy xarray h5py scikit-image tifffile matplotlib tqdm psutil pyyaml
# click cloudpickle fsspec jinja2 msgpack packaging sortedcontainers toolz
# typing-extensions urllib3 pytest pytest-timeout). Versions = the dev venv's.
#
# Not carried, on purpose:
#  * astra-toolbox: the PyPI wheel (14 MB) links libcudart.so.12 + libcufft.so.11,
#    i.e. needs nvidia-cuda-runtime-cu12 and nvidia-cufft-cu12 (~280 MB unpacked)
#    that a CUDA-13 machine lacks: over the cap. The checks say "ASTRA CUDA not
#    available" and go on.
#  * the cufinufft wheel: 114 MB (fat binary for all archs) and also CUDA 12
#    (libcudart.so.12, libcufft.so.11). Instead its sdist (0.3 MB) is carried and
#    build_cufinufft.sh compiles it for sm_90 against CUDA 13: here with PREBUILD=1
#    (carried as .whl/cufinufft-sm90.tar.gz), else there, in the background.
#  * importlib_metadata (dask needs it only below Python 3.12), greenlet (asyncio only).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=$root/.whl
git -C "$root" check-ignore -q .whl/x || { echo ".whl/ is not git-ignored" >&2; exit 1; }
mkdir -p "$dest/src"
py=${PYTHON:-python3}
plat=(--only-binary=:all: --python-version 3.12 --implementation cp
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
      --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64)
wheels=(
    zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0   # store
    dask==2026.8.0 distributed==2026.8.0 partd==1.4.2 locket==1.0.0          # dask
    tblib==3.2.2 tornado==6.6.1 zict==3.0.0
    xraydb==4.5.8 SQLAlchemy==2.1.9 platformdirs==4.14.9                      # cross sections
    finufft==2.5.1                                                            # CPU reference FBP
    olefile==0.47 PyWavelets==1.9.0                                           # Xradia, rings
    connected-components-3d==4.1.1 edt==3.1.2                                 # segmentation
    # not ducc0 (15 MB: the 64 MiB limit): recon/_toeplitz.py falls back to scipy.fft
)
"$py" -m pip download -q --no-deps "${plat[@]}" -d "$dest" "${wheels[@]}"
"$py" -m pip download -q --no-deps --no-binary cufinufft -d "$dest/src" cufinufft==2.5.1
# one version of each (two stop the whole install there)
dups=$(ls "$dest"/*.whl | xargs -n1 basename | cut -d- -f1 | tr A-Z_ a-z- | sort | uniq -d)
[[ -z $dups ]] || { echo "several versions of: $dups (remove the old ones)" >&2; exit 1; }
# cufinufft for sm_90 against CUDA 13, prebuilt here (PREBUILD=1, ~15 min on 2 cores;
# 17 MB library, 13 MB as .whl/cufinufft-sm90.tar.gz). Without CUDA_HOME, a CUDA 13.0
# nvcc + headers + cufft are pip-installed to /tmp/spectrotomo-nvcc13 (~700 MB).
if [[ ${PREBUILD:-0} == 1 ]]; then
    if [[ -z ${CUDA_HOME:-} ]]; then
        tc=/tmp/spectrotomo-nvcc13
        [[ -x $tc/nvidia/cu13/bin/nvcc ]] || "$py" -m pip install -q --target "$tc" \
            "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-cccl==13.0.*" "nvidia-cuda-runtime==13.0.*" \
            "nvidia-cufft==12.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-nvvm==13.0.*"
        export CUDA_HOME=$tc/nvidia/cu13
    fi
    tmp=$(mktemp -d)
    nice bash "$root/gpu_bench/device/build_cufinufft.sh" "$dest"/src/cufinufft-*.tar.gz "$tmp" 90
    tar -czf "$dest/cufinufft-sm90.tar.gz" -C "$tmp" cufinufft
    rm -rf "$tmp"
fi
du -sh "$dest"; ls -l "$dest" "$dest/src"
total=$(du -sm "$dest" | cut -f1)
(( total <= 55 )) || echo "WARNING: .whl is ${total} MiB (> 55): the call's 64 MiB cap includes the repo" >&2
