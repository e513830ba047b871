"""`make steps`: milliseconds a training step, with TensorFlow's oneDNN kernels and with Eigen's,
in float32, and with oneDNN in mixed_bfloat16 (`cv --precision`). Never part of CI.

Each net (NAME:BATCH) trains one epoch on random images in processes of one thread each, as
the workers of `cv` do: `--side-by-side N` such processes at once (2: both cores of a 2-core
machine busy, as in a run). The settings (TF_ENABLE_ONEDNN_OPTS=1 or 0, read by TensorFlow
when it is imported, and the precision) take turns for `--rounds` rounds, so that the
machine's changing speed falls on all alike. Each process times its steps as a budget's trial does
(`pairs.time_steps`: a few untimed steps, then the mean of the timed ones).
"""

import argparse
import json
import os
import subprocess
import sys

import common  # noqa: F401  (quiets TensorFlow: before it is imported)

from kaggle_digits.machine.backend import thread_limit

# name: (TF_ENABLE_ONEDNN_OPTS, precision)
SETTINGS = {
    "oneDNN": ("1", "float32"),
    "Eigen": ("0", "float32"),
    "oneDNN bf16": ("1", "mixed_bfloat16"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nets", default="tiny-cnn:256,strided-cnn:32", help="NAME:BATCH,...")
    parser.add_argument("--side-by-side", type=int, default=2, help="processes at once")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--time", metavar="PRECISION", help=argparse.SUPPRESS)  # one process
    args = parser.parse_args()
    nets = [(name, int(batch)) for name, batch in (net.split(":") for net in args.nets.split(","))]
    if args.time:
        print(json.dumps(time_steps(nets, args.time)))
        return
    rows: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for setting, (onednn, precision) in SETTINGS.items():
            for answer in side_by_side(args.nets, onednn, precision, args.side_by_side):
                for net, milliseconds in answer.items():
                    rows.setdefault((net, setting), []).append(milliseconds)
            print(f"round {round_ + 1}: {setting} done", file=sys.stderr, flush=True)
    print(
        f"ms a step, {args.side_by_side} single-threaded process(es) at once, {args.rounds} rounds"
    )
    for name, batch in nets:
        net = f"{name}:{batch}"
        cells = [f"{setting} {spread(rows[(net, setting)])}" for setting in SETTINGS]
        print(f"{net:18s} " + "   ".join(cells))


def side_by_side(nets: str, onednn: str, precision: str, processes: int) -> list[dict[str, float]]:
    command = [sys.executable, __file__, "--nets", nets, "--time", precision]
    with thread_limit(1):
        env = os.environ | {"TF_ENABLE_ONEDNN_OPTS": onednn}
    running = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    answers = []
    for process in running:
        output, errors = process.communicate()
        if process.returncode != 0:
            sys.exit(f"error: a timing process failed (exit {process.returncode}):\n{errors}")
        answers.append(json.loads(output.splitlines()[-1]))
    return answers


def time_steps(nets: list[tuple[str, int]], precision: str) -> dict[str, float]:
    """The milliseconds a training step of each net in `precision` takes in this process,
    timed as a budget's trial times it, on random images."""
    import numpy as np

    from kaggle_digits.data.competition import load_competition
    from kaggle_digits.options.presets import preset_config
    from kaggle_digits.training.pairs import TrainingData, time_steps

    images = np.random.default_rng(0).integers(0, 256, (2048, 28, 28, 1), dtype=np.uint8)
    labels = np.arange(len(images)) % 10
    data = TrainingData(images, labels, images, np.zeros(len(images), int), 10)
    timings = {}
    priors = load_competition().priors  # the digits' deskewing, as their runs train
    for name, batch in nets:
        config = preset_config(
            "default", priors, members=(name,), batch_size=batch, precision=precision
        )
        timing = time_steps(data, config, name)
        timings[f"{name}:{batch}"] = round(timing.step_seconds * 1000, 1)
    return timings


def spread(values: list[float]) -> str:
    return f"{min(values):.0f}-{max(values):.0f}" if len(values) > 1 else f"{values[0]:.0f}"


if __name__ == "__main__":
    main()
