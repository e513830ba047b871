"""Stratified k-fold cross-validation of a CNN ensemble: the fold loop, the ensemble average,
the run folder and resumption.

runs/<run-id>/
  config.json          every option, plus data fingerprint, git commit, package versions
  folds.npy            the fold of each training row
  fold<k>/member<m>-<architecture>/
      model.keras, holdout_probs.npy, test_probs.npy, history.json,
      result.json      written last: the pair is finished when, and only when, it exists
  oof_probs.npy, test_probs.npy, plots, summary.txt
  metrics.json         written last: the run is complete when, and only when, it exists
"""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import keras
import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss
from sklearn.model_selection import StratifiedKFold

from kaggle_digits import plots
from kaggle_digits.competition import Competition
from kaggle_digits.config import CVConfig, provenance, validate
from kaggle_digits.data import Dataset, load_dataset
from kaggle_digits.errors import UserError
from kaggle_digits.files import read_json, save_array, write_json
from kaggle_digits.training import predict_probs, train_model

Log = Callable[[str], None]


@dataclass(frozen=True)
class CVResult:
    run_dir: Path
    metrics: dict
    oof_probs: np.ndarray
    test_probs: np.ndarray


def fold_assignment(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The held-out fold of each row: stratified by label, shuffled with the seed."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of_row = np.empty(len(labels), dtype=np.int64)
    for fold, (_, holdout_rows) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        fold_of_row[holdout_rows] = fold
    return fold_of_row


def pair_dir(run_dir: Path, fold: int, member: int, architecture: str) -> Path:
    return run_dir / f"fold{fold}" / f"member{member}-{architecture}"


def pair_seed(config: CVConfig, fold: int, member: int) -> int:
    return config.seed * 1000 + fold * 10 + member


def run_cv(
    config: CVConfig,
    competition: Competition,
    data_root: Path,
    runs_dir: Path,
    resume: Path | None = None,
    log: Log = print,
) -> CVResult:
    """Train every (fold, member) pair not yet finished, then score and save the ensemble."""
    dataset = load_dataset(competition, data_root)
    if resume is not None:
        run_dir = Path(resume)
        config = resume_config(run_dir, dataset)
    else:
        validate(config)
        run_dir = new_run_dir(Path(runs_dir), config.preset)
        write_json(run_dir / "config.json", {**config.to_dict(), **provenance(dataset.fingerprint)})
        save_array(
            run_dir / "folds.npy", fold_assignment(dataset.train_labels, config.folds, config.seed)
        )
    fold_of_row = np.load(run_dir / "folds.npy")
    log(f"run {run_dir}")
    log("config " + ", ".join(f"{key}={value}" for key, value in config.to_dict().items()))

    clock = Clock(total_epochs=config.folds * len(config.members) * config.epochs, log=log)
    try:
        for fold in range(config.folds):
            for member, architecture in enumerate(config.members):
                folder = pair_dir(run_dir, fold, member, architecture)
                if (folder / "result.json").exists():
                    log(f"fold {fold + 1}/{config.folds} member {member + 1} {architecture}: done")
                    clock.skip(config.epochs)
                    continue
                train_pair(dataset, fold_of_row, config, competition, fold, member, folder, clock)
    except KeyboardInterrupt:
        log(f"interrupted: `kaggle-digits cv --resume {run_dir}` finishes this run")
        raise
    return finish_run(run_dir, config, dataset, fold_of_row, competition, log)


def new_run_dir(runs_dir: Path, preset: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = runs_dir / f"{stamp}-{preset}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = runs_dir / f"{stamp}-{preset}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


def resolve_resume(name: str, runs_dir: Path, overrides: dict) -> Path:
    """The folder of the run to resume; its saved options apply, so none may be given."""
    given = [key for key, value in overrides.items() if value is not None]
    if given:
        options = ", ".join("--" + key.replace("_", "-") for key in given)
        raise UserError(f"--resume uses the run's saved options; drop {options}")
    return run_folder(name, runs_dir)


def run_folder(name: str, runs_dir: Path) -> Path:
    """A run given as a folder path, or as a folder name inside runs_dir."""
    run_dir = Path(name) if Path(name).is_dir() else Path(runs_dir) / name
    if not run_dir.is_dir():
        raise UserError(f"{name}: no such run (looked in {runs_dir})")
    return run_dir


def resume_config(run_dir: Path, dataset: Dataset) -> CVConfig:
    """The saved options of an unfinished run, after checking it is one and fits the data."""
    if not (run_dir / "config.json").is_file() or not (run_dir / "folds.npy").is_file():
        raise UserError(f"{run_dir}: not a run folder (no config.json or folds.npy)")
    if (run_dir / "metrics.json").exists():
        raise UserError(f"{run_dir}: the run is already complete; nothing to resume")
    saved = read_json(run_dir / "config.json")
    if saved.get("data_fingerprint") != dataset.fingerprint:
        raise UserError(f"{run_dir}: the run was made on other data (the CSVs have changed)")
    return CVConfig.from_dict(saved)


def train_pair(
    dataset: Dataset,
    fold_of_row: np.ndarray,
    config: CVConfig,
    competition: Competition,
    fold: int,
    member: int,
    folder: Path,
    clock: "Clock",
) -> None:
    """Train one member on the other folds; save its model and predictions, result.json last."""
    architecture = config.members[member]
    train_rows, holdout_rows = fold_of_row != fold, fold_of_row == fold
    holdout_images = dataset.train_images[holdout_rows]
    holdout_labels = dataset.train_labels[holdout_rows]
    seed = pair_seed(config, fold, member)
    started = time.perf_counter()
    clock.label = (
        f"fold {fold + 1}/{config.folds} member {member + 1}/{len(config.members)} {architecture}"
    )
    model, history = train_model(
        architecture,
        dataset.train_images[train_rows],
        dataset.train_labels[train_rows],
        config,
        competition.num_classes,
        seed,
        holdout=(holdout_images, holdout_labels),
        callbacks=[clock.callback(config.epochs)],
    )
    holdout_probs = predict_probs(model, holdout_images, config, seed)
    test_probs = predict_probs(model, dataset.test_images, config, seed)
    folder.mkdir(parents=True, exist_ok=True)
    model_tmp = folder / ".model-partial.keras"  # .keras suffix: Keras insists on it
    model.save(model_tmp)
    os.replace(model_tmp, folder / "model.keras")
    save_array(folder / "holdout_probs.npy", holdout_probs)
    save_array(folder / "test_probs.npy", test_probs)
    write_json(folder / "history.json", history)
    result = {
        "fold": fold,
        "member": member,
        "architecture": architecture,
        "holdout_accuracy": float(accuracy_score(holdout_labels, holdout_probs.argmax(1))),
        "holdout_loss": float(
            log_loss(holdout_labels, holdout_probs, labels=range(competition.num_classes))
        ),
        "epochs_trained": len(history["loss"]),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(folder / "result.json", result)
    clock.log(
        f"{clock.label}: held-out accuracy {result['holdout_accuracy']:.5f} "
        f"loss {result['holdout_loss']:.4f} in {result['seconds'] / 60:.1f} min"
    )
    keras.backend.clear_session()


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
            pairs.append(read_json(folder / "result.json"))
            member_oof[member, holdout_rows] = np.load(folder / "holdout_probs.npy")
            test_probs += np.load(folder / "test_probs.npy")
            histories.setdefault(fold, {})[architecture] = read_json(folder / "history.json")
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
        "training_minutes": round(sum(pair["seconds"] for pair in pairs) / 60, 1),
    }
    save_array(run_dir / "oof_probs.npy", oof_probs)
    save_array(run_dir / "test_probs.npy", test_probs)
    plots.learning_curves(histories, run_dir / "learning_curves.png")
    plots.confusion_matrix_figure(
        confusion_matrix(labels, oof_predictions, labels=range(classes)),
        competition.classes,
        run_dir / "confusion_matrix.png",
    )
    plots.confident_mistakes(
        dataset.train_images, labels, oof_probs, competition.classes, run_dir / "mistakes.png"
    )
    summary = summary_table(config, metrics)
    (run_dir / "summary.txt").write_text(summary + "\n")
    write_json(run_dir / "metrics.json", metrics)
    point_latest_at(run_dir)
    log(summary)
    return CVResult(run_dir, metrics, oof_probs, test_probs)


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
        f"log loss {metrics['oof_log_loss']:.4f}   training {metrics['training_minutes']} min"
    )
    if metrics["optimistic"]:
        lines.append(
            "note: early stopping chose epochs on each fold's held-out rows, "
            "so this CV score is optimistic"
        )
    return "\n".join(lines)


def point_latest_at(run_dir: Path) -> None:
    """runs/latest -> the newest complete run (a symlink, swapped atomically)."""
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / ".latest-tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)


def is_complete(run_dir: Path) -> bool:
    return (Path(run_dir) / "metrics.json").is_file()


def find_run(runs_dir: Path, name: str | None = None) -> Path:
    """A complete run: the one named (a path or a folder name in runs_dir), else the newest."""
    runs_dir = Path(runs_dir)
    if name is not None:
        run_dir = run_folder(name, runs_dir)
        if not is_complete(run_dir):
            raise UserError(f"{run_dir}: the run is not complete; finish it with `cv --resume`")
        return run_dir.resolve()
    complete = sorted(
        (
            path
            for path in runs_dir.glob("*")
            if path.is_dir() and not path.is_symlink() and is_complete(path)
        ),
        key=lambda path: (path / "metrics.json").stat().st_mtime,  # most recently finished
    )
    if not complete:
        raise UserError(f"no complete run in {runs_dir}; run `kaggle-digits cv` first")
    return complete[-1].resolve()


class Clock:
    """Progress and ETA across the whole run, one line per epoch."""

    def __init__(self, total_epochs: int, log: Log) -> None:
        self.remaining = total_epochs
        self.log = log
        self.label = ""
        self.epoch_seconds: list[float] = []

    def skip(self, epochs: int) -> None:
        self.remaining -= epochs

    def callback(self, epochs: int) -> keras.callbacks.Callback:
        clock = self

        class EpochProgress(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.epochs_run = 0

            def on_epoch_begin(self, epoch, logs=None):
                self.started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                clock.epoch_seconds.append(time.perf_counter() - self.started)
                clock.remaining -= 1
                self.epochs_run += 1
                logs = logs or {}
                eta = clock.remaining * float(np.mean(clock.epoch_seconds[-10:]))
                holdout = ""
                if "val_accuracy" in logs:
                    holdout = f"  held-out acc {logs['val_accuracy']:.4f}"
                clock.log(
                    f"{clock.label} epoch {epoch + 1}/{epochs}  loss {logs.get('loss', 0):.4f}  "
                    f"acc {logs.get('accuracy', 0):.4f}{holdout}  "
                    f"{clock.epoch_seconds[-1]:.0f}s/epoch  ETA {_duration(eta)}"
                )

            def on_train_end(self, logs=None):
                clock.remaining -= epochs - self.epochs_run  # stopped early

        return EpochProgress()


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
