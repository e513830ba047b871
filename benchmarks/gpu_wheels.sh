#!/usr/bin/env bash
# The wheels that benchmarks/gpu.sh installs on a GPU machine with Python 3.12, JAX for CUDA
# and PyTorch but no network, no TensorFlow and no Keras: Keras and what it needs beyond
# NumPy, and the kaggle client (for the stand-in server's tests). x86-64 Linux wheels only.
#
#   bash benchmarks/gpu_wheels.sh .whl        # then carry .whl/ to that machine (~10 MB)
set -euo pipefail
out="${1:-.whl}"
python_version="${GPU_PYTHON:-3.12}"
packages=(
    keras namex optree
    kaggle kagglesdk python-slugify text-unidecode bleach webencodings python-dotenv
    jupytext mdit-py-plugins nbformat fastjsonschema jsonschema jsonschema-specifications
    referencing rpds-py jupyter-core traitlets platformdirs
)
mkdir -p "$out"
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$out" \
    --python-version "$python_version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 --platform any \
    "${packages[@]}"
du -sh "$out"
