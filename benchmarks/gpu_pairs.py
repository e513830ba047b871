"""One pair against several on one GPU: images a second per pair and in all, and how busy
the GPU was (nvidia-smi sampled every half second), for 1, 2, 4 and 8 pairs at once. Each
pair is a worker process as `cv` starts them on a GPU (its share of the GPU's memory, its
share of the CPU threads), training the net as a pair does (augmentation and deskewing inside
the compiled step), its timed steps begun together with the others'. Never part of CI.

    KERAS_BACKEND=jax python benchmarks/gpu_pairs.py --out reports/gpu/pairs.json

Runs on a CPU too (no utilisation column then), which is how it is checked before a GPU's
minutes are spent on it.
"""

import argparse
import json
import multiprocessing
import subprocess
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import random_training_data

from kaggle_digits.data.competition import load_competition
from kaggle_digits.machine.backend import backend_name, cpu_count, thread_limit
from kaggle_digits.options.presets import preset_config
from kaggle_digits.training.pairs import time_steps


class GpuSampler:
    """nvidia-smi's utilization.gpu and memory.used, every `every` seconds, while inside."""

    def __init__(self, every: float = 0.5) -> None:
        self.every, self.samples = every, []
        self._stop = threading.Event()

    def __enter__(self) -> "GpuSampler":
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        query = [
            "nvidia-smi",
            "--query-gpu=utilization.gpu,memory.used",
            "--format=csv,noheader,nounits",
        ]
        while not self._stop.wait(self.every):
            try:
                line = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout
                busy, memory = (float(value) for value in line.splitlines()[0].split(","))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return  # no GPU, or no nvidia-smi
            self.samples.append((busy, memory))

    def summary(self) -> dict:
        if not self.samples:
            return {"gpu_busy_percent": None, "gpu_memory_mib": None}
        busy, memory = zip(*self.samples, strict=True)
        return {"gpu_busy_percent": round(float(np.mean(busy)), 1), "gpu_memory_mib": max(memory)}


_barrier = None


def _start(barrier) -> None:
    global _barrier
    _barrier = barrier
    from kaggle_digits.machine.backend import import_keras

    import_keras()


def _time_pair(config, architecture: str, images_timed: int):
    data = random_training_data(test_rows=2048)
    return time_steps(data, config, architecture, lambda: _barrier.wait(600), images_timed)


def measure(pairs: int, config, architecture: str, images_timed: int) -> dict:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(pairs)
    with (
        thread_limit(max(1, cpu_count() // pairs), share_of_accelerator=pairs),
        ProcessPoolExecutor(pairs, context, initializer=_start, initargs=(barrier,)) as pool,
        GpuSampler() as sampler,
    ):
        started = time.perf_counter()
        futures = [
            pool.submit(_time_pair, config, architecture, images_timed) for _ in range(pairs)
        ]
        timings = [future.result() for future in futures]
        seconds = time.perf_counter() - started
    per_pair = [config.batch_size / timing.step_seconds for timing in timings]
    return {
        "pairs": pairs,
        "architecture": architecture,
        "batch_size": config.batch_size,
        "precision": config.precision,
        "images_per_second_per_pair": round(float(np.mean(per_pair))),
        "images_per_second": round(float(np.sum(per_pair))),
        "startup_seconds": round(float(np.mean([t.startup_seconds for t in timings])), 1),
        "wall_seconds": round(seconds, 1),
        **sampler.summary(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", default="1,2,4,8", help="pairs at once, comma-separated")
    parser.add_argument("--preset", default="gpu", help="whose net, batch size and views")
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--images", type=int, default=200_000, help="images timed per pair")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    # the Digit Recognizer's priors (deskewing, views), as a run of the preset takes them
    preset = preset_config(args.preset, load_competition().priors)
    config = replace(preset, precision=args.precision)
    architecture = preset.members[0]
    print(f"backend {backend_name()}, {architecture}, batch {config.batch_size}", flush=True)
    results = []
    for pairs in map(int, args.pairs.split(",")):
        results.append(measure(pairs, config, architecture, args.images))
        print(json.dumps(results[-1]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
