"""Milliseconds a training step on each Keras backend, in turn, single-threaded processes as
`cv`'s workers are: TensorFlow, JAX and PyTorch take turns for `--rounds` rounds, so that the
machine's changing speed falls on all alike. Each process times its steps as a budget's trial
does (`pairs.time_steps`); its start-up (import, build, compile) is reported beside them.
Never part of CI.

    python benchmarks/backends.py [--nets tiny-cnn:256,strided-cnn:32] [--rounds 2]
"""

import argparse
import json
import os
import subprocess
import sys
from importlib.util import find_spec

from common import random_training_data

from kaggle_digits.machine.backend import thread_limit

BACKENDS = ("tensorflow", "jax", "torch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nets", default="tiny-cnn:256,strided-cnn:32", help="NAME:BATCH,...")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--time", action="store_true", help=argparse.SUPPRESS)  # one process
    args = parser.parse_args()
    nets = [(name, int(batch)) for name, batch in (net.split(":") for net in args.nets.split(","))]
    if args.time:
        print(json.dumps(time_nets(nets, args.precision)))
        return
    installed = [backend for backend in BACKENDS if find_spec(backend)]
    for round_number in range(1, args.rounds + 1):
        for backend in installed:
            with thread_limit(1):
                answer = subprocess.run(
                    [sys.executable, __file__, "--time", "--nets", args.nets,
                     "--precision", args.precision],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "KERAS_BACKEND": backend},
                )  # fmt: skip
            if answer.returncode:
                print(f"{backend}: failed\n{answer.stderr[-2000:]}")
                continue
            for name, (step_ms, startup_s) in json.loads(answer.stdout.splitlines()[-1]).items():
                print(
                    f"round {round_number}  {backend:10s} {name:16s} {step_ms:7.1f} ms a step"
                    f"   start-up {startup_s:5.1f} s",
                    flush=True,
                )


def time_nets(nets: list[tuple[str, int]], precision: str) -> dict:
    from dataclasses import replace

    from kaggle_digits.options.config import CVConfig
    from kaggle_digits.training.pairs import time_steps

    data = random_training_data(test_rows=512)
    timings = {}
    for name, batch in nets:
        config = replace(CVConfig(), batch_size=batch, precision=precision, deskew=True)
        timing = time_steps(data, config, name)
        timings[f"{name}:{batch}"] = (timing.step_seconds * 1000, timing.startup_seconds)
    return timings


if __name__ == "__main__":
    main()
