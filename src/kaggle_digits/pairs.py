"""How the (fold, member) pairs of a cross-validation run are executed: one after another in
this process, side by side in worker processes on this machine, or as Ray tasks on this
machine or a cluster (ray_pairs.py).

A pair trains one member on the other folds and predicts its held-out fold and the test set.
Whatever runs it, it comes back as a PairOutput, which cv.py writes into the run folder, so
every runner leaves the same files. Each pair's seed comes from its fold and member, never
from the worker that runs it.

Why workers on one machine: for nets of this size a TensorFlow process does not keep two
CPU cores busy (measured on a 2-core machine: 2 threads train strided-cnn only ~15% faster
than 1), so two single-threaded processes, each training its own pair, get through nearly
twice the images per second of one two-threaded process.
"""

import contextlib
import ctypes
import math
import multiprocessing
import queue
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from kaggle_digits.backend import (
    auto_workers,
    cpu_count,
    gpu_name,
    has_accelerator,
    import_keras,
    thread_limit,
)
from kaggle_digits.config import CVConfig


@dataclass(frozen=True)
class Pair:
    fold: int
    member: int
    architecture: str
    seed: int


@dataclass(frozen=True)
class TrainingData:
    """Everything a pair's training needs; sent once to each worker."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    fold_of_row: np.ndarray
    num_classes: int


@dataclass(frozen=True)
class EpochReport:
    """An epoch's end (finished), or how far a running epoch has got (about once a second)."""

    pair: Pair
    epoch: int  # 1-based
    logs: dict
    seconds: float  # the epoch's, or so far
    step: int = 0
    steps: int = 0
    finished: bool = True
    warmup_seconds: float = 0.0  # a finished epoch's one-off cost (EpochReporter)


@dataclass(frozen=True)
class PairOutput:
    pair: Pair
    model_file: bytes  # the trained model, as a .keras file
    holdout_probs: np.ndarray
    test_probs: np.ndarray
    history: dict
    seconds: float


@dataclass(frozen=True)
class StepTiming:
    """What a short trial of an architecture measured, in the conditions of the real run."""

    architecture: str
    step_seconds: float  # one training step of config.batch_size images, every worker busy
    predict_seconds: float  # one image at prediction time
    startup_seconds: float  # building, compiling and tracing before the first step
    # one step with only as many workers busy as there are cores, where there are more
    # workers than cores (their last round); None: not measured, an even share assumed
    uncrowded_step_seconds: float | None = None


# Held-out rows scored after each epoch for the learning curves: enough for a curve, and
# scoring a whole fold (8,400 rows) after every epoch costs ~8% of a strided-cnn epoch
CURVE_ROWS = 2000

Report = Callable[[EpochReport], None]
Done = Callable[[PairOutput], None]


def fit_pair(data: TrainingData, config: CVConfig, pair: Pair, report: Report) -> PairOutput:
    """Train pair.architecture on every fold but pair.fold; predict its held-out fold and the
    test set."""
    import keras

    from kaggle_digits.training import EpochReporter, predict_probs, train_model

    started = time.perf_counter()
    train_rows = data.fold_of_row != pair.fold
    holdout_rows = data.fold_of_row == pair.fold
    holdout = (data.train_images[holdout_rows], data.train_labels[holdout_rows])
    curve_rows = learning_curve_rows(len(holdout[1]), config)
    model, history = train_model(
        pair.architecture,
        data.train_images[train_rows],
        data.train_labels[train_rows],
        config,
        data.num_classes,
        pair.seed,
        holdout=(holdout[0][curve_rows], holdout[1][curve_rows]),
        callbacks=[EpochReporter(lambda *epoch: report(EpochReport(pair, *epoch)))],
    )
    holdout_probs = predict_probs(model, holdout[0], config)
    test_probs = predict_probs(model, data.test_images, config)
    model_file = keras_file_bytes(model)
    keras.backend.clear_session()
    return PairOutput(
        pair, model_file, holdout_probs, test_probs, history, time.perf_counter() - started
    )


def learning_curve_rows(count: int, config: CVConfig) -> np.ndarray:
    """Which of a fold's `count` held-out rows are scored after each epoch: every k-th, at
    most about CURVE_ROWS; all of them where early stopping chooses the epoch on them. The
    fold's predictions, and so its OOF score, always cover every row."""
    if config.early_stopping or count <= CURVE_ROWS:
        return np.arange(count)
    return np.arange(count)[:: math.ceil(count / CURVE_ROWS)]


def keras_file_bytes(model) -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.keras"  # Keras insists on the suffix
        model.save(path)
        return path.read_bytes()


# a trial times at least this many training images (12 steps of 128), so that small batches
# are timed over as long a stretch as large ones
TRIAL_IMAGES = 1536
# Steps trained before the timed ones. A new process's first steps run slow: with 2 untimed,
# tiny-cnn's first trial in new worker processes read 266 ms a step, a second and third 214 and
# 203, and its epochs then ran at 185-218 ms (two workers, 256 images a step).
TRIAL_WARMUP_STEPS = 8
# how long a worker of a trial waits for the others to finish their warm-up steps; past it
# (a worker failed), it times its steps alone
TRIAL_WAIT_SECONDS = 300.0


def time_steps(
    data: TrainingData,
    config: CVConfig,
    architecture: str,
    start_timing: Callable[[], None] | None = None,
    images_timed: int = TRIAL_IMAGES,
) -> StepTiming:
    """Train `architecture` for a few steps (after TRIAL_WARMUP_STEPS; at least
    `images_timed` images) and predict a few batches. `start_timing`, if given, is called
    once the warm-up steps are done, and returns when the timed steps may begin (when the
    other workers of the trial are ready too)."""
    import keras

    from kaggle_digits.training import AfterSteps, BatchClock, predict_batches, train_model

    batch = config.batch_size
    steps = max(12, math.ceil(images_timed / batch))
    rows = (steps + TRIAL_WARMUP_STEPS) * batch
    clock = BatchClock()
    # the hook first, so that the clock's first timed step ends after the wait
    callbacks = [AfterSteps(TRIAL_WARMUP_STEPS, start_timing)] if start_timing else []
    started = time.perf_counter()
    # np.resize repeats a small data set until it fills the trial
    model, _ = train_model(
        architecture,
        np.resize(data.train_images, (rows, *data.train_images.shape[1:])),
        np.resize(data.train_labels, rows),
        replace(config, epochs=1, select_hard=0.0),  # the same steps on any rows
        data.num_classes,
        seed=0,
        callbacks=[*callbacks, clock],
    )
    timed = clock.batch_ends[TRIAL_WARMUP_STEPS - 1 :]
    step_seconds = (timed[-1] - timed[0]) / (len(timed) - 1)
    startup = clock.batch_ends[0] - started - step_seconds
    sample = data.test_images[:2048]
    predict_batches(model, sample)  # a first pass over the same rows read ~40% slower
    predict_started = time.perf_counter()
    predict_batches(model, sample)
    predict_seconds = (time.perf_counter() - predict_started) / len(sample)
    keras.backend.clear_session()
    return StepTiming(architecture, step_seconds, predict_seconds, max(0.0, startup))


def mean_timing(timings: Sequence[StepTiming]) -> StepTiming:
    """The timings of one architecture taken side by side, averaged."""
    return StepTiming(
        timings[0].architecture,
        float(np.mean([timing.step_seconds for timing in timings])),
        float(np.mean([timing.predict_seconds for timing in timings])),
        float(np.mean([timing.startup_seconds for timing in timings])),
    )


class Runner(Protocol):
    workers: int  # pairs trained at once
    cores: int  # pairs that run at full speed at once; more workers share them
    restart_seconds: float  # the pairs' wait for fresh workers after a trial (measured)

    def describe(self) -> dict:
        """How the pairs are executed, for config.json."""

    def started_line(self) -> str:
        """The same, in words, for the log."""

    def run(
        self,
        data: TrainingData,
        config: CVConfig,
        pairs: Sequence[Pair],
        report: Report,
        done: Done,
    ) -> None:
        """Train every pair; call `report` after each epoch and `done` with each finished
        pair, on the caller's thread."""

    def time_steps(self, data: TrainingData, config: CVConfig, architecture: str) -> StepTiming:
        """Time a few training steps of `architecture` as the pairs will run."""


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
            "gpu": gpu_name() if has_accelerator() else None,
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
    one pair at a time. On a GPU (`accelerator`), the processes take turns on it, each with
    its share of its memory: the GPU is then the one "core" they share."""

    def __init__(self, workers: int, threads: int | None = None, accelerator: bool = False) -> None:
        self.workers = workers
        self.threads = threads or max(1, cpu_count() // workers)
        self.accelerator = accelerator
        self.cores = 1 if accelerator else min(workers, cpu_count())
        self._pool: ProcessPoolExecutor | None = None
        self._reports = None
        self._trial_barriers: dict = {}  # workers in a trial -> their multiprocessing.Barrier
        self._trialled = False  # whether the workers now running have trained a trial's nets
        self.restart_seconds = 0.0  # how long the workers took to start, the last time

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
        }

    def started_line(self) -> str:
        shared = f", sharing {self.cores} cores" if self.workers > self.cores else ""
        if self.accelerator:
            shared = ", sharing one GPU"
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
            share = self.workers if self.accelerator else 1
            with thread_limit(self.threads, share_of_accelerator=share):
                self._pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=context,
                    initializer=_start_worker,
                    initargs=(data, self._reports, self._trial_barriers),
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

    def run(
        self,
        data: TrainingData,
        config: CVConfig,
        pairs: Sequence[Pair],
        report: Report,
        done: Done,
    ) -> None:
        if self._trialled:
            # A process never gives back what a net held: workers that had trained the
            # trial's strided-cnns (two precisions, both rounds) held 800-840 MiB each through
            # the pairs, fresh ones 640-750 (docs/measurements.md). So the pairs start in fresh
            # workers, which costs the workers' start (restart_seconds) once.
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
            for future in pending:
                future.cancel()
            raise

    def time_steps(self, data: TrainingData, config: CVConfig, architecture: str) -> StepTiming:
        """Every worker times the same steps at once: the cores are then as busy as in the run.
        With more workers than cores, as many as there are cores time them again, as in the
        run's last round. The workers start their timed steps together, so that no worker
        times steps while another still builds its net (measured, 2026-11-30, strided-cnn in
        mixed_bfloat16, three workers on two cores, four trials each: unsynchronised 46-52 ms
        a step, synchronised 52-54, three processes training side by side for a minute 48-55)."""
        crowded = mean_timing(self._time_at_once(data, config, architecture, self.workers))
        if self.workers <= self.cores:
            return crowded
        uncrowded = mean_timing(self._time_at_once(data, config, architecture, self.cores))
        # A crowd slows predicting as it slows training, but the trial predicts for under a
        # second after its steps, and workers that end their steps a moment apart predict
        # with a core to themselves: measured, the trial's 0.33 ms an image against ~0.45 ms
        # while scoring 26,880 training rows (--select-hard) with three workers busy.
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


def make_runner(config: CVConfig, ray_address: str | None = None) -> Runner:
    """`ray_address`: Ray tasks on that cluster. Else `config.workers` pairs at once: more
    than one as Ray tasks on this machine where Ray is installed, otherwise in worker
    processes (sharing the GPU, where there is one); 0 chooses for the machine (worker
    processes or this one, never Ray)."""
    from kaggle_digits.ray_pairs import RayPairs, ray_installed

    pairs = config.folds * len(config.members)
    if ray_address is not None or (config.workers > 1 and ray_installed()):
        return RayPairs(config.workers, ray_address, pairs)
    if config.workers == 1:
        return InProcess()
    accelerator = has_accelerator()
    workers = config.workers or auto_workers(config, accelerator)
    return LocalWorkers(workers, accelerator=accelerator) if workers > 1 else InProcess()


# --- inside a worker process ----------------------------------------------------------

_worker_data: TrainingData | None = None
_worker_reports = None
_worker_trial_barriers: dict = {}


def _start_worker(data: TrainingData, reports, trial_barriers: dict) -> None:
    global _worker_data, _worker_reports, _worker_trial_barriers
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
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
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
