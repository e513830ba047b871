"""How pairs run: weight averaging, and worker processes that leave the same run folder."""

import io
import json
import math
import multiprocessing
import time
import zipfile
from dataclasses import replace

import keras
import numpy as np
import pytest
from helpers import TINY, modules_imported, run_tiny, small_dataset, training_data

from kaggle_digits.jobs.cv import fold_assignment
from kaggle_digits.options.config import CVConfig
from kaggle_digits.store.run_files import pair_dir
from kaggle_digits.training import local_pairs
from kaggle_digits.training.callbacks import BatchClock
from kaggle_digits.training.fit import train_model
from kaggle_digits.training.pairs import Pair, fit_pair


class LastStepWeights(keras.callbacks.Callback):
    """The raw weights after the last training step, before fit() swaps in the average."""

    def on_train_batch_end(self, batch, logs=None):
        self.weights = [np.array(w) for w in self.model.trainable_weights]


def test_ema_weights_are_the_model_and_differ_from_the_last_step(small):
    dataset = small_dataset(small)
    config = CVConfig(members=("tiny-cnn",), epochs=2, batch_size=32, ema=0.9, augment=False)
    last_step = LastStepWeights()
    model, _ = train_model(
        "tiny-cnn", dataset.train_images, dataset.train_labels, config, 10, 1, callbacks=[last_step]
    )
    final = [np.array(w) for w in model.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(final, last_step.weights, strict=True))


class FinalLearningRate(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        self.value = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def test_fractional_epochs_train_their_share_of_a_pass_to_the_schedules_end(small):
    dataset = small_dataset(small)
    config = CVConfig(members=("tiny-cnn",), epochs=1.5, batch_size=32, augment=False)
    clock, final = BatchClock(), FinalLearningRate()
    _, history = train_model(
        "tiny-cnn",
        dataset.train_images,
        dataset.train_labels,
        config,
        10,
        1,
        callbacks=[clock, final],
    )
    steps_per_pass = math.ceil(len(dataset.train_labels) / 32)
    assert len(history["loss"]) == 2  # one and a half passes: two epochs of equal steps
    assert len(clock.batch_ends) == 2 * math.ceil(round(1.5 * steps_per_pass) / 2)
    assert final.value < config.learning_rate / 100  # the one-cycle schedule has run its course


@pytest.mark.parametrize("option", [{"ema": 0.9}, {"deskew": True}])
def test_the_saved_model_is_the_one_that_predicted(small, option):
    """With EMA on, the saved .keras file holds the averaged weights that made the run's
    held-out and test probabilities; with deskewing on, it holds the Deskew layer too."""
    from kaggle_digits.models.layers import Deskew

    data = training_data(small)
    config = CVConfig(members=("tiny-cnn",), epochs=2, batch_size=32, **option)
    output = fit_pair(data, config, Pair(0, 0, "tiny-cnn", 7), report=lambda report: None)
    with zipfile.ZipFile(io.BytesIO(output.model_file)):
        pass  # a real .keras archive
    path = small.data_dir / "model.keras"
    path.write_bytes(output.model_file)
    saved = keras.saving.load_model(path)
    deskewing = [layer for layer in saved.layers if isinstance(layer, Deskew)]
    assert len(deskewing) == config.deskew
    np.testing.assert_allclose(
        saved.predict(data.test_images, verbose=0), output.test_probs, atol=1e-5
    )


def test_workers_leave_the_same_run_folder(small, tmp_path):
    sequential = run_tiny(small, tmp_path / "one", TINY)
    parallel = run_tiny(small, tmp_path / "two", replace(TINY, workers=2))
    files = [
        sorted(str(path.relative_to(result.run_dir)) for path in result.run_dir.rglob("*"))
        for result in (sequential, parallel)
    ]
    assert files[0] == files[1]
    configs = [json.loads((r.run_dir / "config.json").read_text()) for r in (sequential, parallel)]
    assert configs[0]["workers"] == 1 and configs[1]["workers"] == 2
    assert np.array_equal(
        np.load(sequential.run_dir / "folds.npy"), np.load(parallel.run_dir / "folds.npy")
    )
    # the same seeds per pair; only the thread count differs, which moves the last digits
    np.testing.assert_allclose(sequential.oof_probs, parallel.oof_probs, atol=1e-3)
    assert (pair_dir(parallel.run_dir, 1, 1, "lc-cnn") / "result.json").is_file()


def test_fewer_folds_chosen_after_the_workers_got_the_data_are_the_ones_trained(
    small, tmp_path, monkeypatch
):
    """A short budget may take fewer folds once the trial has started the workers with the
    run's first fold assignment: the pairs still train and are scored on the new one."""

    def fewer_folds(config, data, runner, started, log, priors):
        runner.time_steps(data, config, "mlp")  # the workers start with the 3-fold data
        return replace(config, folds=2, epochs=1), {"epochs": 1}

    monkeypatch.setattr("kaggle_digits.jobs.cv.fit_budget", fewer_folds)
    config = replace(TINY, folds=3, members=("mlp",), budget_minutes=5, workers=2)
    result = run_tiny(small, tmp_path, config)
    labels = small_dataset(small).train_labels
    assert np.array_equal(
        np.load(result.run_dir / "folds.npy"), fold_assignment(labels, 2, config.seed)
    )
    assert json.loads((result.run_dir / "config.json").read_text())["folds"] == 2
    assert len(result.metrics["pairs"]) == 2 and np.isfinite(result.metrics["oof_accuracy"])


def test_the_driver_of_a_run_with_workers_never_loads_keras():
    """Checking options, planning and writing the run folder need no Keras: with workers, the
    driver stays ~0.5 GB lighter."""
    driver_work = (
        "from kaggle_digits.reports import plots\n"
        "from kaggle_digits.training import budget, progress\n"
        "from kaggle_digits.jobs import cv\n"
        "from kaggle_digits.options.config import provenance\n"
        "from kaggle_digits.options.presets import preset_config\n"
        "preset_config('default', members=('strided-cnn', 'lc-cnn')); provenance('x')"
    )
    assert modules_imported(driver_work, "keras", "tensorflow") == [False, False]


def test_tensorflow_trains_with_onednn_unless_told_not_to():
    """TensorFlow picks its faster oneDNN kernels by itself only on CPUs with AVX-512 VNNI or
    newer; kaggle_digits asks for them everywhere, and leaves a user's own choice alone."""
    import os
    import subprocess
    import sys

    ask = (
        "import kaggle_digits.training.fit\n"
        "from tensorflow.python.util import _pywrap_util_port as port\n"
        "print(port.IsMklEnabled())"
    )
    environment = {
        name: value for name, value in os.environ.items() if name != "TF_ENABLE_ONEDNN_OPTS"
    }
    for setting, expected in ((None, "True"), ("0", "False")):
        env = environment | ({"TF_ENABLE_ONEDNN_OPTS": setting} if setting else {})
        answer = subprocess.run(
            [sys.executable, "-c", ask], capture_output=True, text=True, env=env
        )
        assert answer.stdout.split()[-1:] == [expected], answer.stderr


def test_learning_curves_score_a_spread_of_the_held_out_rows():
    from kaggle_digits.training.pairs import CURVE_ROWS, learning_curve_rows

    rows = learning_curve_rows(8400, CVConfig())
    assert CURVE_ROWS / 2 < len(rows) <= CURVE_ROWS
    assert rows[0] == 0 and rows[-1] >= 8400 - 8400 / len(rows)  # from end to end
    assert (np.diff(rows) > 0).all()
    assert list(learning_curve_rows(500, CVConfig())) == list(range(500))
    # early stopping chooses the epoch on these rows: it gets every one of them
    assert len(learning_curve_rows(8400, CVConfig(early_stopping=3))) == 8400


def test_more_local_workers_than_cores_share_them(monkeypatch):

    monkeypatch.setattr(local_pairs, "cpu_count", lambda: 2)
    three = local_pairs.LocalWorkers(3)
    assert (three.cores, three.threads) == (2, 1)
    assert three.started_line().endswith("with 1 thread(s), sharing 2 cores")
    two = local_pairs.LocalWorkers(2)
    assert two.cores == 2 and "sharing" not in two.started_line()


def test_a_crowd_of_workers_is_timed_again_as_its_last_round_runs(monkeypatch):
    from kaggle_digits.training import pairs

    monkeypatch.setattr(local_pairs, "cpu_count", lambda: 2)
    busy = []

    def time_at_once(self, data, config, architecture, count):
        busy.append(count)
        step = {3: 0.3, 2: 0.24}[count]  # three sharing two cores, then two alone
        # the crowd's short prediction ran partly alone, and reads as fast as the two's
        return [pairs.StepTiming(architecture, step, 0.001, 2.0)] * count

    monkeypatch.setattr(local_pairs.LocalWorkers, "_time_at_once", time_at_once)
    timing = local_pairs.LocalWorkers(3).time_steps(None, CVConfig(), "tiny-cnn")
    assert busy == [3, 2]
    assert (timing.step_seconds, timing.uncrowded_step_seconds) == (0.3, 0.24)
    assert timing.predict_seconds == pytest.approx(0.001 * 0.3 / 0.24)  # slowed as the steps
    busy.clear()
    assert (
        local_pairs.LocalWorkers(2).time_steps(None, CVConfig(), "tiny-cnn").uncrowded_step_seconds
        is None
    )
    assert busy == [2]


def test_a_trials_wait_for_the_other_workers_is_not_timed(small):
    from kaggle_digits.training import pairs

    waits = []
    wait_seconds = 3.0

    def wait_for_the_others():
        waits.append(time.perf_counter())
        time.sleep(wait_seconds)

    data = training_data(small)
    started = time.perf_counter()
    timing = pairs.time_steps(data, CVConfig(batch_size=32), "mlp", wait_for_the_others)
    assert len(waits) == 1
    timed_steps = max(12, math.ceil(pairs.TRIAL_IMAGES / 32))
    # counted, the wait alone would make the timed steps last longer than it
    assert timing.step_seconds * timed_steps < wait_seconds
    assert timing.startup_seconds < waits[0] - started  # the warm-up steps came before it


def test_workers_sharing_cores_time_their_steps_together_in_both_rounds(small, monkeypatch):
    """Three workers on two cores: the crowded round waits for all three, the last round's
    for two; neither waits for a worker that is not in it."""

    monkeypatch.setattr(local_pairs, "cpu_count", lambda: 2)
    data = training_data(small)
    with local_pairs.LocalWorkers(3) as runner:
        started = time.perf_counter()
        timing = runner.time_steps(data, CVConfig(batch_size=32), "mlp")
    assert timing.uncrowded_step_seconds is not None
    assert time.perf_counter() - started < local_pairs.TRIAL_WAIT_SECONDS


def test_the_pairs_train_in_fresh_workers_after_a_trial(small):
    """A process keeps what a trial's nets held: the pairs start in new worker processes."""
    from kaggle_digits.jobs.cv_pairs import all_pairs

    data = training_data(small)
    config = replace(TINY, members=("mlp",), workers=2)
    finished = []
    with local_pairs.LocalWorkers(2) as runner:
        runner.time_steps(data, config, "mlp")
        trial_workers = {process.pid for process in multiprocessing.active_children()}
        runner.run(data, config, all_pairs(config), lambda report: None, finished.append)
        pair_workers = {process.pid for process in multiprocessing.active_children()}
    assert len(trial_workers) == len(pair_workers) == 2
    assert not trial_workers & pair_workers
    assert sorted(output.pair.fold for output in finished) == [0, 1]
    assert runner.restart_seconds > 0  # measured as the workers started


def test_the_pairs_train_in_as_many_workers_as_the_trial_settled(small, monkeypatch):
    """Three workers timed, then made two (the budget found the crowd slow): the pairs train
    in two fresh processes."""
    from kaggle_digits.jobs.cv_pairs import all_pairs

    monkeypatch.setattr(local_pairs, "cpu_count", lambda: 2)
    data = training_data(small)
    config = replace(TINY, members=("mlp",), workers=3)
    finished = []
    with local_pairs.LocalWorkers(3) as runner:
        runner.time_steps(data, config, "mlp")
        runner.use_workers(2)
        assert (runner.workers, runner.cores, runner.describe()["pairs_at_once"]) == (2, 2, 2)
        runner.run(data, config, all_pairs(config), lambda report: None, finished.append)
        assert len(multiprocessing.active_children()) == 2
    assert sorted(output.pair.fold for output in finished) == [0, 1]
