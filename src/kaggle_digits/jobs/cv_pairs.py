"""The pairs' half of `cv`: each (fold, member) pair trained by the engine and saved the
moment it finishes (a damaged one trained again), then the run finished: the members
averaged into out-of-fold and test probabilities, scored, plotted, summed up in a table;
metrics.json last, which makes the run complete."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss

from kaggle_digits.base import faults
from kaggle_digits.base.errors import UserError
from kaggle_digits.data.competition import Competition
from kaggle_digits.data.dataset import Dataset
from kaggle_digits.options.config import CVConfig
from kaggle_digits.reports import plots
from kaggle_digits.reports.tracking import Tracker
from kaggle_digits.store import run_files
from kaggle_digits.store.damage import pair_damage
from kaggle_digits.store.run_files import is_finished, pair_dir
from kaggle_digits.store.run_folder import point_latest_at
from kaggle_digits.training.pairs import EpochReport, Pair, PairOutput, Runner, TrainingData
from kaggle_digits.training.progress import Progress

Log = Callable[[str], None]


@dataclass(frozen=True)
class CVResult:
    run_dir: Path
    metrics: dict
    oof_probs: np.ndarray
    test_probs: np.ndarray


def pair_seed(config: CVConfig, fold: int, member: int) -> int:
    return config.seed * 1000 + fold * 10 + member


def all_pairs(config: CVConfig) -> list[Pair]:
    return [
        Pair(fold, member, architecture, pair_seed(config, fold, member))
        for fold, member, architecture in config.pair_names
    ]


def train_pairs(
    run_dir: Path,
    config: CVConfig,
    data: TrainingData,
    runner: Runner,
    log: Log,
    status: Log | None = None,
    crowded_speed: float | None = None,
    pair_overhead: float = 0.0,
    tracker: Tracker | None = None,
) -> None:
    """Train the pairs not yet finished; each is saved the moment it finishes, and each
    finished epoch goes to `tracker` too.
    `crowded_speed`: of each worker while more workers than cores run, where a trial measured
    it (schedule.job_speed); `pair_overhead`: a pair's seconds outside its epochs, with a
    core to itself, as a trial expects them (both for the ETA)."""
    pairs = all_pairs(config)
    finished = [pair for pair in pairs if is_sound(run_dir, pair, data, log)]
    progress = Progress(
        pairs,
        finished,
        config.whole_epochs,
        config.folds,
        config.workers,
        log,
        status=status,
        cores=runner.cores,
        crowded_speed=crowded_speed,
        pair_overhead=pair_overhead,
    )
    for pair in finished:
        log(f"{progress.label(pair)}: done")

    def epoch_done(report: EpochReport) -> None:
        if report.finished:
            faults.reached("epoch")
        progress.epoch_done(report)
        if tracker is not None and report.finished:
            pair = report.pair
            series = f"fold{pair.fold + 1}/member{pair.member + 1}-{pair.architecture}"
            tracker.epoch(series, report.epoch, report.logs)

    def save(output: PairOutput) -> None:
        result = save_pair(run_dir, output, data)
        progress.pair_done(output, result["holdout_accuracy"], result["holdout_loss"])

    try:
        pending = [pair for pair in pairs if pair not in finished]
        runner.run(data, config, pending, epoch_done, save)
    except (KeyboardInterrupt, UserError):
        log(f"stopped: `kaggle-digits cv --resume {run_dir}` finishes this run")
        raise


def is_sound(run_dir: Path, pair: Pair, data: TrainingData, log: Log) -> bool:
    """Whether a pair is finished and its files whole; a damaged one is unfinished again."""
    folder = folder_of(run_dir, pair)
    if not is_finished(folder):
        return False
    holdout_rows = int((data.fold_of_row == pair.fold).sum())
    damage = pair_damage(folder, holdout_rows, len(data.test_images))
    if damage is None:
        return True
    log(f"{damage}: training fold {pair.fold + 1}, member {pair.member + 1} again")
    run_files.unfinish(folder)
    return False


def folder_of(run_dir: Path, pair: Pair) -> Path:
    return pair_dir(run_dir, pair.fold, pair.member, pair.architecture)


def save_pair(run_dir: Path, output: PairOutput, data: TrainingData) -> dict:
    """Write a finished pair's model and predictions into its folder, result.json last."""
    pair = output.pair
    folder = folder_of(run_dir, pair)
    holdout_labels = data.train_labels[data.fold_of_row == pair.fold]
    result = {
        "fold": pair.fold,
        "member": pair.member,
        "architecture": pair.architecture,
        "holdout_accuracy": float(accuracy_score(holdout_labels, output.holdout_probs.argmax(1))),
        "holdout_loss": float(
            log_loss(holdout_labels, output.holdout_probs, labels=range(data.num_classes))
        ),
        "epochs_trained": len(output.history.get("loss", [])),
        "seconds": round(output.seconds, 1),
        "finished_at": round(time.time(), 1),  # for the run's wall time (wall_minutes)
    }
    run_files.save_pair(
        folder, output.model_file, output.holdout_probs, output.test_probs, output.history, result
    )
    return result


def finish_run(
    run_dir: Path,
    config: CVConfig,
    dataset: Dataset,
    fold_of_row: np.ndarray,
    competition: Competition,
    log: Log,
) -> CVResult:
    """Average the members into OOF and test probabilities, score, plot; metrics.json last."""
    labels, classes = dataset.train_labels, competition.num_classes
    test_probs = np.zeros((len(dataset.test_images), classes), dtype=np.float32)
    member_oof = np.zeros((len(config.members), len(labels), classes), dtype=np.float32)
    pairs, histories = [], {}
    for fold in range(config.folds):
        holdout_rows = fold_of_row == fold
        for member, architecture in enumerate(config.members):
            folder = pair_dir(run_dir, fold, member, architecture)
            pairs.append(run_files.read_pair_result(folder))
            holdout_probs, pair_test_probs = run_files.read_pair_probs(folder)
            member_oof[member, holdout_rows] = holdout_probs
            test_probs += pair_test_probs
            histories.setdefault(fold, {})[architecture] = run_files.read_history(folder)
    oof_probs = member_oof.mean(axis=0)
    test_probs /= config.folds * len(config.members)

    oof_predictions = oof_probs.argmax(axis=1)
    fold_accuracies = [
        float(accuracy_score(labels[fold_of_row == fold], oof_predictions[fold_of_row == fold]))
        for fold in range(config.folds)
    ]
    metrics = {
        "oof_accuracy": float(accuracy_score(labels, oof_predictions)),
        "oof_log_loss": float(log_loss(labels, oof_probs, labels=range(classes))),
        "fold_accuracy_mean": float(np.mean(fold_accuracies)),
        "fold_accuracy_std": float(np.std(fold_accuracies)),
        "fold_accuracies": fold_accuracies,
        "member_oof_accuracies": {
            f"{member}-{architecture}": float(accuracy_score(labels, member_oof[member].argmax(1)))
            for member, architecture in enumerate(config.members)
        },
        "pairs": pairs,
        "optimistic": config.optimistic,
        "wall_minutes": round(training_wall_seconds(pairs) / 60, 1),
        "pair_minutes": round(sum(pair["seconds"] for pair in pairs) / 60, 1),
    }
    run_files.save_probs(run_dir, oof_probs, test_probs)
    figure = partial(run_files.figure_path, run_dir)
    plots.learning_curves(histories, figure("learning_curves"))
    plots.confusion_matrix_figure(
        confusion_matrix(labels, oof_predictions, labels=range(classes)),
        competition.classes,
        figure("confusion_matrix"),
    )
    plots.confident_mistakes(
        dataset.train_images, labels, oof_probs, competition.classes, figure("mistakes")
    )
    summary = summary_table(config, metrics)
    run_files.write_summary(run_dir, summary)
    run_files.write_metrics(run_dir, metrics)
    point_latest_at(run_dir)
    log(summary)
    return CVResult(run_dir, metrics, oof_probs, test_probs)


def training_wall_seconds(pairs: list[dict]) -> float:
    """The time during which at least one pair trained: the union of the pairs' spans, so
    pairs side by side count once, and a resumed run's pause not at all. Pairs saved before
    result.json had `finished_at` count their own seconds."""
    spans = sorted(
        (pair["finished_at"] - pair["seconds"], pair["finished_at"])
        for pair in pairs
        if "finished_at" in pair
    )
    total = sum(pair["seconds"] for pair in pairs if "finished_at" not in pair)
    covered_until = -math.inf
    for start, end in spans:
        total += max(0.0, end - max(start, covered_until))
        covered_until = max(covered_until, end)
    return total


def summary_table(config: CVConfig, metrics: dict) -> str:
    """Held-out accuracy of each (fold, member), the ensemble per fold, and the CV score."""
    names = [f"{member}-{arch}" for member, arch in enumerate(config.members)]
    width = max(12, *(len(name) + 2 for name in names))
    header = "fold".ljust(6) + "".join(name.rjust(width) for name in names) + "ensemble".rjust(12)
    lines = [header]
    by_pair = {(pair["fold"], pair["member"]): pair for pair in metrics["pairs"]}
    for fold in range(config.folds):
        cells = "".join(
            f"{by_pair[fold, member]['holdout_accuracy']:.5f}".rjust(width)
            for member in range(len(config.members))
        )
        lines.append(f"{fold + 1:<6}{cells}{metrics['fold_accuracies'][fold]:>12.5f}")
    member_cells = "".join(
        f"{metrics['member_oof_accuracies'][name]:.5f}".rjust(width) for name in names
    )
    lines.append(f"{'OOF':<6}{member_cells}{metrics['oof_accuracy']:>12.5f}")
    lines.append(
        f"CV accuracy (out-of-fold) {metrics['oof_accuracy']:.5f}   "
        f"per fold {metrics['fold_accuracy_mean']:.5f} ± {metrics['fold_accuracy_std']:.5f}   "
        f"log loss {metrics['oof_log_loss']:.4f}   training {metrics['wall_minutes']} min "
        f"wall time ({metrics['pair_minutes']} pair-minutes)"
    )
    if metrics["optimistic"]:
        lines.append(
            "note: early stopping chose epochs on each fold's held-out rows, "
            "so this CV score is optimistic"
        )
    return "\n".join(lines)
