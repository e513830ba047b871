"""The contract between a cross-validation run and whatever executes its (fold, member) pairs:
the pair types, the Runner protocol, and training one pair (fit_pair) or timing a few of its
steps (time_steps), which every engine calls.

A pair trains one member on the other folds and predicts its held-out fold and the test set.
Whatever runs it (local_pairs.py: in this process or in worker processes; ray_pairs.py: as Ray
tasks), it comes back as a PairOutput, which cv_pairs.py writes into the run folder, so every
engine leaves the same files. Each pair's seed comes from its fold and member, never from the
worker that runs it.
"""

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from kaggle_digits.options.config import CVConfig


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


# Held-out rows scored after each epoch for the learning curves: enough for a curve, at a
# fraction of scoring the whole fold (see docs/measurements.md#learning-curve-rows)
CURVE_ROWS = 2000

Report = Callable[[EpochReport], None]
Done = Callable[[PairOutput], None]


@dataclass(frozen=True)
class FoldRows:
    """A pair's rows: it trains on every fold but its own, predicts its own, and scores
    `curve_rows` of them after each epoch for the learning curves."""

    train_images: np.ndarray
    train_labels: np.ndarray
    holdout_images: np.ndarray
    holdout_labels: np.ndarray
    curve_rows: np.ndarray

    @property
    def curve_holdout(self) -> tuple[np.ndarray, np.ndarray]:
        return self.holdout_images[self.curve_rows], self.holdout_labels[self.curve_rows]


def fold_rows(data: TrainingData, config: CVConfig, fold: int) -> FoldRows:
    train_rows, holdout_rows = data.fold_of_row != fold, data.fold_of_row == fold
    return FoldRows(
        data.train_images[train_rows],
        data.train_labels[train_rows],
        data.train_images[holdout_rows],
        data.train_labels[holdout_rows],
        learning_curve_rows(int(holdout_rows.sum()), config),
    )


def fit_pair(data: TrainingData, config: CVConfig, pair: Pair, report: Report) -> PairOutput:
    """Train pair.architecture on every fold but pair.fold; predict its held-out fold and the
    test set."""
    import keras

    from kaggle_digits.training.callbacks import EpochReporter
    from kaggle_digits.training.fit import predict_probs, train_model

    started = time.perf_counter()
    rows = fold_rows(data, config, pair.fold)
    model, history = train_model(
        pair.architecture,
        rows.train_images,
        rows.train_labels,
        config,
        data.num_classes,
        pair.seed,
        holdout=rows.curve_holdout,
        callbacks=[EpochReporter(lambda *epoch: report(EpochReport(pair, *epoch)))],
    )
    holdout_probs = predict_probs(model, rows.holdout_images, config)
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
        path = Path(scratch) / "pair.keras"  # Keras insists on the suffix
        model.save(path)
        return path.read_bytes()


# a trial times at least this many training images (12 steps of 128), so that small batches
# are timed over as long a stretch as large ones
TRIAL_IMAGES = 1536
# Steps trained before the timed ones: a new process's first steps run slow
# (see docs/measurements.md#trial-warm-up)
TRIAL_WARMUP_STEPS = 8


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

    from kaggle_digits.training.callbacks import AfterSteps, BatchClock
    from kaggle_digits.training.feeding import predict_batches
    from kaggle_digits.training.fit import train_model

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
    predict_batches(
        model, sample
    )  # a first pass reads slower (docs/measurements.md#the-prediction-pass)
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
