#!/usr/bin/env bash
# Build libcufinufft.so for one GPU architecture with plain nvcc (no CMake: its
# configure step downloads CPM and CCCL, and the device machine has no network).
#
#   build_cufinufft.sh SDIST_OR_SRC_DIR OUT_DIR [ARCH=90] [JOBS=nproc]
#
# Why: the PyPI cufinufft wheel is 114 MB and links libcudart.so.12 and
# libcufft.so.11 (CUDA 12); the device has CUDA 13 only (libcudart.so.13,
# libcufft.so.12). Built here against CUDA 13, for sm_ARCH only.
# OUT_DIR/cufinufft/ becomes an importable package (the sdist's Python files
# plus the library); put OUT_DIR on PYTHONPATH.
# CUDA: nvcc from $CUDA_HOME/bin or PATH; cufft/cudart from $CUDA_HOME/lib{64,}
# or $CUFFT_ROOT/lib (headers from $CUFFT_ROOT/include).
set -euo pipefail
src=${1:?source dir or cufinufft-*.tar.gz}; out=${2:?out dir}; arch=${3:-90}
jobs=${4:-$(nproc)}; ((jobs >= 1)) || jobs=1  # xargs -P 0 would start them all at once
mkdir -p "$out"; out=$(cd "$out" && pwd)
if [[ -f $src ]]; then
    tar -xzf "$src" -C "$out"; src=$(ls -d "$out"/cufinufft-*/ | head -1)
fi
src=$(cd "$src" && pwd)
nvcc=${CUDA_HOME:+$CUDA_HOME/bin/}nvcc
command -v "$nvcc" >/dev/null || { echo "build_cufinufft: no nvcc" >&2; exit 2; }
cuda_home=${CUDA_HOME:-$(dirname "$(dirname "$(command -v "$nvcc")")")}
# cufft/cudart: the toolkit's, else CUFFT_ROOT's (e.g. site-packages/nvidia/cu13)
cufft= cudart= inc_extra=()
for d in "$cuda_home"/lib64 "$cuda_home"/lib ${CUFFT_ROOT:+"$CUFFT_ROOT"/lib}; do
    [[ -z $cufft ]] && cufft=$(ls "$d"/libcufft.so* 2>/dev/null | head -1 || true)
    [[ -z $cudart ]] && cudart=$(ls "$d"/libcudart.so* 2>/dev/null | head -1 || true)
done
[[ -n ${CUFFT_ROOT:-} ]] && inc_extra=(-I"$CUFFT_ROOT/include")
# g++ (spreadinterp.cpp) needs thrust: CUDA 13 keeps CCCL in include/cccl (nvcc adds it itself)
for d in "$cuda_home/include/cccl" ${CUFFT_ROOT:+"$CUFFT_ROOT/include/cccl"}; do
    if [[ -d $d ]]; then inc_extra+=(-isystem "$d"); fi
done
[[ -n $cufft && -n $cudart ]] || { echo "build_cufinufft: no libcufft/libcudart found" >&2; exit 2; }
libdir=$(dirname "$cufft")
echo "build_cufinufft: $("$nvcc" --version | tail -1); sm_$arch; $jobs jobs; cufft $cufft"
obj=$out/obj; mkdir -p "$obj"
inc=(-I"$src/include" -I"$src/contrib" -I"$cuda_home/include" "${inc_extra[@]}")
nv=(-std=c++17 -O3 -arch=sm_"$arch" -Xcompiler -fPIC -rdc=true --extended-lambda
    --extra-device-vectorization -Wno-deprecated-declarations "${inc[@]}")
cu=(precision_independent.cu 1d/cufinufft1d.cu 1d/spread1d_wrapper.cu 1d/interp1d_wrapper.cu
    2d/cufinufft2d.cu 2d/spread2d_wrapper.cu 2d/interp2d_wrapper.cu 3d/spread3d_wrapper.cu
    3d/interp3d_wrapper.cu 3d/cufinufft3d.cu memtransfer_wrapper.cu deconvolve_wrapper.cu
    cufinufft.cu common.cu)
cxx=(cuda/spreadinterp.cpp common/kernel.cpp common/utils.cpp common/pswf.cpp)
t0=$SECONDS
{
    for f in "${cu[@]}"; do echo "nvcc $f"; done
    for f in "${cxx[@]}"; do echo "g++ $f"; done
} | xargs -P "$jobs" -I{} bash -c '
    set -e; tool=${1%% *}; f=${1#* }; o='"$obj"'/$(echo "$f" | tr / _).o
    [[ -s $o ]] && exit 0  # kept from an earlier, interrupted build
    if [[ $tool == nvcc ]]; then
        '"$nvcc ${nv[*]}"' -c '"$src"'/src/cuda/$f -o $o.tmp
    else
        g++ -std=c++17 -O3 -fPIC '"${inc[*]}"' -c '"$src"'/src/$f -o $o.tmp
    fi
    mv $o.tmp $o
    echo "  built $f ($((SECONDS)) s)"' _ {}
mkdir -p "$out/cufinufft"
# -rdc objects: device-link them explicitly (nvcc -shared alone leaves
# __cudaRegisterLinkedBinary_* undefined), then link the host side with g++.
"$nvcc" -dlink -arch=sm_"$arch" -Xcompiler -fPIC "$obj"/*.cu.o -o "$out/dlink.o"
devrt=$(ls "$(dirname "$cudart")"/libcudadevrt.a "$cuda_home"/lib64/libcudadevrt.a 2>/dev/null | head -1 || true)
g++ -shared -o "$out/cufinufft/libcufinufft.so" "$obj"/*.o "$out/dlink.o" ${devrt:+"$devrt"} \
    -L"$libdir" -L"$(dirname "$cudart")" -l:"$(basename "$cufft")" -l:"$(basename "$cudart")" \
    -Wl,-rpath,'$ORIGIN'
cp "$src"/python/cufinufft/cufinufft/*.py "$out/cufinufft/"
echo "build_cufinufft: $out/cufinufft/libcufinufft.so ($(du -h "$out/cufinufft/libcufinufft.so" | cut -f1)) in $((SECONDS - t0)) s"
