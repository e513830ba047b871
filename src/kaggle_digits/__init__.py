"""kaggle-digits: a k-fold CNN ensemble toolkit for Kaggle's Digit Recognizer and any other
pixel-CSV image competition described by a spec in competition/."""

import os

__version__ = "0.1.0"

# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI or BF16 or
# AMX (TF 2.9 release notes); elsewhere (AVX2 laptops, AMD cloud machines) it trains with
# Eigen's. Measured on a 2-core AVX2 EPYC, two single-threaded workers side by side: tiny-cnn
# 148 ms a step of 256 with oneDNN against 220-260 without, strided-cnn 73-81 ms a step of 32
# against 96-101. Set here, before any of our modules imports TensorFlow, and inherited by
# the worker processes; TF_ENABLE_ONEDNN_OPTS=0 in the environment keeps it off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
