"""Stratified k-fold cross-validation of a CNN ensemble, top to bottom: the folds, the engine
that trains the (fold, member) pairs, each pair saved as it finishes, then the ensemble's
out-of-fold score, test probabilities, figures and summary. The run folder's layout is
run_folder.py's; the trials before a run (--budget, --precision auto) are trials.py's.
"""

import contextlib
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss
from sklearn.model_selection import StratifiedKFold

from kaggle_digits import faults, plots
from kaggle_digits.backend import accelerator_count, auto_workers, cpu_count
from kaggle_digits.competition import Competition, Priors
from kaggle_digits.config import CVConfig, execution_of, provenance, validate
from kaggle_digits.data import Dataset, load_dataset
from kaggle_digits.errors import UserError
from kaggle_digits.files import atomic_path, read_json, save_array, write_json, write_text
from kaggle_digits.local_pairs import InProcess, LocalWorkers
from kaggle_digits.pairs import EpochReport, Pair, PairOutput, Runner, TrainingData
from kaggle_digits.presets import settled
from kaggle_digits.progress import Progress
from kaggle_digits.run_folder import (
    PAIR_FINISHED,
    REQUEST,
    RUN_COMPLETE,
    SETTLED,
    is_finished,
    new_run_dir,
    pair_damage,
    pair_dir,
    point_latest_at,
    remove_temporary_files,
    resume_config,
    writing,
)
from kaggle_digits.tracking import Tracker, flat_params, run_metrics
from kaggle_digits.trials import choose_precision, fit_budget

Log = Callable[[str], None]

MAX_WORKERS_PER_CORE = 4  # local worker processes; past it each gets a sliver of a core


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


def pair_seed(config: CVConfig, fold: int, member: int) -> int:
    return config.seed * 1000 + fold * 10 + member


def run_cv(
    config: CVConfig,
    competition: Competition,
    data_root: Path,
    runs_dir: Path,
    resume: Path | None = None,
    log: Log = print,
    status: Log | None = None,
    ray_address: str | None = None,
    keep_folds: bool = False,
    track: bool = False,
) -> CVResult:
    """Train every (fold, member) pair not yet finished, then score and save the ensemble.

    `log` gets a line per event; `status`, if given, a transient line (for a terminal) with
    the progress of each running epoch. `ray_address`: train the pairs on that Ray cluster
    (make_runner).
    `keep_folds`: the folds were chosen by the user, and a short budget may not change them.
    `track`: log the run to MLflow (tracking.py)."""
    started = time.perf_counter()
    tracker = Tracker(track, log)
    dataset = load_dataset(competition, data_root)
    if resume is None:
        validate(config)
        check_fits_the_data(config, dataset.train_labels, ray_address)
        run_dir = start_run(Path(runs_dir), config, competition, dataset, keep_folds)
        settled = False
    else:
        run_dir = Path(resume)
        config, settled = resume_config(run_dir, dataset, execution_of(config))
    with writing(run_dir), removed_if_refused(run_dir, new=resume is None):
        remove_temporary_files(run_dir)  # what a killed run was writing
        (run_dir / RUN_COMPLETE).unlink(missing_ok=True)  # a damaged run is being mended
        with make_runner(config, ray_address) as runner:
            config = replace(config, workers=runner.workers)
            trial = {}
            if settled:
                fold_of_row = np.load(run_dir / "folds.npy")
            else:
                config, trial, fold_of_row = settle_options(
                    run_dir, config, dataset, competition, runner, started, log
                )
            data = training_data(dataset, competition, fold_of_row)
            log_start(run_dir, config, runner, log)
            tracker.start(run_dir, competition.slug, flat_params(read_json(run_dir / SETTLED)))
            plan = trial.get("budget_plan", {})
            train_pairs(
                run_dir,
                config,
                data,
                runner,
                log,
                status,
                crowded_speed=plan.get("crowded_speed"),
                pair_overhead=plan.get("pair_overhead_seconds", 0.0),
                tracker=tracker,
            )
        result = finish_run(run_dir, config, dataset, fold_of_row, competition, log)
    tracker.finish(run_dir, run_metrics(result.metrics))
    return result


def start_run(
    runs_dir: Path, config: CVConfig, competition: Competition, dataset: Dataset, keep_folds: bool
) -> Path:
    """A new run's folder, with the options as asked (request.json): a run killed before its
    trials settle them resumes from there."""
    run_dir = new_run_dir(runs_dir, config.preset)
    request = {
        **config.to_dict(),
        "competition": competition.slug,
        "data_fingerprint": dataset.fingerprint,
        "keep_folds": keep_folds,
    }
    with removed_if_refused(run_dir, new=True):
        write_json(run_dir / REQUEST, request)
    return run_dir


@contextlib.contextmanager
def removed_if_refused(run_dir: Path, new: bool) -> Iterator[None]:
    """A new run refused before its options are settled (a budget its trial shows too small,
    a Ray cluster out of reach) leaves no folder: it holds nothing to resume. Killed or
    stopped, it is kept, and `cv --resume` runs its trials again."""
    try:
        yield
    except UserError:
        if new and not (run_dir / SETTLED).exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def settle_options(
    run_dir: Path,
    config: CVConfig,
    dataset: Dataset,
    competition: Competition,
    runner: Runner,
    started: float,
    log: Log,
) -> tuple[CVConfig, dict, np.ndarray]:
    """Run the trials the options ask for (trials.py), then save the options they settle
    (config.json, after folds.npy); with what the trials measured, and the folds."""
    keep_folds = read_json(run_dir / REQUEST).get("keep_folds", False)
    fold_of_row = fold_assignment(dataset.train_labels, config.folds, config.seed)
    data = training_data(dataset, competition, fold_of_row)
    config, trial = run_trials(config, data, runner, started, log, keep_folds, competition.priors)
    if config.folds != fold_of_row.max() + 1:  # a short budget took fewer
        fold_of_row = fold_assignment(dataset.train_labels, config.folds, config.seed)
    save_array(run_dir / "folds.npy", fold_of_row)
    saved = {
        **config.to_dict(),
        "competition": competition.slug,
        "execution": runner.describe(),
        **provenance(dataset.fingerprint),
        **trial,
    }
    write_json(run_dir / SETTLED, saved)
    return config, trial, fold_of_row


def training_data(
    dataset: Dataset, competition: Competition, fold_of_row: np.ndarray
) -> TrainingData:
    return TrainingData(
        dataset.train_images,
        dataset.train_labels,
        dataset.test_images,
        fold_of_row,
        competition.num_classes,
    )


def check_fits_the_data(config: CVConfig, labels: np.ndarray, ray_address: str | None) -> None:
    """The options that can only be checked against the data and the machine."""
    classes, counts = np.unique(labels, return_counts=True)
    rarest = int(counts.argmin())
    if config.folds > counts[rarest]:
        raise UserError(
            f"--folds {config.folds}: at most {counts[rarest]}, the rows of the rarest class "
            f"(label {classes[rarest]}): every fold holds out some of each"
        )
    most_workers = MAX_WORKERS_PER_CORE * cpu_count()
    if ray_address is None and config.engine != "ray" and config.workers > most_workers:
        raise UserError(
            f"--workers {config.workers}: at most {most_workers} on this machine's "
            f"{cpu_count()} cores ({MAX_WORKERS_PER_CORE} a core); more only share them thinner"
        )


def run_trials(
    config: CVConfig,
    data: TrainingData,
    runner: Runner,
    started: float,
    log: Log,
    keep_folds: bool,
    priors: Priors | None = None,
) -> tuple[CVConfig, dict]:
    """The trials a new run needs before its pairs: a budget's (which settles an "auto"
    precision too; `priors`, the spec's, for a switch to the short-budget recipe), or the
    precision's alone; the config they chose (its chosen_by naming the fields they chose), and
    what they measured for config.json."""
    asked, trial = config, {}
    if config.budget_minutes:
        config, plan = fit_budget(config, data, runner, started, log, keep_folds, priors)
        trial = {"budget_plan": plan}
    elif config.precision == "auto":
        config, _, epoch_times = choose_precision(config, data, runner, log)
        trial = {"precision_trial": epoch_times}
    return settled(asked, config), trial


def log_start(run_dir: Path, config: CVConfig, runner: Runner, log: Log) -> None:
    """The run's folder, options and engine, as the pairs start."""
    log(f"run {run_dir}")
    values = {key: value for key, value in config.to_dict().items() if key != "chosen_by"}
    log("config " + ", ".join(f"{key}={value}" for key, value in values.items()))
    by_source: dict[str, list[str]] = {}
    for field, source in config.chosen_by.items():
        by_source.setdefault(source, []).append(field)
    if by_source:
        log("from " + "; ".join(f"{source}: {', '.join(f)}" for source, f in by_source.items()))
    chosen = " (auto)" if config.engine == "auto" else ""
    line = f"engine {runner.describe()['engine']}{chosen}: {runner.started_line()}"
    pairs = config.folds * len(config.members)
    if pairs < runner.workers:  # a short budget took fewer folds
        line += f"; the run has {pairs} pairs"
    log(line)


def make_runner(config: CVConfig, ray_address: str | None = None) -> Runner:
    """The engine that trains the pairs, as config.engine says. "auto": Ray tasks on the
    cluster at `ray_address` where one is given; else `config.workers` pairs at once (0:
    as suits the machine, local_pairs' auto_workers), each in a worker process of its own
    (sharing the GPU, where there is one), or one after another in this process for one."""
    pairs = config.folds * len(config.members)
    if ray_address is not None and config.engine not in ("auto", "ray"):
        raise UserError(f"--ray trains the pairs as Ray tasks: drop --engine {config.engine}")
    if config.engine == "ray" or ray_address is not None:
        from kaggle_digits.ray_pairs import RayPairs  # Ray only when asked for

        return RayPairs(config.workers, ray_address, pairs)
    if config.engine == "in-process" or (config.engine == "auto" and config.workers == 1):
        return InProcess()
    accelerators = accelerator_count()
    workers = config.workers or auto_workers(config, accelerators)
    if config.engine == "auto" and workers == 1:
        return InProcess()
    return LocalWorkers(workers, accelerator=accelerators)


def all_pairs(config: CVConfig) -> list[Pair]:
    return [
        Pair(fold, member, architecture, pair_seed(config, fold, member))
        for fold in range(config.folds)
        for member, architecture in enumerate(config.members)
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
    (folder / PAIR_FINISHED).unlink()
    return False


def folder_of(run_dir: Path, pair: Pair) -> Path:
    return pair_dir(run_dir, pair.fold, pair.member, pair.architecture)


def save_pair(run_dir: Path, output: PairOutput, data: TrainingData) -> dict:
    """Write a finished pair's model and predictions into its folder, result.json last."""
    pair = output.pair
    folder = folder_of(run_dir, pair)
    holdout_labels = data.train_labels[data.fold_of_row == pair.fold]
    with atomic_path(folder / "model.keras") as tmp:
        tmp.write_bytes(output.model_file)
    save_array(folder / "holdout_probs.npy", output.holdout_probs)
    save_array(folder / "test_probs.npy", output.test_probs)
    write_json(folder / "history.json", output.history)
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
    write_json(folder / PAIR_FINISHED, result)
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
            pairs.append(read_json(folder / PAIR_FINISHED))
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
        "wall_minutes": round(training_wall_seconds(pairs) / 60, 1),
        "pair_minutes": round(sum(pair["seconds"] for pair in pairs) / 60, 1),
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
    write_text(run_dir / "summary.txt", summary + "\n")
    write_json(run_dir / RUN_COMPLETE, metrics)
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
