"""Stratified k-fold cross-validation of a CNN ensemble, top to bottom: the run started
(options checked, the run folder made or resumed, the rows split into folds, the trials
before a run for --budget and --precision auto, the engine chosen), then the pairs and the
finish, which are cv_pairs.py's. The run folder's files are the store's; the trials are
trials.py's.
"""

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from kaggle_digits.base.errors import UserError
from kaggle_digits.data.competition import Competition, Priors
from kaggle_digits.data.dataset import Dataset, load_dataset
from kaggle_digits.jobs.cv_pairs import CVResult, finish_run, train_pairs
from kaggle_digits.machine.backend import accelerator_count, auto_workers, cpu_count
from kaggle_digits.options.config import CVConfig, execution_of, provenance, validate
from kaggle_digits.options.presets import settled
from kaggle_digits.reports.tracking import Tracker, flat_params, run_metrics
from kaggle_digits.store import run_files
from kaggle_digits.store.run_folder import (
    new_run_dir,
    remove_temporary_files,
    resume_config,
    uncomplete,
    writing,
)
from kaggle_digits.training.local_pairs import InProcess, LocalWorkers
from kaggle_digits.training.pairs import Runner, TrainingData
from kaggle_digits.training.trials import choose_precision, fit_budget

Log = Callable[[str], None]

MAX_WORKERS_PER_CORE = 4  # local worker processes; past it each gets a sliver of a core


def fold_assignment(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The held-out fold of each row: stratified by label, shuffled with the seed."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of_row = np.empty(len(labels), dtype=np.int64)
    for fold, (_, holdout_rows) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        fold_of_row[holdout_rows] = fold
    return fold_of_row


def run_cv(
    config: CVConfig,
    competition: Competition,
    data_root: Path,
    runs_dir: Path,
    resume: Path | None = None,
    log: Log = print,
    status: Log | None = None,
    ray_address: str | None = None,
    track: bool = False,
) -> CVResult:
    """Train every (fold, member) pair not yet finished, then score and save the ensemble.

    `log` gets a line per event; `status`, if given, a transient line (for a terminal) with
    the progress of each running epoch. `ray_address`: train the pairs on that Ray cluster
    (make_runner). Folds given as an option (config.chosen_by) a short budget keeps.
    `track`: log the run to MLflow (tracking.py)."""
    started = time.perf_counter()
    tracker = Tracker(track, log)
    dataset = load_dataset(competition, data_root)
    if resume is None:
        validate(config)
        check_fits_the_data(config, dataset.train_labels, ray_address)
        run_dir = start_run(Path(runs_dir), config, competition, dataset)
        settled = False
    else:
        run_dir = Path(resume)
        config, settled = resume_config(run_dir, dataset, execution_of(config))
    with writing(run_dir), removed_if_refused(run_dir, new=resume is None):
        remove_temporary_files(run_dir)  # what a killed run was writing
        uncomplete(run_dir)  # a damaged run is being mended
        with make_runner(config, ray_address) as runner:
            config = replace(config, workers=runner.workers)
            trial = {}
            if settled:
                fold_of_row = run_files.read_folds(run_dir)
            else:
                config, trial, fold_of_row = settle_options(
                    run_dir, config, dataset, competition, runner, started, log
                )
            data = training_data(dataset, competition, fold_of_row)
            log_start(run_dir, config, runner, log)
            tracker.start(run_dir, competition.slug, flat_params(run_files.read_settled(run_dir)))
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


def start_run(runs_dir: Path, config: CVConfig, competition: Competition, dataset: Dataset) -> Path:
    """A new run's folder, with the options as asked (request.json): a run killed before its
    trials settle them resumes from there."""
    run_dir = new_run_dir(runs_dir, config.preset)
    request = {
        **config.to_dict(),
        "competition": competition.slug,
        "data_fingerprint": dataset.fingerprint,
    }
    with removed_if_refused(run_dir, new=True):
        run_files.write_request(run_dir, request)
    return run_dir


@contextlib.contextmanager
def removed_if_refused(run_dir: Path, new: bool) -> Iterator[None]:
    """A new run refused before its options are settled (a budget its trial shows too small,
    a Ray cluster out of reach) leaves no folder: it holds nothing to resume. Killed or
    stopped, it is kept, and `cv --resume` runs its trials again."""
    try:
        yield
    except UserError:
        if new and not run_files.has_settled(run_dir):
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
    fold_of_row = fold_assignment(dataset.train_labels, config.folds, config.seed)
    data = training_data(dataset, competition, fold_of_row)
    config, trial = run_trials(config, data, runner, started, log, competition.priors)
    if config.folds != fold_of_row.max() + 1:  # a short budget took fewer
        fold_of_row = fold_assignment(dataset.train_labels, config.folds, config.seed)
    run_files.save_folds(run_dir, fold_of_row)
    saved = {
        **config.to_dict(),
        "competition": competition.slug,
        "execution": runner.describe(),
        **provenance(dataset.fingerprint),
        **trial,
    }
    run_files.write_settled(run_dir, saved)
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
    priors: Priors | None = None,
) -> tuple[CVConfig, dict]:
    """The trials a new run needs before its pairs: a budget's (which settles an "auto"
    precision too; `priors`, the spec's, for a switch to the short-budget recipe), or the
    precision's alone; the config they chose (its chosen_by naming the fields they chose), and
    what they measured for config.json."""
    asked, trial = config, {}
    if config.budget_minutes:
        config, plan = fit_budget(config, data, runner, started, log, priors)
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
        from kaggle_digits.training.ray_pairs import RayPairs  # Ray only when asked for

        return RayPairs(config.workers, ray_address, pairs)
    if config.engine == "in-process" or (config.engine == "auto" and config.workers == 1):
        return InProcess()
    accelerators = accelerator_count()
    workers = config.workers or auto_workers(config, accelerators)
    if config.engine == "auto" and workers == 1:
        return InProcess()
    return LocalWorkers(workers, accelerator=accelerators)
