"""`make steps`: milliseconds a training step, with TensorFlow's oneDNN kernels and with Eigen's.
Never part of CI.

Each net (NAME:BATCH) trains one epoch on random images in processes of one thread each, as
the workers of `cv` do: `--side-by-side N` such processes at once (2: both cores of a 2-core
machine busy, as in a run). The two kernel settings (TF_ENABLE_ONEDNN_OPTS=1 and 0, read by
TensorFlow when it is imported) take turns for `--rounds` rounds, so that the machine's
changing speed falls on both alike. Prints each process's median step, after the first five.
"""

import argparse
import json
import os
import subprocess
import sys

import common  # noqa: F401  (quiets TensorFlow: before it is imported)

from kaggle_digits.backend import THREAD_VARIABLES

SETTINGS = {"oneDNN": "1", "Eigen": "0"}
UNTIMED_STEPS = 5  # the first steps trace the graph and warm the caches
TIMED_STEPS = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nets", default="tiny-cnn:256,strided-cnn:32", help="NAME:BATCH,...")
    parser.add_argument("--side-by-side", type=int, default=2, help="processes at once")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--time", action="store_true", help=argparse.SUPPRESS)  # one process
    args = parser.parse_args()
    nets = [(name, int(batch)) for name, batch in (net.split(":") for net in args.nets.split(","))]
    if args.time:
        print(json.dumps(time_steps(nets)))
        return
    rows: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for setting, value in SETTINGS.items():
            for answer in side_by_side(args.nets, value, args.side_by_side):
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


def side_by_side(nets: str, onednn: str, processes: int) -> list[dict[str, float]]:
    env = os.environ | {name: "1" for name in THREAD_VARIABLES} | {"TF_ENABLE_ONEDNN_OPTS": onednn}
    command = [sys.executable, __file__, "--nets", nets, "--time"]
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


def time_steps(nets: list[tuple[str, int]]) -> dict[str, float]:
    """The median milliseconds a training step of each net, in this process."""
    import numpy as np

    from kaggle_digits.config import preset_config
    from kaggle_digits.training import BatchClock, train_model

    timings = {}
    for name, batch in nets:
        rows = batch * (UNTIMED_STEPS + TIMED_STEPS + 1)
        images = np.random.default_rng(0).integers(0, 256, (rows, 28, 28, 1), dtype=np.uint8)
        config = preset_config("default", members=(name,), epochs=1, batch_size=batch)
        clock = BatchClock()
        train_model(name, images, np.arange(rows) % 10, config, 10, seed=0, callbacks=[clock])
        steps = np.diff(np.array(clock.batch_ends[UNTIMED_STEPS:]))
        timings[f"{name}:{batch}"] = round(float(np.median(steps)) * 1000, 1)
    return timings


def spread(values: list[float]) -> str:
    return f"{min(values):.0f}-{max(values):.0f}" if len(values) > 1 else f"{values[0]:.0f}"


if __name__ == "__main__":
    main()
