"""The local engines: the pairs one after another in this process (InProcess), or side by
side in worker processes on this machine (LocalWorkers), each with its share of the cores,
or taking turns on the GPU.

Why worker processes on one machine: for nets of this size a TensorFlow process does not keep
two CPU cores busy, so two single-threaded processes, each training its own pair, get through
nearly twice the images per second of one two-threaded process
(see docs/measurements.md#workers-on-one-machine).
"""

import contextlib
import ctypes
import math
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import replace

import numpy as np

from kaggle_digits.machine.backend import (
    accelerator_count,
    cpu_count,
    gpu_name,
    import_keras,
    thread_limit,
    visible_gpus,
)
from kaggle_digits.options.config import CVConfig
from kaggle_digits.training.pairs import (
    Done,
    Pair,
    PairOutput,
    Report,
    StepTiming,
    TrainingData,
    fit_pair,
    mean_timing,
    time_steps,
)

# how long a worker of a trial waits for the others to finish their warm-up steps; past it
# (a worker failed), it times its steps alone
TRIAL_WAIT_SECONDS = 300.0


class InProcess:
    """The pairs one after another in this process, with all its threads."""

    workers = 1
    cores = 1
    restart_seconds = 0.0

    def __enter__(self) -> "InProcess":
        import_keras()
        return self

    def __exit__(self, *exc) -> None:
        pass

    def describe(self) -> dict:
        return {
            "engine": "in-process",
            "pairs_at_once": 1,
            "threads_per_pair": cpu_count(),
            "gpu": gpu_name() if accelerator_count() else None,
            "gpus": accelerator_count(),
        }

    def started_line(self) -> str:
        return "training the pairs one after another in this process"

    def run(
        self,
        data: TrainingData,
        config: CVConfig,
        pairs: Sequence[Pair],
        report: Report,
        done: Done,
    ) -> None:
        for pair in pairs:
            done(fit_pair(data, config, pair, report))

    def time_steps(self, data: TrainingData, config: CVConfig, architecture: str) -> StepTiming:
        return time_steps(data, config, architecture)


class LocalWorkers:
    """`workers` processes on this machine, each with its share of the cores, each training
    one pair at a time. On GPUs (`accelerator`: how many), the processes are dealt out to
    them in turn (two T4s: every other process on each), and those on one GPU take turns on
    it, each with its share of its memory: each GPU is then a "core" they share."""

    def __init__(self, workers: int, threads: int | None = None, accelerator: int = 0) -> None:
        self.workers = workers
        self.threads = threads or max(1, cpu_count() // workers)
        self.accelerator = int(accelerator)
        self.cores = min(workers, self.accelerator) if accelerator else min(workers, cpu_count())
        self._pool: ProcessPoolExecutor | None = None
        self._reports = None
        self._trial_barriers: dict = {}  # workers in a trial -> their multiprocessing.Barrier
        self._trialled = False  # whether the workers now running have trained a trial's nets
        self.restart_seconds = 0.0  # how long the workers took to start, the last time

    def use_workers(self, workers: int) -> None:
        """Train the pairs with `workers` processes instead (the budget's trial found them
        faster): the pairs start in fresh workers after a trial in any case."""
        self.close()
        self.workers = workers
        self.threads = max(1, cpu_count() // workers)
        self.cores = min(workers, self.accelerator or cpu_count())

    def __enter__(self) -> "LocalWorkers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> dict:
        return {
            "engine": "processes",
            "pairs_at_once": self.workers,
            "threads_per_pair": self.threads,
            "gpu": gpu_name() if self.accelerator else None,
            "gpus": self.accelerator,
        }

    def started_line(self) -> str:
        shared = f", sharing {self.cores} cores" if self.workers > self.cores else ""
        if self.accelerator == 1:
            shared = ", sharing one GPU"
        elif self.accelerator:
            shared = f", dealt out to {self.accelerator} GPUs"
        return (
            f"training {self.workers} pairs at a time, each in its own process with "
            f"{self.threads} thread(s){shared}"
        )

    def pool(self, data: TrainingData) -> ProcessPoolExecutor:
        """The worker processes, started on first use with the data, kept for later calls."""
        if self._pool is None:
            context = multiprocessing.get_context("spawn")  # no forked TensorFlow state
            self._reports = context.Queue()
            # handed to the processes as they start: a trial of `count` workers waits on the
            # barrier of that many parties (every worker, then as many as there are cores)
            self._trial_barriers = {
                count: context.Barrier(count) for count in {self.workers, self.cores}
            }
            started = time.perf_counter()
            share = math.ceil(self.workers / self.accelerator) if self.accelerator else 1
            # each worker takes the next GPU as it starts
            gpu_turns = context.Queue()
            for slot in range(self.workers):
                gpu_turns.put(gpu_of_worker(slot, self.accelerator))
            with thread_limit(self.threads, share_of_accelerator=share):
                self._pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=context,
                    initializer=_start_worker,
                    initargs=(data, self._reports, self._trial_barriers, gpu_turns),
                )
                # start them all now, while the thread limit is in the environment
                for future in [self._pool.submit(_ready) for _ in range(self.workers)]:
                    future.result()
            self.restart_seconds = time.perf_counter() - started
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._trialled = False

    def kill(self) -> None:
        """End the workers now (Ctrl-C, SIGTERM, an error): the pairs they train are lost
        either way, and waiting for them to finish could take minutes."""
        if self._pool is None:
            return
        if hasattr(self._pool, "kill_workers"):  # Python 3.14
            self._pool.kill_workers()
        else:
            for process in list(self._pool._processes.values()):
                process.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None
        self._trialled = False

    def run(
        self,
        data: TrainingData,
        config: CVConfig,
        pairs: Sequence[Pair],
        report: Report,
        done: Done,
    ) -> None:
        if self._trialled:
            # A process never gives back what a net held, and the trial built each member
            # in both precisions: the pairs start in fresh workers, at the cost of the
            # workers' start (restart_seconds) once (see docs/measurements.md#worker-memory)
            self.close()
        pool = self.pool(data)
        # the folds go with each pair: a short budget may have chosen fewer after the workers
        # got the data
        pending = {pool.submit(_fit_in_worker, config, pair, data.fold_of_row) for pair in pairs}
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                self._forward_reports(report)
                for future in finished:
                    done(future.result())
        except BaseException:
            self.kill()
            raise

    def time_steps(self, data: TrainingData, config: CVConfig, architecture: str) -> StepTiming:
        """Every worker times the same steps at once: the cores are then as busy as in the run.
        With more workers than cores, as many as there are cores time them again, as in the
        run's last round. The workers start their timed steps together, so that no worker
        times steps while another still builds its net
        (see docs/measurements.md#synchronised-trials)."""
        crowded = mean_timing(self._time_at_once(data, config, architecture, self.workers))
        if self.workers <= self.cores:
            return crowded
        uncrowded = mean_timing(self._time_at_once(data, config, architecture, self.cores))
        # A crowd slows predicting as it slows training, but the trial predicts for under a
        # second after its steps, and workers that end their steps a moment apart predict
        # with a core to themselves (see docs/measurements.md#crowded-predictions)
        crowd = crowded.step_seconds / uncrowded.step_seconds
        predict_seconds = max(crowded.predict_seconds, uncrowded.predict_seconds * crowd)
        return replace(
            crowded,
            predict_seconds=predict_seconds,
            uncrowded_step_seconds=uncrowded.step_seconds,
        )

    def _time_at_once(
        self, data: TrainingData, config: CVConfig, architecture: str, count: int
    ) -> list[StepTiming]:
        pool = self.pool(data)
        self._trialled = True
        self._trial_barriers[count].reset()  # mended, had a worker failed in an earlier trial
        # a worker waiting at the barrier takes no other task, so each goes to its own worker
        futures = [pool.submit(_time_in_worker, config, architecture, count) for _ in range(count)]
        return [future.result() for future in futures]

    def _forward_reports(self, report: Report) -> None:
        while True:
            try:
                report(self._reports.get_nowait())
            except queue.Empty:
                return


# --- inside a worker process ----------------------------------------------------------

_worker_data: TrainingData | None = None
_worker_reports = None
_worker_trial_barriers: dict = {}


def gpu_of_worker(slot: int, gpus: int) -> str | None:
    """The GPU the `slot`-th worker trains on (CUDA_VISIBLE_DEVICES), where there are
    several: the workers dealt out in turn. None: one GPU or none, nothing to choose."""
    return visible_gpus(gpus)[slot % gpus] if gpus > 1 else None


def _start_worker(data: TrainingData, reports, trial_barriers: dict, gpu_turns) -> None:
    global _worker_data, _worker_reports, _worker_trial_barriers
    _die_with_parent()
    gpu = gpu_turns.get()
    if gpu is not None:  # before the backend is imported, which reads it once
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    # Ctrl-C and SIGTERM (to the whole group: a notebook's stop, a scheduler) are the
    # driver's to handle; it kills the workers as it stops
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _worker_data, _worker_reports, _worker_trial_barriers = data, reports, trial_barriers
    import_keras()


def _ready() -> bool:
    return True


def _fit_in_worker(config: CVConfig, pair: Pair, fold_of_row: np.ndarray) -> PairOutput:
    data = replace(_worker_data, fold_of_row=fold_of_row)
    return fit_pair(data, config, pair, _worker_reports.put)


def _time_in_worker(config: CVConfig, architecture: str, workers_in_trial: int) -> StepTiming:
    barrier = _worker_trial_barriers[workers_in_trial]

    def start_timing() -> None:
        # broken: another worker of the trial failed, and its error reaches the driver
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(TRIAL_WAIT_SECONDS)

    return time_steps(_worker_data, config, architecture, start_timing)


def _die_with_parent() -> None:
    """On Linux, a worker is ended when the driver dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
