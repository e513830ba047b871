"""The trials before a run: a few timed training steps of each member, as the pairs will run
them, from which `--precision auto` keeps the faster precision and `--budget` chooses the
epochs (and members, and where it must, a cheaper recipe) that fit (budget.py's time model).
"""

import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from kaggle_digits.base import faults
from kaggle_digits.base.errors import UserError
from kaggle_digits.data.competition import Priors
from kaggle_digits.options.config import AUTO_PRECISIONS, CVConfig
from kaggle_digits.options.presets import PRESETS, rerun_command
from kaggle_digits.training.budget import (
    FINISH_SECONDS,
    MIN_EPOCHS_PER_MEMBER,
    SAFETY,
    SHORT_RECIPE_EPOCHS,
    Plan,
    Rows,
    Setting,
    best_plan,
    epoch_seconds,
    nets_a_fold,
    overhead_seconds,
    passes,
    plan_budget,
    short_budget_recipe,
    training_planned,
    uncrowded,
)
from kaggle_digits.training.pairs import Runner, StepTiming, TrainingData

Log = Callable[[str], None]


def fold_rows(data: TrainingData, folds: int) -> Rows:
    holdout = math.ceil(len(data.train_labels) / folds)  # the largest fold's
    return Rows(len(data.train_labels) - holdout, holdout, len(data.test_images))


def time_members(
    config: CVConfig, data: TrainingData, runner: Runner, log: Log
) -> dict[str, StepTiming]:
    """A trial of each member's steps, as the pairs will run them."""
    timings = {}
    for architecture in dict.fromkeys(config.members):
        timings[architecture] = runner.time_steps(data, config, architecture)
        faults.reached("trial")
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
    """`config` with precision "auto" replaced by whichever of AUTO_PRECISIONS (float16 on a
    GPU only) trains its epochs fastest in a trial of each; with that precision's timings,
    and every precision's seconds for an epoch of all the members."""
    rows = fold_rows(data, config.folds)
    on_gpu = bool(runner.describe().get("gpu") or runner.describe().get("gpus_per_pair"))
    tried = {}
    for precision in AUTO_PRECISIONS[on_gpu]:
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


def fewer_workers(
    config: CVConfig, setting: Setting, plan: Plan, runner: Runner, seconds_left: float
) -> tuple[Setting, Plan] | None:
    """Where more workers than cores share them so badly in the trial that one worker a
    core would train more in the time (three workers on two cores each at 0.47 of a core:
    1.4 cores' worth, where two give 2), the timings and plan for one a core; None where
    the crowd does as well, or the workers were chosen by hand or cannot change."""
    alone = uncrowded(setting)
    if (
        alone is None
        or config.workers <= runner.cores
        or config.given_as_option("workers")
        or not hasattr(runner, "use_workers")
    ):
        return None
    fewer = best_plan(config, alone, seconds_left)
    if fewer is None or training_planned(fewer) <= training_planned(plan):
        return None
    return alone, fewer


def check_time_for_a_trial(config: CVConfig, seconds_left: float, trial_seconds: float) -> None:
    """Refuse a budget that another trial of `trial_seconds` would overrun, naming the
    smallest budget worth asking for here: this much spent, the trial again, a fresh start of
    the workers, the finish, and a minute for the epochs."""
    if seconds_left > trial_seconds:
        return
    spent = config.budget_minutes * 60 - seconds_left
    smallest = math.ceil((spent + trial_seconds + FINISH_SECONDS) / SAFETY / 60) + 1
    raise UserError(
        f"a budget of {config.budget_minutes:g} min is too small here: its trials alone take "
        f"about {(spent + trial_seconds) / 60:.1f} min on this machine; ask for --budget "
        f"{smallest} or more, or give --epochs instead"
    )


def fit_budget(
    config: CVConfig,
    data: TrainingData,
    runner: Runner,
    started: float,
    log: Log,
    priors: Priors | None = None,
) -> tuple[CVConfig, dict]:
    """Time a few steps of each member, then choose the epochs (and members) that fit; where
    the preset's nets would get too few epochs, the quick preset's recipe instead, with its
    fewer folds where the run's would leave that recipe's net short of epochs too (unless
    the folds were given as an option). Precision "auto" is settled by the same trial
    (choose_precision)."""
    log(f"budget {config.budget_minutes:g} min: timing a few training steps of each member")

    def seconds_left() -> float:
        # the pairs then wait for fresh workers (LocalWorkers.run, RayPairs.time_steps)
        return config.budget_minutes * 60 - (time.perf_counter() - started) - runner.restart_seconds

    def setting(config: CVConfig, timings: dict[str, StepTiming]) -> Setting:
        return Setting(timings, fold_rows(data, config.folds), config.workers, runner.cores)

    def plan_for(config: CVConfig, timings: dict[str, StepTiming]) -> Plan | None:
        return best_plan(config, setting(config, timings), seconds_left())

    trials = {}  # recipe (preset) -> seconds an epoch in each precision, where "auto"

    def timed_plan(config: CVConfig) -> tuple[CVConfig, dict[str, StepTiming], Plan | None]:
        if config.precision == "auto":
            config, timings, trial = choose_precision(config, data, runner, log)
            trials[config.preset] = trial
        else:
            timings = time_members(config, data, runner, log)
        return config, timings, plan_for(config, timings)

    # the recipe from the options as given: the trial may have settled an "auto" precision
    cheaper = short_budget_recipe(config, priors)
    trial_started = time.perf_counter()
    config, timings, plan = timed_plan(config)
    details = {}
    if cheaper is not None and (
        plan is None or passes(config, plan.epochs) < MIN_EPOCHS_PER_MEMBER
    ):
        # the cheaper recipe's trial takes about as long again: refused now where it cannot fit
        check_time_for_a_trial(config, seconds_left(), time.perf_counter() - trial_started)
        cheaper, cheaper_timings, cheaper_plan = timed_plan(cheaper)
        fewest = PRESETS[cheaper.preset].folds
        if (
            not config.given_as_option("folds")
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
        plan = plan_budget(config, setting(config, timings), seconds_left())
    fewer = fewer_workers(config, setting(config, timings), plan, runner, seconds_left())
    if fewer is not None:
        log(
            f"{config.workers} workers on {runner.cores} cores ran at {plan.crowded_speed:.2f} "
            f"of a core each in the trial: {runner.cores} workers train more in the time"
        )
        details["workers_from_trial"] = {"workers": config.workers, "speed": plan.crowded_speed}
        runner.use_workers(runner.cores)
        config, (alone, plan) = replace(config, workers=runner.cores), fewer
        timings = alone.timings
    config = replace(config, members=plan.members, epochs=plan.epochs)
    shorter = "" if config.whole_epochs == config.epochs else f" (as {config.whole_epochs} shorter)"
    log(
        f"budget {config.budget_minutes:g} min -> {nets_a_fold(plan.members)} for "
        f"{plan.epochs:g} epochs{shorter}, about {plan.estimated_seconds / 60:.1f} min from "
        f"here ({plan.why}); the same run again: {rerun_command(config)}"
    )
    # with a core to itself, as Progress counts it
    overheads = [
        overhead_seconds(timings[name], fold_rows(data, config.folds), config.tta)
        for name in plan.members
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
