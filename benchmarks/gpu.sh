#!/usr/bin/env bash
# `make gpu`: the GPU checks in one go, within 10 minutes, on a Linux machine with one NVIDIA
# GPU and a Python that has JAX for CUDA and PyTorch, perhaps without TensorFlow, Keras or a
# network. Writes its figures into OUT:
#   gpu.txt        the GPU, driver and package versions
#   tests.log      the backend tests (tests/test_backends.py) on the GPU
#   pairs.json     one pair against several on the GPU (benchmarks/gpu_pairs.py)
#   holdout.json   the gpu preset on the holdout split with a short budget (benchmarks/holdout.py)
#   *.log          each step's output
#
#   bash benchmarks/gpu.sh OUT [BUDGET_MINUTES]
#
# What the machine lacks comes from .whl/ (bash benchmarks/gpu_wheels.sh .whl, here, with a
# network); the data from GPU_DATA, else ../shared/datasets/digit-recognizer.zip, else
# .data/digit-recognizer.zip (copy it there to carry it along). KERAS_BACKEND: jax unless set.
set -uo pipefail
out="$(realpath -m "${1:?usage: benchmarks/gpu.sh OUT [BUDGET_MINUTES]}")"
budget="${2:-4}"
cd "$(dirname "$0")/.."
mkdir -p "$out"
export PYTHONUNBUFFERED=1 KERAS_BACKEND="${KERAS_BACKEND:-jax}"
export PYTHONPATH="$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
started=$SECONDS
step() { echo "== $(date +%T) +$((SECONDS - started)) s: $*"; }

if ! python3 -c "import keras, typer, kaggle" 2>/dev/null; then
    step "installing the carried wheels"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/kaggle-digits-site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/kaggle-digits-site"
fi

step "the machine" | tee "$out/gpu.txt"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 - <<'PY'
import importlib.metadata as m, platform
print("python", platform.python_version())
for name in ("keras", "jax", "jaxlib", "torch", "numpy", "tensorflow"):
    try:
        print(name, m.version(name))
    except m.PackageNotFoundError:
        print(name, "-")
PY
    nproc
} >>"$out/gpu.txt" 2>&1
cat "$out/gpu.txt"

step "backend tests on the GPU"
# TF32 convolutions on the GPU round float32 more coarsely than the CPU's kernels
KAGGLE_DIGITS_ALL_BACKENDS=1 KAGGLE_DIGITS_TEST_ATOL=2e-3 timeout 200 python3 -m pytest -q -p no:cacheprovider \
    tests/test_backends.py 2>&1 | tee "$out/tests.log" | tail -15

step "one pair against several ($KERAS_BACKEND)"
timeout 150 python3 benchmarks/gpu_pairs.py --pairs 1,2,4,8 --out "$out/pairs.json" 2>&1 |
    grep -v "^WARNING" | tee "$out/pairs.log"

data="${GPU_DATA:-../shared/datasets/digit-recognizer.zip}"
[ -f "$data" ] || data=.data/digit-recognizer.zip
step "the gpu preset on the holdout split, --budget $budget ($data)"
timeout $((budget * 60 + 90)) python3 benchmarks/holdout.py --data "$data" --preset gpu \
    --budget "$budget" --runs-dir /tmp/kaggle-digits-runs --json "$out/holdout.json" 2>&1 |
    tee "$out/holdout.log" | grep -v "epoch .*/.*ETA" | tail -25
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv >>"$out/gpu.txt" 2>&1
step "done"
