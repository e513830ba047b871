"""kaggle-digits: a k-fold CNN ensemble toolkit for Kaggle's Digit Recognizer and any other
pixel-CSV image competition described by a spec in competition/."""

import os

__version__ = "0.1.0"

# TensorFlow turns its faster oneDNN kernels on by itself only on CPUs with AVX-512 VNNI or
# BF16 or AMX; elsewhere (AVX2 laptops, AMD cloud machines) it trains with Eigen's (see
# docs/measurements.md#onednn). Set here, before any of our modules imports TensorFlow, and
# inherited by the worker processes; TF_ENABLE_ONEDNN_OPTS=0 in the environment keeps it off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
