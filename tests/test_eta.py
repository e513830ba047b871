"""The ETA of a running cv: pairs at once, workers sharing cores, warm-ups and overheads."""

import pytest

from kaggle_digits.data.competition import load_competition
from kaggle_digits.jobs.cv_pairs import all_pairs
from kaggle_digits.options.config import CVConfig
from kaggle_digits.training.budget import (
    FINISH_SECONDS,
)
from kaggle_digits.training.pairs import (
    EpochReport,
    PairOutput,
)
from kaggle_digits.training.progress import Progress


def test_eta_counts_the_pairs_running_at_once():
    config = CVConfig(folds=2, members=("fast-cnn", "strided-cnn"), epochs=3)
    pairs = all_pairs(config)  # four pairs of three epochs
    progress = Progress(pairs, [], 3, 2, workers=2, log=lambda line: None)
    for pair in pairs[:2]:
        progress.epoch_done(EpochReport(pair, 1, {}, 10.0))
    # two pairs have 2 epochs (20 s) left, then two more of 3 epochs (30 s) each, in parallel
    assert progress.eta() == pytest.approx(50 + FINISH_SECONDS)  # + summing up the run


def test_eta_knows_when_more_workers_than_cores_share_them():
    config = CVConfig(folds=5, members=("fast-cnn",), epochs=2)
    pairs = all_pairs(config)
    progress = Progress(pairs, [], 2, 5, workers=3, log=lambda line: None, cores=2)
    for pair in pairs[:3]:
        progress.epoch_done(EpochReport(pair, 1, {}, 1.0, step=1, steps=100, finished=False))
    for pair in pairs[:3]:
        progress.epoch_done(EpochReport(pair, 1, {}, 15.0))  # 10 s with a core to itself
    # three pairs share the cores for their last epoch (15 s), then two of 2 epochs, a core each
    assert progress.eta() == pytest.approx(15 + 20 + FINISH_SECONDS)


def test_eta_uses_the_measured_crowd_speed():
    config = CVConfig(folds=5, members=("fast-cnn",), epochs=2)
    pairs = all_pairs(config)
    progress = Progress(
        pairs, [], 2, 5, workers=3, log=lambda line: None, cores=2, crowded_speed=0.75
    )
    for pair in pairs[:3]:
        progress.epoch_done(EpochReport(pair, 1, {}, 1.0, step=1, steps=100, finished=False))
    for pair in pairs[:3]:
        progress.epoch_done(EpochReport(pair, 1, {}, 16.0))  # 12 s with a core to itself
    # three pairs share the cores for their last epoch (16 s), then two of 2 epochs, a core each
    assert progress.eta() == pytest.approx(16 + 24 + FINISH_SECONDS)


def test_eta_after_pairs_that_shared_the_cores_counts_only_their_seconds_outside_epochs():
    pairs = all_pairs(CVConfig(folds=5, members=("fast-cnn",), epochs=2))
    progress = Progress(pairs, [], 2, 5, workers=3, log=lambda line: None, cores=2)
    first, last = pairs[:3], pairs[3:]
    for epoch in (1, 2):
        for pair in first:
            progress.epoch_done(EpochReport(pair, epoch, {}, 1.0, step=1, steps=9, finished=False))
        for pair in first:
            progress.epoch_done(EpochReport(pair, epoch, {}, 15.0))  # 10 s with a core each
    for pair in first:  # 3 s of start-up and predictions besides the epochs
        progress.pair_done(PairOutput(pair, b"", None, None, {}, 33.0), 0.99, 0.02)
    for pair in last:
        progress.epoch_done(EpochReport(pair, 1, {}, 1.0, step=1, steps=9, finished=False))
    for pair in last:
        progress.epoch_done(EpochReport(pair, 1, {}, 10.0))
    # the last two each have one 10-s epoch and 2-3 s outside it left, side by side
    assert 10 + 2 + FINISH_SECONDS <= progress.eta() <= 10 + 3 + FINISH_SECONDS


def test_eta_leaves_out_an_epochs_warm_up_and_counts_it_as_overhead():
    pairs = all_pairs(CVConfig(folds=2, members=("fast-cnn",), epochs=3))
    progress = Progress(pairs, [], 3, 2, workers=1, log=lambda line: None)
    progress.epoch_done(EpochReport(pairs[0], 1, {}, 14.0, warmup_seconds=4.0))
    # two more 10-s epochs of the first pair, then three of the second
    assert progress.eta() == pytest.approx(20 + 30 + FINISH_SECONDS)
    progress.epoch_done(EpochReport(pairs[0], 2, {}, 10.0))
    progress.epoch_done(EpochReport(pairs[0], 3, {}, 10.0))
    progress.pair_done(PairOutput(pairs[0], b"", None, None, {}, 37.0), 0.99, 0.02)
    assert progress.overheads == [pytest.approx(3 + 4)]  # start-up, predictions and the warm-up
    assert progress.eta() == pytest.approx(30 + 7 + FINISH_SECONDS)


def test_eta_counts_a_pair_inside_its_first_epoch_as_under_way():
    pairs = all_pairs(CVConfig(folds=2, members=("fast-cnn",), epochs=3))
    progress = Progress(pairs, [], 3, 2, workers=2, log=lambda line: None)
    progress.epoch_done(EpochReport(pairs[1], 1, {}, 9.0, step=90, steps=100, finished=False))
    progress.epoch_done(EpochReport(pairs[0], 1, {}, 10.0))
    # the second pair has 2.1 of its 10-s epochs left, not 3
    assert progress.eta() == pytest.approx(21 + FINISH_SECONDS)


def test_eta_expects_a_trials_pair_overhead_until_a_pair_has_ended():
    pairs = all_pairs(CVConfig(folds=2, members=("fast-cnn",), epochs=2))
    progress = Progress(pairs, [], 2, 2, workers=1, log=lambda line: None, pair_overhead=6.0)
    progress.epoch_done(EpochReport(pairs[0], 1, {}, 14.0, warmup_seconds=4.0))
    # the running pair has 2 s of its overhead left (its warm-up took 4), the next all 6
    assert progress.eta() == pytest.approx(10 + 2 + 20 + 6 + FINISH_SECONDS)
    progress.epoch_done(EpochReport(pairs[0], 2, {}, 10.0))
    progress.pair_done(PairOutput(pairs[0], b"", None, None, {}, 28.0), 0.99, 0.02)
    assert progress.eta() == pytest.approx(20 + 8 + FINISH_SECONDS)  # as measured: 28 - 20


def test_a_running_epochs_progress_shows_and_shortens_the_eta():
    config = CVConfig(folds=2, members=("fast-cnn",), epochs=3)
    pairs = all_pairs(config)
    shown = []
    progress = Progress(pairs, [], 3, 2, workers=2, log=lambda line: None, status=shown.append)
    for pair in pairs:
        progress.epoch_done(EpochReport(pair, 1, {}, 10.0))
    before = progress.eta()
    progress.epoch_done(EpochReport(pairs[0], 2, {}, 5.0, step=50, steps=100, finished=False))
    assert "fold 1 epoch 2/3 [#####.....] 50/100" in shown[-1]
    assert "10.0 steps/s" in shown[-1] and "ETA" in shown[-1]
    assert progress.eta() == before  # the other pair, half an epoch behind, ends last
    progress.epoch_done(EpochReport(pairs[1], 2, {}, 5.0, step=50, steps=100, finished=False))
    assert progress.eta() == pytest.approx(before - 5)


def test_training_reports_progress_inside_each_epoch(small):
    from kaggle_digits.data.dataset import load_dataset
    from kaggle_digits.training.callbacks import EpochReporter
    from kaggle_digits.training.fit import train_model

    dataset = load_dataset(load_competition(small.spec_path), small.data_dir)
    reports = []
    config = CVConfig(epochs=2, batch_size=50, augment=False)
    reporter = EpochReporter(lambda *report: reports.append(report), every_seconds=0)
    train_model(
        "mlp", dataset.train_images, dataset.train_labels, config, 10, 0, callbacks=[reporter]
    )
    partial = [report for report in reports if not report[5]]
    finished = [report for report in reports if report[5]]
    assert [report[0] for report in finished] == [1, 2]
    # the first step of the first epoch traces the graph: its excess is the warm-up
    warmups = [report[6] for report in finished]
    assert warmups[0] > warmups[1] >= 0 and warmups[0] < finished[0][2]
    assert [(report[3], report[4]) for report in partial if report[0] == 1] == [
        (1, 4), (2, 4), (3, 4), (4, 4)
    ]  # fmt: skip
