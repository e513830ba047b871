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

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss
from sklearn.model_selection import StratifiedKFold

from kaggle_digits import plots
from kaggle_digits.budget import (
    MIN_EPOCHS_PER_MEMBER,
    SHORT_RECIPE_EPOCHS,
    Plan,
    Rows,
    best_plan,
    epoch_seconds,
    overhead_seconds,
    passes,
    plan_budget,
    short_budget_recipe,
)
from kaggle_digits.competition import Competition
from kaggle_digits.config import PRECISIONS, PRESETS, CVConfig, provenance, validate
from kaggle_digits.data import Dataset, load_dataset
from kaggle_digits.errors import UserError
from kaggle_digits.files import atomic_path, read_json, save_array, write_json
from kaggle_digits.pairs import (
    Pair,
    PairOutput,
    Runner,
    StepTiming,
    TrainingData,
    make_runner,
)
from kaggle_digits.progress import Progress

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
    status: Log | None = None,
    ray_address: str | None = None,
    keep_folds: bool = False,
) -> CVResult:
    """Train every (fold, member) pair not yet finished, then score and save the ensemble.

    `log` gets a line per event; `status`, if given, a transient line (for a terminal) with
    the progress of each running epoch. `ray_address`: train the pairs on that Ray cluster.
    `keep_folds`: the folds were chosen by the user, and a short budget may not change them."""
    started = time.perf_counter()
    dataset = load_dataset(competition, data_root)
    if resume is not None:
        run_dir = Path(resume)
        config = resume_config(run_dir, dataset, workers=config.workers)
        fold_of_row = np.load(run_dir / "folds.npy")
    else:
        validate(config)
        fold_of_row = fold_assignment(dataset.train_labels, config.folds, config.seed)
    data = TrainingData(
        dataset.train_images,
        dataset.train_labels,
        dataset.test_images,
        fold_of_row,
        competition.num_classes,
    )
    with make_runner(config, ray_address) as runner:
        config = replace(config, workers=runner.workers)
        plan, trial = None, {}
        if resume is None and config.budget_minutes:
            config, plan = fit_budget(config, data, runner, started, log, keep_folds)
            if config.folds != data.fold_of_row.max() + 1:  # a short budget took fewer
                fold_of_row = fold_assignment(dataset.train_labels, config.folds, config.seed)
                data = replace(data, fold_of_row=fold_of_row)
        elif resume is None and config.precision == "auto":
            config, _, epoch_times = choose_precision(config, data, runner, log)
            trial = {"precision_trial": epoch_times}
        if resume is None:
            run_dir = new_run_dir(Path(runs_dir), config.preset)
            saved = {
                **config.to_dict(),
                "competition": competition.slug,
                "execution": runner.describe(),
                **provenance(dataset.fingerprint),
            }
            budget_plan = {"budget_plan": plan} if plan else {}
            write_json(run_dir / "config.json", saved | budget_plan | trial)
            save_array(run_dir / "folds.npy", fold_of_row)
        log(f"run {run_dir}")
        log("config " + ", ".join(f"{key}={value}" for key, value in config.to_dict().items()))
        pairs = config.folds * len(config.members)
        fewer = f"; the run has {pairs} pairs" if pairs < runner.workers else ""
        log(runner.started_line() + fewer)  # fewer where a short budget took fewer folds
        train_pairs(
            run_dir,
            config,
            data,
            runner,
            log,
            status,
            crowded_speed=plan.get("crowded_speed") if plan else None,
            pair_overhead=plan.get("pair_overhead_seconds", 0.0) if plan else 0.0,
        )
    return finish_run(run_dir, config, dataset, fold_of_row, competition, log)


def all_pairs(config: CVConfig) -> list[Pair]:
    return [
        Pair(fold, member, architecture, pair_seed(config, fold, member))
        for fold in range(config.folds)
        for member, architecture in enumerate(config.members)
    ]


def is_finished(run_dir: Path, pair: Pair) -> bool:
    return (pair_dir(run_dir, pair.fold, pair.member, pair.architecture) / "result.json").exists()


def train_pairs(
    run_dir: Path,
    config: CVConfig,
    data: TrainingData,
    runner: Runner,
    log: Log,
    status: Log | None = None,
    crowded_speed: float | None = None,
    pair_overhead: float = 0.0,
) -> None:
    """Train the pairs not yet finished; each is saved the moment it finishes.
    `crowded_speed`: of each worker while more workers than cores run, where a trial measured
    it (schedule.job_speed); `pair_overhead`: a pair's seconds outside its epochs, with a
    core to itself, as a trial expects them (both for the ETA)."""
    pairs = all_pairs(config)
    finished = [pair for pair in pairs if is_finished(run_dir, pair)]
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

    def save(output: PairOutput) -> None:
        result = save_pair(run_dir, output, data, config.epochs)
        progress.pair_done(output, result["holdout_accuracy"], result["holdout_loss"])

    try:
        pending = [pair for pair in pairs if pair not in finished]
        runner.run(data, config, pending, progress.epoch_done, save)
    except (KeyboardInterrupt, UserError):
        log(f"stopped: `kaggle-digits cv --resume {run_dir}` finishes this run")
        raise


def fold_rows(data: TrainingData, folds: int) -> Rows:
    holdout = math.ceil(len(data.train_labels) / folds)  # the largest fold's
    return Rows(len(data.train_labels) - holdout, holdout, len(data.test_images))


def time_members(
    config: CVConfig, data: TrainingData, runner: Runner, log: Log
) -> dict[str, StepTiming]:
    """A trial of each member's steps, as the pairs will run them."""
    timings = {
        architecture: runner.time_steps(data, config, architecture)
        for architecture in dict.fromkeys(config.members)
    }
    for timing in timings.values():
        alone = timing.uncrowded_step_seconds
        last_round = f" ({alone * 1000:.0f} ms with {runner.cores} busy)" if alone else ""
        log(
            f"  {timing.architecture}, {config.precision}: {timing.step_seconds * 1000:.0f} ms "
            f"a step of {config.batch_size}{last_round}, "
            f"{epoch_seconds(timing, fold_rows(data, config.folds), config):.0f} s "
            f"an epoch with {config.workers} worker(s)"
        )
    return timings


def choose_precision(
    config: CVConfig, data: TrainingData, runner: Runner, log: Log
) -> tuple[CVConfig, dict[str, StepTiming], dict[str, float]]:
    """`config` with precision "auto" replaced by whichever of PRECISIONS trains its epochs
    fastest in a trial of each; with that precision's timings, and every precision's seconds
    for an epoch of all the members."""
    rows = fold_rows(data, config.folds)
    tried = {}
    for precision in PRECISIONS:
        candidate = replace(config, precision=precision)
        timings = time_members(candidate, data, runner, log)
        seconds = sum(epoch_seconds(timing, rows, candidate) for timing in timings.values())
        tried[precision] = (candidate, timings, seconds)
    fastest = min(tried, key=lambda precision: tried[precision][2])
    epoch_times = {precision: round(seconds, 3) for precision, (_, _, seconds) in tried.items()}
    log(
        f"precision auto -> {fastest} (an epoch: "
        + ", ".join(f"{seconds:.1f} s in {precision}" for precision, seconds in epoch_times.items())
        + ")"
    )
    chosen, timings, _ = tried[fastest]
    return chosen, timings, epoch_times


def fit_budget(
    config: CVConfig,
    data: TrainingData,
    runner: Runner,
    started: float,
    log: Log,
    keep_folds: bool = False,
) -> tuple[CVConfig, dict]:
    """Time a few steps of each member, then choose the epochs (and members) that fit; where
    the preset's nets would get too few epochs, the quick preset's recipe instead, with its
    fewer folds where the run's would leave that recipe's net short of epochs too (unless
    `keep_folds`). Precision "auto" is settled by the same trial (choose_precision)."""
    log(f"budget {config.budget_minutes:g} min: timing a few training steps of each member")

    def seconds_left() -> float:
        # the pairs then wait for fresh workers (LocalWorkers.run, RayPairs.time_steps)
        return config.budget_minutes * 60 - (time.perf_counter() - started) - runner.restart_seconds

    def rows(folds: int) -> Rows:
        return fold_rows(data, folds)

    def plan_for(config: CVConfig, timings: dict[str, StepTiming]) -> Plan | None:
        return best_plan(
            config, timings, rows(config.folds), config.workers, seconds_left(), runner.cores
        )

    trials = {}  # recipe (preset) -> seconds an epoch in each precision, where "auto"

    def timed_plan(config: CVConfig) -> tuple[CVConfig, dict[str, StepTiming], Plan | None]:
        if config.precision == "auto":
            config, timings, trial = choose_precision(config, data, runner, log)
            trials[config.preset] = trial
        else:
            timings = time_members(config, data, runner, log)
        return config, timings, plan_for(config, timings)

    # the recipe from the options as given: the trial may have settled an "auto" precision
    cheaper = short_budget_recipe(config)
    config, timings, plan = timed_plan(config)
    details = {}
    if cheaper is not None and (
        plan is None or passes(config, plan.epochs) < MIN_EPOCHS_PER_MEMBER
    ):
        cheaper, cheaper_timings, cheaper_plan = timed_plan(cheaper)
        fewest = PRESETS[cheaper.preset].folds
        if (
            not keep_folds
            and cheaper.folds > fewest
            and (cheaper_plan is None or passes(cheaper, cheaper_plan.epochs) < SHORT_RECIPE_EPOCHS)
        ):
            # the same trial serves: it timed the workers' steps, however many pairs they take
            fewer = replace(cheaper, folds=fewest)
            fewer_plan = plan_for(fewer, cheaper_timings)
            if fewer_plan is not None:
                cheaper, cheaper_plan = fewer, fewer_plan
        if cheaper_plan is not None and (
            plan is None or passes(cheaper, cheaper_plan.epochs) > passes(config, plan.epochs)
        ):
            epochs = plan.epochs if plan else 0
            folds = f", {cheaper.folds} folds" if cheaper.folds != config.folds else ""
            log(
                f"budget {config.budget_minutes:g} min: {config.members[0]} would get {epochs:g} "
                f"epoch(s); taking the {cheaper.preset} preset's recipe{folds} instead"
            )
            details["switched_from"] = {
                "preset": config.preset,
                "folds": config.folds,
                "epochs": epochs,
            }
            config, timings, plan = cheaper, cheaper_timings, cheaper_plan
    if plan is None:
        plan = plan_budget(
            config, timings, rows(config.folds), config.workers, seconds_left(), runner.cores
        )
    config = replace(config, members=plan.members, epochs=plan.epochs)
    shorter = "" if config.whole_epochs == config.epochs else f" (as {config.whole_epochs} shorter)"
    log(
        f"budget {config.budget_minutes:g} min -> {', '.join(plan.members)} for {plan.epochs:g} "
        f"epochs{shorter}, about {plan.estimated_seconds / 60:.1f} min from here; the same run "
        f"again: {rerun_command(config)}"
    )
    # with a core to itself, as Progress counts it
    overheads = [
        overhead_seconds(timings[name], rows(config.folds), config.tta) for name in plan.members
    ]
    if config.preset in trials:
        details["precision_trial"] = trials[config.preset]
    details |= plan.to_dict() | {
        "step_seconds": {name: round(t.step_seconds, 4) for name, t in timings.items()},
        "pair_overhead_seconds": round(plan.crowded_speed * float(np.mean(overheads)), 1),
    }
    if config.workers > runner.cores:
        details["crowded_speed"] = round(plan.crowded_speed, 3)
    if runner.restart_seconds:
        details["worker_start_seconds"] = round(runner.restart_seconds, 1)
    return config, details


# the fields `cv` has an option for
CLI_FIELDS = [
    "folds",
    "members",
    "epochs",
    "batch_size",
    "seed",
    "tta",
    "tta_views",
    "label_smoothing",
    "augment",
    "deskew",
    "early_stopping",
    "ema",
    "select_hard",
    "precision",
    "workers",
]


def rerun_command(config: CVConfig) -> str:
    """The cv command that trains exactly this configuration again, with no budget."""
    defaults = CVConfig()
    options = [f"--preset {config.preset}"] if config.preset in PRESETS else []
    base = PRESETS.get(config.preset, defaults)
    for field in fields(CVConfig):
        if field.name not in CLI_FIELDS:
            continue
        value = getattr(config, field.name)
        if value == getattr(base, field.name) and field.name != "epochs":
            continue
        option = "--" + field.name.replace("_", "-")
        if isinstance(value, bool):
            options.append(option if value else option.replace("--", "--no-", 1))
        elif isinstance(value, tuple):
            options.append(f"{option} {','.join(value)}")
        elif isinstance(value, float):
            options.append(f"{option} {value:g}")
        else:
            options.append(f"{option} {value}")
    return "kaggle-digits cv " + " ".join(options)


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


def resume_config(run_dir: Path, dataset: Dataset, workers: int = 0) -> CVConfig:
    """The saved options of an unfinished run, after checking it is one and fits the data.

    How many pairs train at once is the resuming command's choice (0: automatic)."""
    if not (run_dir / "config.json").is_file() or not (run_dir / "folds.npy").is_file():
        raise UserError(f"{run_dir}: not a run folder (no config.json or folds.npy)")
    if (run_dir / "metrics.json").exists():
        raise UserError(f"{run_dir}: the run is already complete; nothing to resume")
    saved = read_json(run_dir / "config.json")
    if saved.get("data_fingerprint") != dataset.fingerprint:
        raise UserError(f"{run_dir}: the run was made on other data (the CSVs have changed)")
    return replace(CVConfig.from_dict(saved), workers=workers)


def save_pair(run_dir: Path, output: PairOutput, data: TrainingData, epochs: int) -> dict:
    """Write a finished pair's model and predictions into its folder, result.json last."""
    pair = output.pair
    folder = pair_dir(run_dir, pair.fold, pair.member, pair.architecture)
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
    }
    write_json(folder / "result.json", result)
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


def run_competition(run_dir: Path) -> str | None:
    """The slug of the competition a run was made for (None for runs older than the field)."""
    return read_json(Path(run_dir) / "config.json").get("competition")


def check_competition(run_dir: Path, competition: Competition) -> None:
    made_for = run_competition(run_dir)
    if made_for is not None and made_for != competition.slug:
        raise UserError(
            f"{Path(run_dir).name}: the run was made for the competition '{made_for}', not "
            f"'{competition.slug}'; pass its spec with --competition"
        )


def find_run(
    runs_dir: Path, name: str | None = None, competition: Competition | None = None
) -> Path:
    """A complete run: the one named (a path or a folder name in runs_dir), else the newest;
    given a competition, only a run made for it."""
    runs_dir = Path(runs_dir)
    if name is not None:
        run_dir = run_folder(name, runs_dir)
        if not is_complete(run_dir):
            raise UserError(f"{run_dir}: the run is not complete; finish it with `cv --resume`")
        if competition is not None:
            check_competition(run_dir, competition)
        return run_dir.resolve()
    complete = sorted(
        (
            path
            for path in runs_dir.glob("*")
            if path.is_dir()
            and not path.is_symlink()
            and is_complete(path)
            and (competition is None or run_competition(path) in (None, competition.slug))
        ),
        key=lambda path: (path / "metrics.json").stat().st_mtime,  # most recently finished
    )
    if not complete:
        raise UserError(f"no complete run in {runs_dir}; run `kaggle-digits cv` first")
    return complete[-1].resolve()
