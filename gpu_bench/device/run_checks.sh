#!/usr/bin/env bash
# The one command for the device machine (see README.md beside this file):
#
#   bash gpu_bench/device/run_checks.sh          # there, with run(carry=[".whl"])
#   DRY_RUN=1 bash gpu_bench/device/run_checks.sh   # here: plan + CPU-safe parts, tiny sizes
#   (the benches' own smallest sizes are `--quick`; see gpu_bench/README.md)
#   (knobs: BUDGET_S, NVROOT=<CUDA 13 root>, DRY_BUILD=1 + BUILD_TIMEOUT=s: try the build too,
#    ONLY=<regex>: run only the steps whose name matches, e.g. ONLY='smoke|pytest|pipeline')
#
# Installs the carried wheels to /tmp/site, gets cufinufft (prebuilt .whl/cufinufft-sm90.tar.gz
# if it loads, else built from .whl/src in the background), then runs, each under its
# own timeout and all within BUDGET_S (default 510 s) of the start: import smoke,
# pytest -m gpu, LCF on the GPU (issue #6), Paganin/CTF on the GPU, the cufinufft
# tests, FBP/SIRT/CGLS 1024^3 and 2048^3 from 1500 angles (issue #3). A step that
# fails or times out is recorded and the next one runs. Logs: $OUT/*.{log,txt}
# (8 files), summary last on stdout.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
DRY=${DRY_RUN:-0}
BUDGET=${BUDGET_S:-540}
T0=$SECONDS
if [[ $DRY == 1 ]]; then
    OUT=${OUT:-/tmp/spectrotomo-device-dry}
    # the dev venv (PYTHON=... to choose another); python3 on PATH if it is not there
    PY=${PYTHON:-/work/venv/bin/python}
    [[ -x $PY ]] || PY=$(command -v python3)
    SITE=
else
    OUT=${OUT:?OUT is set by the device tool}
    PY=python3
    SITE=/tmp/site
fi
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
CUFI=/tmp/spectrotomo-cufinufft
export PYTHONPATH=${SITE:+$SITE:}$CUFI:src
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"

left() { echo $((BUDGET - (SECONDS - T0))); }
note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME MAX_S LOG CMD...: run CMD under timeout min(MAX_S, budget left), output
# to stdout and appended to $OUT/LOG; one summary line (rc 124 = timed out).
step() {
    local name=$1 max=$2 log=$OUT/$3 t s rc
    shift 3
    if [[ -n ${ONLY:-} && ! $name =~ $ONLY ]]; then note "SKIP  $name (not in ONLY)"; return 0; fi
    t=$(left); ((t > max)) && t=$max
    if ((t < 5)); then note "SKIP  $name (budget spent)"; return 0; fi
    echo "=== $name (timeout ${t}s, $(left)s of the budget left): $*" | tee -a "$log"
    s=$SECONDS
    timeout -k 5 "$t" "$@" 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}
    note "$(printf '%-5s %-44s rc=%-3s %4ss' "$([[ $rc == 0 ]] && echo OK || echo FAIL)" \
        "$name" "$rc" $((SECONDS - s)))"
    return 0
}

# ---- sizes: the device's, or tiny ones for the dry run on a CPU machine ------------
if [[ $DRY == 1 ]]; then
    LCF=(--gpu-only --n-spectra 20000 --n-peer 200 --refs 3 --energies 30 --repeats 1)
    PHASE=(--gpu --n-proj 4 --size 64 --distances 2 --repeat 1)
    RECON=(--gpu-only --gpu-sizes 64 --gpu-angles 60 --iterations 2 --gpu-iter-rows 2)
    LIMITED=(--parts samples --presets small:31 --repeats 1 --no-independent --gpu)
    PIPE=(--preset small --seed 7)
    PIPE_LARGE=(--preset tiny --seed 7 --gpu-only)
    JOINT_THREADS=(--preset small --threads 1 2)
else
    LCF=(--gpu-only --n-spectra 16777216 --n-peer 2000 --refs 3 5 --energies 100 30 --repeats 5)
    PHASE=(--gpu --n-proj 64 --size 256 --distances 4 --repeat 3)
    RECON=(--gpu-only --gpu-sizes 1024 2048 --gpu-angles 1500 --iterations 5 --gpu-iter-rows 8)
    LIMITED=(--parts samples --presets small:31,demo:41 --repeats 2 --no-independent --gpu)
    PIPE=(--preset demo --seed 7)
    PIPE_LARGE=(--preset large --seed 7 --gpu-only)
    JOINT_THREADS=(--preset demo --threads 1 2 4 8 16)
fi

# ---- 1. install, environment ------------------------------------------------------
ENV=$OUT/env.txt
{
    echo "date $(date -u +%FT%TZ); host $(uname -n) $(uname -m); $(nproc) cores; DRY_RUN=$DRY"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo "n/a (no .git in the copy)")"
    nvidia-smi 2>&1 || echo "nvidia-smi: not available"
    command -v nvcc && nvcc --version | tail -2
} >"$ENV" 2>&1
if [[ $DRY == 1 ]]; then
    echo "(dry run) would: python3 -m pip install -q --no-index --no-deps --no-compile" \
        "--no-cache-dir --upgrade --target /tmp/site .whl/*.whl" | tee -a "$ENV"
    ls .whl/*.whl >/dev/null 2>&1 || echo "(dry run) WARNING: no .whl/*.whl: run fetch_wheels.sh"
else
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl >>"$ENV" 2>&1 || { note "FAIL  pip install (see env.txt)"; }
fi
"$PY" -m pip list 2>/dev/null | grep -i -E \
    "^(numpy|scipy|xarray|zarr|numcodecs|dask|distributed|cupy|h5py|scikit-image|finufft|pytest) " \
    >>"$ENV"
# the CUDA 13 libraries the python packages bring (cufinufft is linked against them)
# (NVROOT may be given: e.g. a pip-installed CUDA 13 for the dry run)
NVROOT=${NVROOT:-$("$PY" -c "import os, nvidia; print(os.path.join(list(nvidia.__path__)[0], 'cu13'))" \
    2>/dev/null || true)}
[[ -n $NVROOT && -d $NVROOT/lib ]] || NVROOT=
[[ -n $NVROOT ]] && export LD_LIBRARY_PATH=$NVROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
CUDA_ROOT=${NVCC:+$(dirname "$(dirname "$NVCC")")}
[[ -n $CUDA_ROOT && -d $CUDA_ROOT/lib64 ]] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$CUDA_ROOT/lib64
echo "nvidia libs: ${NVROOT:-none}; nvcc: ${NVCC:-none}; LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" | tee -a "$ENV"
cat "$ENV"

# ---- 2. cufinufft: prebuilt for sm_90, else build it in the background ------------
cufi_ok() { "$PY" -c "import cufinufft" >/dev/null 2>&1; }
BUILD_PID=
rm -rf "$CUFI"; mkdir -p "$CUFI"
if [[ -f .whl/cufinufft-sm90.tar.gz ]]; then
    tar -xzf .whl/cufinufft-sm90.tar.gz -C "$CUFI"
    if cufi_ok; then note "OK    cufinufft: prebuilt .whl/cufinufft-sm90.tar.gz loads"
    else
        note "FAIL  cufinufft: prebuilt library does not load (CUDA 13 libs: ${NVROOT:-none found}); building it"
        "$PY" -c "import cufinufft" 2>&1 | tail -2 | tee -a "$OUT/build_cufinufft.log"
        rm -rf "${CUFI:?}"/*
    fi
fi
if ! cufi_ok; then
    SDIST=$(ls .whl/src/cufinufft-*.tar.gz 2>/dev/null | head -1)
    if [[ ($DRY == 1 && ${DRY_BUILD:-0} != 1) || -z $NVCC || -z $SDIST ]]; then
        note "SKIP  cufinufft build (dry run, or no nvcc / no .whl/src sdist): FBP GPU steps skip"
    else
        bt=${BUILD_TIMEOUT:-330}
        echo "=== cufinufft build in the background (timeout ${bt}s): $SDIST" | tee -a "$OUT/build_cufinufft.log"
        # BUILD_PID is timeout's own pid: a TERM to it stops the whole build
        CUDA_HOME=$CUDA_ROOT CUFFT_ROOT=$NVROOT timeout -k 5 "$bt" nice -n 5 \
            bash gpu_bench/device/build_cufinufft.sh "$SDIST" /tmp/spectrotomo-cufi-build 90 \
            $(($(nproc) > 3 ? $(nproc) - 2 : 1)) >>"$OUT/build_cufinufft.log" 2>&1 &
        BUILD_PID=$!
    fi
fi

# ---- 3. checks, by value ---------------------------------------------------------
step "import smoke (all modules, peers)" 90 smoke.log "$PY" gpu_bench/device/smoke.py
step "pytest -m gpu tests" 180 pytest_gpu.log \
    "$PY" -m pytest -q -m gpu tests -p no:cacheprovider --timeout 120 -rs
step "LCF on the GPU (issue #6: >= 1e8 spectra/s)" 75 lcf_phase_gpu.log \
    "$PY" gpu_bench/lcf_bench.py "${LCF[@]}"
step "Paganin/CTF on the GPU vs CPU" 60 lcf_phase_gpu.log \
    "$PY" gpu_bench/phase_bench.py "${PHASE[@]}"
# issues #16, #19: the joint limited-angle solver and the demo pipeline on the GPU (one log:
# 8 files come back)
if cufi_ok || [[ $DRY == 1 ]]; then
    step "limited-angle FBP/joint CPU vs GPU (issue #16)" 120 pipeline_gpu.log \
        "$PY" gpu_bench/limited_angle_bench.py "${LIMITED[@]}"
    step "demo pipeline GPU vs CPU, GPU memory vs plan (#19)" 150 pipeline_gpu.log \
        "$PY" gpu_bench/device/pipeline_gpu.py "${PIPE[@]}"
    step "large (256^3) pipeline on the GPU, memory vs plan (#19)" 150 pipeline_gpu.log \
        "$PY" gpu_bench/device/pipeline_gpu.py "${PIPE_LARGE[@]}"
    step "joint solver on the host CPU vs threads (#19)" 120 pipeline_gpu.log \
        "$PY" gpu_bench/device/joint_threads.py "${JOINT_THREADS[@]}"
else
    note "SKIP  limited-angle / pipeline GPU steps: cufinufft not importable yet"
fi
if [[ -n $BUILD_PID ]]; then
    w=$(($(left) - 120)); echo "=== waiting for the cufinufft build (at most $((w > 0 ? w : 0))s)"
    while kill -0 "$BUILD_PID" 2>/dev/null && (($(left) > 120)); do sleep 2; done
    kill -0 "$BUILD_PID" 2>/dev/null && { kill "$BUILD_PID"; note "FAIL  cufinufft build: out of time"; }
    wait "$BUILD_PID"; echo "build rc=$?" >>"$OUT/build_cufinufft.log"
    cp -r /tmp/spectrotomo-cufi-build/cufinufft "$CUFI/" 2>/dev/null
    tail -3 "$OUT/build_cufinufft.log"
fi
if cufi_ok; then
    note "OK    cufinufft importable: $("$PY" -c 'import cufinufft; print(cufinufft.__file__)')"
    [[ -n $BUILD_PID ]] && step "smoke again (cufinufft vs finufft)" 60 smoke.log \
        "$PY" gpu_bench/device/smoke.py
    [[ -n $BUILD_PID ]] && step "pytest -m gpu, cufinufft tests" 120 pytest_gpu.log \
        "$PY" -m pytest -q -m gpu tests/recon -p no:cacheprovider --timeout 120 -rs
    step "FBP/SIRT/CGLS 1024^3, 2048^3 (issue #3: <= 5 s)" 240 recon_gpu.log \
        "$PY" gpu_bench/recon_bench.py "${RECON[@]}"
elif [[ $DRY == 1 ]]; then  # no cufinufft here: the GPU part says it skips
    step "recon_bench --gpu-only (no device: skips)" 60 recon_gpu.log \
        "$PY" gpu_bench/recon_bench.py "${RECON[@]}"
else
    note "SKIP  FBP GPU bench: cufinufft not importable (see build_cufinufft.log, smoke.log)"
fi

# ---- 4. summary ----------------------------------------------------------------
{
    echo "--- results ($((SECONDS - T0)) s of a ${BUDGET} s budget) ---"
    grep -h -E "^(GPU|CPU joint|ASTRA|OK|FAIL|MISSING) |^\| (small|demo) s|cupy f32 best|\(cupy\)|passed|failed|skipped|no CUDA|not available" \
        "$OUT"/smoke.log "$OUT"/pytest_gpu.log "$OUT"/lcf_phase_gpu.log \
        "$OUT"/pipeline_gpu.log "$OUT"/recon_gpu.log 2>/dev/null | grep -v -E "^OK +[A-Za-z0-9_]+ [0-9]" | tail -60
} >>"$SUMMARY"
echo; echo "######## summary ($OUT/summary.txt)"; cat "$SUMMARY"
ls -l "$OUT"
