"""--budget: the time model, the plan it makes, and how a run records it."""

import json
import time
from dataclasses import replace

import numpy as np
import pytest
from helpers import assert_user_error, cv_cli, run_tiny

from kaggle_digits.base.errors import UserError
from kaggle_digits.data.competition import load_competition
from kaggle_digits.engine.budget import (
    FINISH_SECONDS,
    FLAT_PASSES,
    MAX_EPOCHS,
    MAX_NETS_PER_FOLD,
    SAFETY,
    SHORT_RECIPE_EPOCHS,
    Rows,
    crowded_speed,
    passes,
    plan_budget,
    run_seconds,
    short_budget_recipe,
    training_seconds,
)
from kaggle_digits.engine.pairs import (
    EpochReport,
    PairOutput,
    StepTiming,
    TrainingData,
    learning_curve_rows,
)
from kaggle_digits.engine.progress import Progress
from kaggle_digits.engine.trials import fit_budget
from kaggle_digits.jobs.cv_folds import all_pairs
from kaggle_digits.machine.schedule import job_speed, makespan, shortest_run_workers
from kaggle_digits.options.config import CVConfig
from kaggle_digits.options.presets import preset_config, rerun_command

ROWS = Rows(train=33600, holdout=8400, test=28000)
TIMINGS = {
    "strided-cnn": StepTiming("strided-cnn", 0.2, 0.0004, 3.0),
    "fast-cnn": StepTiming("fast-cnn", 0.1, 0.0002, 2.0),
}
CONFIG = CVConfig(folds=5, members=("strided-cnn",), batch_size=128)


def test_makespan_hands_jobs_to_the_first_free_worker():
    assert makespan([10, 10, 10, 10, 10], workers=2) == 30  # three rounds, the last half full
    assert makespan([10, 10, 10, 10], workers=2) == 20
    assert makespan([10], workers=2, busy=[25, 5]) == 25  # the job waits for the 5 s worker
    assert makespan([], workers=2, busy=[7]) == 7


def test_more_workers_than_cores_share_them():
    assert makespan([10] * 5, workers=3, cores=2) == pytest.approx(25)  # 3 at 2/3 speed, then 2
    assert makespan([10] * 5, workers=5, cores=2) == pytest.approx(25)
    assert makespan([10] * 4, workers=2, cores=2) == 20
    assert makespan([10], workers=3, busy=[10, 10], cores=2) == pytest.approx(15)


def test_a_measured_crowd_speed_replaces_the_even_share():
    # three workers on two cores measured at 0.8 of a core each, not 2/3
    assert job_speed(3, workers=3, cores=2, crowded_speed=0.8) == pytest.approx(0.8)
    assert job_speed(2, workers=3, cores=2, crowded_speed=0.8) == 1
    assert job_speed(3, workers=3, cores=2) == pytest.approx(2 / 3)
    assert job_speed(4, workers=5, cores=2, crowded_speed=0.5) == pytest.approx(0.625)
    # 3 at 0.8 for 12.5 s, then 2 with a core each for 10 s
    assert makespan([10] * 5, workers=3, cores=2, crowded_speed=0.8) == pytest.approx(22.5)


def test_the_plan_uses_the_crowd_speed_the_trial_measured():
    # every worker busy: 0.2 s a step; two of the three alone on two cores: 0.16 s, so the last
    # round runs 1.25 times as fast, not 1.5 times
    measured = {
        name: replace(t, uncrowded_step_seconds=t.step_seconds * 0.8) for name, t in TIMINGS.items()
    }
    assert crowded_speed(list(measured.values()), 3, 2) == pytest.approx(0.8)
    assert crowded_speed(list(TIMINGS.values()), 3, 2) == pytest.approx(2 / 3)
    assert crowded_speed(list(measured.values()), 2, 2) == 1
    even = plan_budget(CONFIG, TIMINGS, ROWS, 3, 60 * 60, cores=2)
    slower_last_round = plan_budget(CONFIG, measured, ROWS, 3, 60 * 60, cores=2)
    assert slower_last_round.epochs < even.epochs
    assert slower_last_round.crowded_speed == pytest.approx(0.8)
    # an even share would have promised the same epochs sooner than they can end
    promised = run_seconds(CONFIG, CONFIG.members, slower_last_round.epochs, TIMINGS, ROWS, 3, 2)
    assert promised < slower_last_round.estimated_seconds <= 60 * 60 * SAFETY


def test_workers_are_added_only_where_the_last_round_would_leave_cores_idle():
    assert shortest_run_workers(5, cores=2, most=8) == 3
    assert shortest_run_workers(4, cores=2, most=8) == 2
    assert shortest_run_workers(7, cores=2, most=8) == 4
    assert shortest_run_workers(1, cores=2, most=8) == 1
    assert shortest_run_workers(10, cores=4, most=3) == 3


def test_a_third_worker_on_two_cores_buys_more_epochs_for_five_folds():
    # the trial times steps with every worker busy: three workers on two cores, 1.5 times as long
    shared = {
        name: StepTiming(name, t.step_seconds * 1.5, t.predict_seconds * 1.5, t.startup_seconds)
        for name, t in TIMINGS.items()
    }
    two = plan_budget(CONFIG, TIMINGS, ROWS, 2, 60 * 60)
    three = plan_budget(CONFIG, shared, ROWS, 3, 60 * 60, cores=2)
    assert three.epochs > two.epochs
    assert three.estimated_seconds <= 60 * 60


def test_a_smaller_budget_plans_fewer_epochs_and_each_plan_fits():
    plans = [plan_budget(CONFIG, TIMINGS, ROWS, 2, minutes * 60) for minutes in (10, 30, 60)]
    epochs = [plan.epochs for plan in plans]
    assert epochs == sorted(epochs) and epochs[0] < epochs[-1]
    for plan, minutes in zip(plans, (10, 30, 60), strict=True):
        assert plan.estimated_seconds <= minutes * 60
        a_tenth_more = run_seconds(CONFIG, plan.members, plan.epochs + 0.1, TIMINGS, ROWS, 2)
        assert a_tenth_more > SAFETY * minutes * 60  # nothing left on the table


def test_plans_choose_tenths_of_an_epoch():
    plan = plan_budget(CONFIG, TIMINGS, ROWS, 2, 26 * 60)
    assert plan.epochs == round(plan.epochs, 1) and plan.epochs != int(plan.epochs)
    assert replace(CONFIG, epochs=plan.epochs).whole_epochs == int(plan.epochs) + 1


def test_choosing_hard_rows_is_timed_and_the_limits_count_full_passes():
    hard = replace(CONFIG, select_hard=2.0)
    timing = TIMINGS["strided-cnn"]
    # 12 epochs of a third of the rows: the steps of 4 passes (1,056 against 1,052), and each
    # epoch but the last scores the training rows to choose the next one's
    plain = training_seconds(timing, ROWS, replace(CONFIG, epochs=4))
    thirds = training_seconds(timing, ROWS, replace(hard, epochs=12))
    curves = len(learning_curve_rows(ROWS.holdout, CONFIG))
    choosing = (11 * ROWS.train + 8 * curves) * timing.predict_seconds
    assert thirds - plain == pytest.approx(choosing + 4 * timing.step_seconds)
    assert passes(hard, 18) == 6 and passes(CONFIG, 18) == 18
    assert plan_budget(hard, TIMINGS, ROWS, 2, 1e9).epochs == MAX_EPOCHS * 3
    assert plan_budget(CONFIG, TIMINGS, ROWS, 2, 1e9).epochs == MAX_EPOCHS


def test_more_workers_buy_more_epochs():
    one = plan_budget(CONFIG, TIMINGS, ROWS, 1, 30 * 60)
    two = plan_budget(CONFIG, TIMINGS, ROWS, 2, 30 * 60)
    assert two.epochs > one.epochs


def test_members_are_dropped_only_when_they_would_be_too_short():
    config = CVConfig(folds=5, members=("strided-cnn", "fast-cnn"), batch_size=128)
    long = plan_budget(config, TIMINGS, ROWS, 2, 120 * 60)
    assert long.members == ("strided-cnn", "fast-cnn") and long.epochs >= 6
    short = plan_budget(config, TIMINGS, ROWS, 2, 12 * 60)
    assert short.members == ("strided-cnn",)


def test_past_the_flat_tail_a_longer_budget_adds_nets_a_fold():
    hard = replace(CONFIG, select_hard=2.0)  # the default preset's epochs of a third
    flat = FLAT_PASSES["strided-cnn"]
    one_net = run_seconds(hard, ("strided-cnn",), flat * 3, TIMINGS, ROWS, 2) / SAFETY
    plans = {
        times: plan_budget(hard, TIMINGS, ROWS, 2, times * one_net) for times in (1.5, 2.2, 3.5)
    }
    assert plans[1.5].members == ("strided-cnn",)  # two would end short of the flat tail
    assert "short of the flat tail (43 epochs)" in plans[1.5].why
    assert plans[2.2].members == ("strided-cnn",) * 2
    assert len(plans[3.5].members) > 2 and set(plans[3.5].members) == {"strided-cnn"}
    for times, plan in plans.items():
        assert passes(hard, plan.epochs) >= flat and plan.estimated_seconds <= times * one_net
    # the minutes of a second net go to it, not to a longer schedule for one
    assert plans[2.2].epochs < plan_budget(replace(hard, members=("strided-cnn",), chosen_by={
        "members": "option"}), TIMINGS, ROWS, 2, 2.2 * one_net).epochs  # fmt: skip
    assert plans[2.2].to_dict()["nets_per_fold"] == 2
    assert "flat tail" in plans[2.2].to_dict()["nets_why"]


def test_nets_a_fold_stop_at_the_most_that_pay_then_the_schedule_grows():
    hard = replace(CONFIG, select_hard=2.0)
    plan = plan_budget(hard, TIMINGS, ROWS, 2, 1e6)
    assert plan.members == ("strided-cnn",) * MAX_NETS_PER_FOLD
    assert passes(hard, plan.epochs) > 2 * FLAT_PASSES["strided-cnn"]
    assert f"more than {MAX_NETS_PER_FOLD}" in plan.why


def test_nets_chosen_by_hand_or_never_measured_get_no_company():
    by_hand = replace(CONFIG, chosen_by={"members": "option"})
    assert plan_budget(by_hand, TIMINGS, ROWS, 2, 1e6).members == ("strided-cnn",)
    assert plan_budget(by_hand, TIMINGS, ROWS, 2, 1e6).why == "chosen with --members"
    unmeasured = replace(CONFIG, members=("fast-cnn",))
    plan = plan_budget(unmeasured, TIMINGS, ROWS, 2, 1e6)
    assert plan.members == ("fast-cnn",) and "no flat tail measured" in plan.why


def test_a_preset_of_several_nets_grows_by_taking_them_again_in_turn():
    gpu_like = replace(CONFIG, members=("strided-cnn",) * 3)
    few = plan_budget(gpu_like, TIMINGS, ROWS, 2, 20 * 60)
    assert len(few.members) < 3 and "would each get fewer than" in few.why
    many = plan_budget(gpu_like, TIMINGS, ROWS, 2, 1e6)
    assert many.members == ("strided-cnn",) * MAX_NETS_PER_FOLD


def test_a_budget_too_small_for_one_epoch_is_refused():
    config = CVConfig(folds=5, members=("strided-cnn",), budget_minutes=1)
    with pytest.raises(UserError, match="too small for one epoch per pair"):
        plan_budget(config, TIMINGS, ROWS, 2, 60)


def test_the_short_budget_recipe_is_the_quick_one_with_the_users_options():
    priors = load_competition().priors
    config = preset_config(
        "default", priors, budget_minutes=10, folds=3, seed=7, label_smoothing=0.1
    )
    recipe = short_budget_recipe(config, priors)
    quick = preset_config("quick", priors)
    # the spec's priors for the quick preset: its own views, as before the spec held them
    assert (recipe.tta_views, recipe.deskew, config.tta_views) == ("shifts", True, "rotations")
    assert recipe.chosen_by["label_smoothing"] == "option"
    assert short_budget_recipe(replace(config, tta_views="shifts"), None).tta_views == "shifts"
    assert (recipe.preset, recipe.members, recipe.batch_size, recipe.learning_rate) == (
        "quick",
        quick.members,
        quick.batch_size,
        quick.learning_rate,
    )
    assert (recipe.folds, recipe.seed, recipe.label_smoothing, recipe.budget_minutes) == (
        3,
        7,
        0.1,
        10,
    )
    assert short_budget_recipe(preset_config("default", members=("vgg-bn",))) is None
    assert short_budget_recipe(preset_config("quick", budget_minutes=10)) is None


class TimedRunner:
    """A runner whose trials take no time and report these step times, in float32; `speedup`
    of other precisions (none: the same)."""

    cores = 2

    def __init__(
        self,
        step_seconds: dict[str, float],
        speedup: dict[str, float] | None = None,
        restart_seconds: float = 0.0,
        gpu: str | None = None,
    ) -> None:
        self.step_seconds, self.speedup = step_seconds, speedup or {}
        self.restart_seconds = restart_seconds
        self.gpu = gpu
        self.timed = []

    def describe(self) -> dict:
        return {"engine": "test", "gpu": self.gpu}

    def time_steps(self, data, config, architecture):
        self.timed.append(architecture)
        speedup = self.speedup.get(config.precision, 1.0)
        return StepTiming(architecture, self.step_seconds[architecture] / speedup, 0.0002, 3.0)


def test_on_a_gpu_auto_precision_tries_float16_too_and_takes_the_fastest():
    runner = TimedRunner(
        {"strided-cnn": 0.05}, speedup={"mixed_float16": 3.0, "mixed_bfloat16": 0.5}, gpu="T4"
    )
    config, plan = fit(30, runner)
    assert runner.timed == ["strided-cnn"] * 3  # float32, mixed_bfloat16, mixed_float16
    assert config.precision == "mixed_float16"
    assert set(plan["precision_trial"]) == {"float32", "mixed_bfloat16", "mixed_float16"}


def fit(minutes: float, runner: TimedRunner, keep_folds: bool = False):
    config = preset_config("default", budget_minutes=minutes, folds=5, workers=2)
    data = TrainingData(
        np.empty((42000, 1, 1, 1)), np.zeros(42000), np.empty((28000, 1, 1, 1)),
        np.arange(42000) % 5, 10,
    )  # fmt: skip
    return fit_budget(config, data, runner, time.perf_counter(), lambda line: None, keep_folds)


def test_a_budget_too_short_for_the_presets_net_takes_the_quick_recipe():
    runner = TimedRunner({"strided-cnn": 0.05, "tiny-cnn": 0.05})  # steps of 32 and 256
    config, plan = fit(10, runner)
    # each net in both precisions (the presets' "auto")
    assert runner.timed == ["strided-cnn", "strided-cnn", "tiny-cnn", "tiny-cnn"]
    assert (config.preset, config.members, config.folds) == ("quick", ("tiny-cnn",), 5)
    assert plan["switched_from"]["preset"] == "default"
    strided_epochs = plan["switched_from"]["epochs"]  # thirds of a pass, select_hard=2
    assert passes(preset_config("default"), strided_epochs) < 6 <= config.epochs == plan["epochs"]
    assert rerun_command(config).startswith("kaggle-digits cv --preset quick --folds 5 ")


def test_a_budget_too_short_for_the_quick_recipe_too_takes_its_fewer_folds():
    runner = TimedRunner({"strided-cnn": 0.05, "tiny-cnn": 0.05})
    config, plan = fit(4, runner)
    # 5 folds would give tiny-cnn about 3 epochs; 2 folds, one round of two workers, ~31
    assert (config.preset, config.folds) == ("quick", 2)
    assert config.epochs >= SHORT_RECIPE_EPOCHS and plan["switched_from"]["folds"] == 5
    # the folds need no trial of their own
    assert runner.timed == ["strided-cnn", "strided-cnn", "tiny-cnn", "tiny-cnn"]
    assert "--folds" not in rerun_command(config)  # the quick preset's own
    kept, kept_plan = fit(4, TimedRunner({"strided-cnn": 0.05, "tiny-cnn": 0.05}), True)
    assert (kept.preset, kept.folds) == ("quick", 5) and kept.epochs < SHORT_RECIPE_EPOCHS


def test_a_budget_long_enough_keeps_the_presets_net():
    runner = TimedRunner({"strided-cnn": 0.05, "tiny-cnn": 0.05})  # steps of 32 and 256
    config, plan = fit(60, runner)
    assert runner.timed == ["strided-cnn", "strided-cnn"]
    assert (config.preset, config.members) == ("default", ("strided-cnn",))
    assert config.epochs >= 6 and "switched_from" not in plan


def test_the_plan_leaves_the_time_fresh_workers_take_to_start():
    steps = {"strided-cnn": 0.05, "tiny-cnn": 0.05}
    config, plan = fit(60, TimedRunner(steps))
    later, later_plan = fit(60, TimedRunner(steps, restart_seconds=300))
    assert later.epochs < config.epochs
    assert later_plan["estimated_minutes"] <= (60 - 5) * SAFETY
    assert later_plan["worker_start_seconds"] == 300 and "worker_start_seconds" not in plan


def test_auto_precision_takes_the_one_the_trial_finds_faster_and_says_so_for_a_rerun():
    as_fast, _ = fit(60, TimedRunner({"strided-cnn": 0.05}))
    config, plan = fit(60, TimedRunner({"strided-cnn": 0.05}, {"mixed_bfloat16": 1.4}))
    assert as_fast.precision == "float32"  # a tie: the weights' own precision
    assert config.precision == "mixed_bfloat16"
    trial = plan["precision_trial"]  # seconds an epoch in each
    assert trial["mixed_bfloat16"] < trial["float32"] and config.epochs > as_fast.epochs
    assert "--precision mixed_bfloat16" in rerun_command(config)
    slower, slower_plan = fit(60, TimedRunner({"strided-cnn": 0.05}, {"mixed_bfloat16": 0.5}))
    assert slower.precision == "float32" and "precision_trial" in slower_plan


def test_a_budget_too_short_for_either_recipe_is_refused():
    runner = TimedRunner({"strided-cnn": 0.5, "tiny-cnn": 0.5})  # steps of 32 and 256
    with pytest.raises(UserError, match="too small for one epoch per pair"):
        fit(1, runner)


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


def test_epochs_replace_a_presets_budget_and_not_both():
    assert preset_config("default").budget_minutes > 0
    assert preset_config("default", epochs=3).budget_minutes == 0
    with pytest.raises(UserError, match="--epochs or --budget"):
        preset_config("default", epochs=3, budget_minutes=10)


def test_rerun_command_names_the_chosen_epochs_and_members():
    config = preset_config("default", load_competition().priors, budget_minutes=10)
    chosen = CVConfig(**{**config.__dict__, "epochs": 13, "members": ("fast-cnn",), "workers": 2})
    command = rerun_command(chosen)
    assert command.startswith("kaggle-digits cv --preset default ")
    assert "--epochs 13" in command and "--members fast-cnn" in command
    assert "--workers 2" in command and "budget" not in command
    assert "deskew" not in command and "tta-views" not in command  # the spec's own
    undeskewed = replace(chosen, deskew=False, chosen_by={**chosen.chosen_by, "deskew": "option"})
    assert "--no-deskew" in rerun_command(undeskewed)
    assert "select-hard" not in command  # the preset's own too
    assert "--select-hard 0 " in rerun_command(replace(chosen, select_hard=0.0)) + " "


def test_a_budgeted_run_records_its_plan(small, tmp_path):
    config = CVConfig(
        preset="test", folds=2, members=("tiny-cnn",), batch_size=32, budget_minutes=1
    )
    result = run_tiny(small, tmp_path, config)
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["budget_minutes"] == 1
    assert saved["epochs"] == saved["budget_plan"]["epochs"] >= 1
    assert saved["budget_plan"]["estimated_minutes"] <= 1
    assert saved["budget_plan"]["pair_overhead_seconds"] > 0  # start-up, predictions, saving
    assert len(json.loads((result.run_dir / "metrics.json").read_text())["pairs"]) == 2
    assert np.isfinite(result.metrics["oof_accuracy"])


def test_cli_refuses_a_budget_below_the_smallest_at_once(small, tmp_path):
    too_small = ("--folds", "2", "--members", "tiny-cnn", "--budget", "0.2", "--workers", "1")
    result = cv_cli(small, tmp_path, *too_small)
    assert_user_error(result, "--budget must be 0 (off) or at least 1 minute")
    assert "timing" not in result.stdout  # no trial ran
    assert not (tmp_path / "runs").exists()
    assert_user_error(cv_cli(small, tmp_path, "--epochs", "2", "--budget", "5"), "not both")


def test_a_budget_that_its_second_trial_would_overrun_is_refused_before_it():
    class SlowTrials(TimedRunner):
        def time_steps(self, data, config, architecture):
            time.sleep(0.2)
            return super().time_steps(data, config, architecture)

    runner = SlowTrials({"strided-cnn": 0.05, "tiny-cnn": 0.05})
    config = preset_config("default", budget_minutes=1, folds=5, workers=2)
    data = TrainingData(
        np.empty((42000, 1, 1, 1)), np.zeros(42000), np.empty((28000, 1, 1, 1)),
        np.arange(42000) % 5, 10,
    )  # fmt: skip
    almost_spent = time.perf_counter() - 59.7  # the trial's 0.4 s will leave less than 0.4 s
    with pytest.raises(UserError, match=r"too small here: its trials alone .* --budget 3 or more"):
        fit_budget(config, data, runner, almost_spent, lambda line: None)
    assert runner.timed == ["strided-cnn", "strided-cnn"]  # the quick recipe's never ran


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
    from kaggle_digits.data.competition import load_competition
    from kaggle_digits.data.dataset import load_dataset
    from kaggle_digits.engine.training import EpochReporter, train_model

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


def test_the_frontier_figure_shows_each_budget_and_the_references(tmp_path):
    import matplotlib.image

    from kaggle_digits.base.plots import frontier_figure

    recipes = [(5, "tiny-cnn", 3, 4.6, 0.988), (30, "strided-cnn", 9, 27.0, 0.994)]
    points = [
        {"budget": b, "members": m, "epochs": e, "minutes": t, "oof_accuracy": a}
        | {"test_accuracy": a + 0.001}
        for b, m, e, t, a in recipes
    ]
    references = [{"name": "a public notebook", "minutes": 10.0, "accuracy": 0.99}]
    (tmp_path / "reports").mkdir()
    path = frontier_figure(points, references, tmp_path / "reports" / "frontier.png")
    assert matplotlib.image.imread(path).shape[:2] > (200, 300)
    assert list(path.parent.iterdir()) == [path]  # nothing half-written beside it


def test_the_frontier_labels_say_when_an_epoch_is_a_share_of_the_rows():
    from kaggle_digits.base.plots import frontier_label

    point = {"budget": 30.0, "members": "strided-cnn", "epochs": 36.3}
    assert frontier_label(point | {"select_hard": 2.0}) == (
        "30-min budget: strided-cnn x 36.3 epochs of 1/3"
    )
    assert (
        frontier_label(point | {"select_hard": 0.0}) == "30-min budget: strided-cnn x 36.3 epochs"
    )
    # a row of a frontier.csv written before the column existed
    assert frontier_label(point | {"select_hard": float("nan")}).endswith("36.3 epochs")
    assert frontier_label(point).endswith("36.3 epochs")
