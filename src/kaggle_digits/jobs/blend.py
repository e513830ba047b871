"""`kaggle-digits blend`: complete runs combined into a new run folder that `submit`,
`predict` and `runs` treat like a trained one.

`greedy` is ensemble selection (Caruana et al., 2004): starting from nothing, each round adds,
with replacement, the run whose probabilities lower the blend's log loss the most; a run's
weight is the share of rounds that picked it. The printed OOF score is honest: the rows of
each fold are blended with weights chosen on the other folds' rows only. The test prediction
uses weights chosen on all rows.
"""

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss

from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import process_alive
from kaggle_digits.data.competition import Competition
from kaggle_digits.data.dataset import load_dataset
from kaggle_digits.reports import plots
from kaggle_digits.reports.tracking import Tracker, run_metrics
from kaggle_digits.store import run_files
from kaggle_digits.store.run_folder import find_run, new_run_dir, point_latest_at

Log = Callable[[str], None]
METHODS = ("greedy", "mean")
ROUNDS = 50  # greedy selection rounds: weights in steps of 2%
STAGING = ".blend-"  # .blend-<pid>-<random>: a blend being written


def blend_runs(
    names: list[str],
    competition: Competition,
    data_root: Path,
    runs_dir: Path,
    method: str = "greedy",
    log: Log = print,
    track: bool = False,
) -> Path:
    """Blend the named complete runs; return the new run folder. `track`: log the blend, its
    sources and weights to MLflow (tracking.py)."""
    tracker = Tracker(track, log)
    if method not in METHODS:
        raise UserError(f"unknown blend method '{method}' (choose from {', '.join(METHODS)})")
    if len(names) < 2:
        raise UserError("give at least two runs to blend")
    sources = [find_run(runs_dir, name, competition) for name in names]
    dataset = load_dataset(competition, data_root)
    fold_of_row = check_compatible(sources, dataset.fingerprint)
    labels = dataset.train_labels
    oof = np.stack([run_files.read_oof_probs(source) for source in sources])
    test = np.stack([run_files.read_test_probs(source) for source in sources])

    choose = greedy_weights if method == "greedy" else mean_weights
    blend_oof = np.zeros_like(oof[0])
    for fold in np.unique(fold_of_row):
        rows = fold_of_row == fold
        fold_weights = choose(oof[:, ~rows], labels[~rows])  # never this fold's own rows
        blend_oof[rows] = np.tensordot(fold_weights, oof[:, rows], axes=1)
    weights = choose(oof, labels)
    blend_test = np.tensordot(weights, test, axes=1)

    source_scores = {
        source.name: float(accuracy_score(labels, probs.argmax(1)))
        for source, probs in zip(sources, oof, strict=True)
    }
    for source, weight in zip(sources, weights, strict=True):
        log(f"{source.name}: OOF {source_scores[source.name]:.5f}  weight {weight:.2f}")
    # written in a hidden folder and renamed into place whole: a killed blend leaves no
    # run folder that looks finished, nor one half-written
    remove_abandoned_blends(Path(runs_dir))
    staging = Path(tempfile.mkdtemp(dir=runs_dir, prefix=f"{STAGING}{os.getpid()}-"))
    try:
        configs = [run_files.read_settled(source) for source in sources]
        run_files.write_settled(
            staging,
            {
                "preset": "blend",
                "competition": competition.slug,
                "method": method,
                "sources": [source.name for source in sources],
                "weights": [round(float(weight), 4) for weight in weights],
                "folds": configs[0]["folds"],
                "seed": configs[0]["seed"],
                "members": [f"{c['preset']}:{'+'.join(c['members'])}" for c in configs],
                "data_fingerprint": dataset.fingerprint,
            },
        )
        run_files.save_folds(staging, fold_of_row)
        run_files.save_probs(staging, blend_oof.astype(np.float32), blend_test.astype(np.float32))
        metrics = blend_metrics(blend_oof, labels, fold_of_row, competition, source_scores, sources)
        predictions = blend_oof.argmax(1)
        plots.confusion_matrix_figure(
            confusion_matrix(labels, predictions, labels=range(competition.num_classes)),
            competition.classes,
            run_files.figure_path(staging, "confusion_matrix"),
        )
        plots.confident_mistakes(
            dataset.train_images,
            labels,
            blend_oof,
            competition.classes,
            run_files.figure_path(staging, "mistakes"),
        )
        summary = (
            f"blend ({method}) of {len(sources)} runs: OOF accuracy {metrics['oof_accuracy']:.5f} "
            f"(each fold blended with weights chosen on the other folds)   per fold "
            f"{metrics['fold_accuracy_mean']:.5f} ± {metrics['fold_accuracy_std']:.5f}   "
            f"log loss {metrics['oof_log_loss']:.4f}"
        )
        run_files.write_summary(staging, summary)
        run_files.write_metrics(staging, metrics)
        run_dir = new_run_dir(Path(runs_dir), "blend")
        os.replace(staging, run_dir)  # onto the empty folder just made for its name
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already, unless it failed
    point_latest_at(run_dir)
    tracker.start(run_dir, competition.slug, blend_params(method, sources, weights))
    tracker.finish(run_dir, run_metrics(metrics))
    log(summary)
    log(f"run {run_dir}")
    return run_dir


def remove_abandoned_blends(runs_dir: Path) -> None:
    """The hidden folders of blends whose process died before renaming them into place."""
    for folder in runs_dir.glob(f"{STAGING}*"):
        pid = folder.name.removeprefix(STAGING).split("-")[0]
        if folder.is_dir() and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def blend_params(method: str, sources: list[Path], weights: np.ndarray) -> dict:
    """The blend's MLflow parameters: its method, its sources and each one's weight."""
    named = {
        f"weight.{source.name}": round(float(w), 4)
        for source, w in zip(sources, weights, strict=True)
    }
    return {"preset": "blend", "method": method, "sources": [s.name for s in sources]} | named


def check_compatible(sources: list[Path], fingerprint: str) -> np.ndarray:
    """The shared fold of every row; one clear error naming the run that differs."""
    first = sources[0]
    first_config = run_files.read_settled(first)
    folds = run_files.read_folds(first)
    for source in sources:
        config = run_files.read_settled(source)
        if config.get("data_fingerprint") != fingerprint:
            raise UserError(f"{source.name}: made on other training data than the data folder's")
        if not np.array_equal(run_files.read_folds(source), folds):
            raise UserError(
                f"{source.name}: its folds differ from {first.name}'s (--seed "
                f"{config.get('seed')} --folds {config.get('folds')} vs --seed "
                f"{first_config.get('seed')} --folds {first_config.get('folds')}); redo it with "
                f"`kaggle-digits cv --seed {first_config.get('seed')} "
                f"--folds {first_config.get('folds')} ...`"
            )
    return folds


def true_class_probs(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """probs (sources x rows x classes) -> each source's probability of the true class."""
    return probs[:, np.arange(len(labels)), labels]


def greedy_weights(probs: np.ndarray, labels: np.ndarray, rounds: int = ROUNDS) -> np.ndarray:
    """Forward selection with replacement by log loss. The blend is linear in the sources, so
    its log loss needs only each source's probability of the true class."""
    truth = true_class_probs(probs, labels)
    counts = np.zeros(len(probs))
    total = np.zeros(truth.shape[1])
    for step in range(1, rounds + 1):
        losses = -np.log(np.clip((total + truth) / step, 1e-15, 1)).mean(axis=1)
        best = int(np.argmin(losses))
        counts[best] += 1
        total += truth[best]
    return counts / counts.sum()


def mean_weights(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.full(len(probs), 1 / len(probs))


def blend_metrics(
    oof: np.ndarray,
    labels: np.ndarray,
    fold_of_row: np.ndarray,
    competition: Competition,
    source_scores: dict[str, float],
    sources: list[Path],
) -> dict:
    predictions = oof.argmax(1)
    fold_accuracies = [
        float(accuracy_score(labels[fold_of_row == fold], predictions[fold_of_row == fold]))
        for fold in np.unique(fold_of_row)
    ]
    source_metrics = [run_files.read_metrics(source) for source in sources]
    return {
        "oof_accuracy": float(accuracy_score(labels, predictions)),
        "oof_log_loss": float(log_loss(labels, oof, labels=range(competition.num_classes))),
        "fold_accuracy_mean": float(np.mean(fold_accuracies)),
        "fold_accuracy_std": float(np.std(fold_accuracies)),
        "fold_accuracies": fold_accuracies,
        "member_oof_accuracies": source_scores,
        "pairs": [],
        "optimistic": any(metrics.get("optimistic") for metrics in source_metrics),
        # the sources trained one after another; runs saved before wall_minutes count 0
        "wall_minutes": round(sum(m.get("wall_minutes", 0) for m in source_metrics), 1),
        "pair_minutes": round(
            sum(m.get("pair_minutes", m.get("training_minutes", 0)) for m in source_metrics), 1
        ),
    }
