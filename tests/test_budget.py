"""--budget: the time model and the plans it makes: epochs, nets a fold, workers."""

from dataclasses import replace

import pytest

from kaggle_digits.base.errors import UserError
from kaggle_digits.data.competition import load_competition
from kaggle_digits.machine.schedule import job_speed, makespan, shortest_run_workers
from kaggle_digits.options.config import CVConfig
from kaggle_digits.options.presets import preset_config, rerun_command
from kaggle_digits.training.budget import (
    FLAT_PASSES,
    MAX_EPOCHS,
    MAX_NETS_PER_FOLD,
    SAFETY,
    Rows,
    Setting,
    crowded_speed,
    passes,
    plan_budget,
    run_seconds,
    short_budget_recipe,
    training_seconds,
)
from kaggle_digits.training.pairs import (
    StepTiming,
    learning_curve_rows,
)

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
    even = plan_budget(CONFIG, Setting(TIMINGS, ROWS, 3, 2), 60 * 60)
    slower_last_round = plan_budget(CONFIG, Setting(measured, ROWS, 3, 2), 60 * 60)
    assert slower_last_round.epochs < even.epochs
    assert slower_last_round.crowded_speed == pytest.approx(0.8)
    # an even share would have promised the same epochs sooner than they can end
    promised = run_seconds(
        CONFIG, CONFIG.members, slower_last_round.epochs, Setting(TIMINGS, ROWS, 3, 2)
    )
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
    two = plan_budget(CONFIG, Setting(TIMINGS, ROWS, 2), 60 * 60)
    three = plan_budget(CONFIG, Setting(shared, ROWS, 3, 2), 60 * 60)
    assert three.epochs > two.epochs
    assert three.estimated_seconds <= 60 * 60


def test_a_smaller_budget_plans_fewer_epochs_and_each_plan_fits():
    plans = [
        plan_budget(CONFIG, Setting(TIMINGS, ROWS, 2), minutes * 60) for minutes in (10, 30, 60)
    ]
    epochs = [plan.epochs for plan in plans]
    assert epochs == sorted(epochs) and epochs[0] < epochs[-1]
    for plan, minutes in zip(plans, (10, 30, 60), strict=True):
        assert plan.estimated_seconds <= minutes * 60
        a_tenth_more = run_seconds(
            CONFIG, plan.members, plan.epochs + 0.1, Setting(TIMINGS, ROWS, 2)
        )
        assert a_tenth_more > SAFETY * minutes * 60  # nothing left on the table


def test_plans_choose_tenths_of_an_epoch():
    plan = plan_budget(CONFIG, Setting(TIMINGS, ROWS, 2), 26 * 60)
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
    assert plan_budget(hard, Setting(TIMINGS, ROWS, 2), 1e9).epochs == MAX_EPOCHS * 3
    assert plan_budget(CONFIG, Setting(TIMINGS, ROWS, 2), 1e9).epochs == MAX_EPOCHS


def test_more_workers_buy_more_epochs():
    one = plan_budget(CONFIG, Setting(TIMINGS, ROWS, 1), 30 * 60)
    two = plan_budget(CONFIG, Setting(TIMINGS, ROWS, 2), 30 * 60)
    assert two.epochs > one.epochs


def test_members_are_dropped_only_when_they_would_be_too_short():
    config = CVConfig(folds=5, members=("strided-cnn", "fast-cnn"), batch_size=128)
    long = plan_budget(config, Setting(TIMINGS, ROWS, 2), 120 * 60)
    assert long.members == ("strided-cnn", "fast-cnn") and long.epochs >= 6
    short = plan_budget(config, Setting(TIMINGS, ROWS, 2), 12 * 60)
    assert short.members == ("strided-cnn",)


def test_past_the_flat_tail_a_longer_budget_adds_nets_a_fold():
    hard = replace(CONFIG, select_hard=2.0)  # the default preset's epochs of a third
    flat = FLAT_PASSES["strided-cnn"]
    one_net = run_seconds(hard, ("strided-cnn",), flat * 3, Setting(TIMINGS, ROWS, 2)) / SAFETY
    plans = {
        times: plan_budget(hard, Setting(TIMINGS, ROWS, 2), times * one_net)
        for times in (1.5, 2.2, 3.5)
    }
    assert plans[1.5].members == ("strided-cnn",)  # two would end short of the flat tail
    assert plans[1.5].why == "2 nets a fold would each stop short of the flat tail at 43 epochs"
    assert plans[2.2].members == ("strided-cnn",) * 2
    assert len(plans[3.5].members) > 2 and set(plans[3.5].members) == {"strided-cnn"}
    for times, plan in plans.items():
        assert passes(hard, plan.epochs) >= flat and plan.estimated_seconds <= times * one_net
    # the minutes of a second net go to it, not to a longer schedule for one
    assert plans[2.2].epochs < plan_budget(replace(hard, members=("strided-cnn",), chosen_by={
        "members": "option"}), Setting(TIMINGS, ROWS, 2), 2.2 * one_net).epochs  # fmt: skip
    assert plans[2.2].to_dict()["nets_per_fold"] == 2
    assert "flat tail" in plans[2.2].to_dict()["nets_why"]


def test_nets_a_fold_stop_at_the_most_that_pay_then_the_schedule_grows():
    hard = replace(CONFIG, select_hard=2.0)
    plan = plan_budget(hard, Setting(TIMINGS, ROWS, 2), 1e6)
    assert plan.members == ("strided-cnn",) * MAX_NETS_PER_FOLD
    assert passes(hard, plan.epochs) > 2 * FLAT_PASSES["strided-cnn"]
    assert f"more than {MAX_NETS_PER_FOLD}" in plan.why


def test_nets_chosen_by_hand_or_never_measured_get_no_company():
    by_hand = replace(CONFIG, chosen_by={"members": "option"})
    assert plan_budget(by_hand, Setting(TIMINGS, ROWS, 2), 1e6).members == ("strided-cnn",)
    assert plan_budget(by_hand, Setting(TIMINGS, ROWS, 2), 1e6).why == "chosen with --members"
    unmeasured = replace(CONFIG, members=("fast-cnn",))
    plan = plan_budget(unmeasured, Setting(TIMINGS, ROWS, 2), 1e6)
    assert plan.members == ("fast-cnn",) and "no flat tail measured" in plan.why


def test_a_preset_of_several_nets_grows_by_taking_them_again_in_turn():
    gpu_like = replace(CONFIG, members=("strided-cnn",) * 3)
    few = plan_budget(gpu_like, Setting(TIMINGS, ROWS, 2), 20 * 60)
    assert len(few.members) < 3 and "would each get fewer than" in few.why
    many = plan_budget(gpu_like, Setting(TIMINGS, ROWS, 2), 1e6)
    assert many.members == ("strided-cnn",) * MAX_NETS_PER_FOLD


# two trials' step times (ms a step of 32 with 3 workers busy / with 2), a prediction's cost
# fitted to the plans those machines' trials made: 43 epochs of a third in 120 minutes on the
# Zen 3 (2026-12-07), 54 in the hour on the Zen 4 (docs/measurements.md#the-flat-tail)
MACHINES = {
    "zen3": StepTiming("strided-cnn", 0.1623, 0.001, 8.0, 0.077),
    "zen4": StepTiming("strided-cnn", 0.045, 0.0004, 8.0, 0.032),
}


@pytest.mark.parametrize(
    "machine, nets", [("zen3", {58: 1, 120: 1, 480: 3}), ("zen4", {58: 1, 120: 2, 480: 5})]
)
def test_plans_for_the_machines_measured(machine, nets):
    config = replace(preset_config("default", load_competition().priors), folds=5, workers=3)
    timings = {"strided-cnn": MACHINES[machine]}
    trial = 2.5 * 60  # the trial and the fresh workers, before the plan
    for minutes, count in nets.items():
        plan = plan_budget(config, Setting(timings, ROWS, 3, 2), minutes * 60 - trial)
        assert len(plan.members) == count, (minutes, plan)
        assert plan.estimated_seconds <= (minutes * 60 - trial) * SAFETY
        if count > 1:  # every net a fold at its flat tail or past it
            assert passes(config, plan.epochs) >= FLAT_PASSES["strided-cnn"]


def test_a_budget_too_small_for_one_epoch_is_refused():
    config = CVConfig(folds=5, members=("strided-cnn",), budget_minutes=1)
    with pytest.raises(UserError, match="too small for one epoch per pair"):
        plan_budget(config, Setting(TIMINGS, ROWS, 2), 60)


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


def test_the_frontier_figure_shows_each_budget_and_the_references(tmp_path):
    import matplotlib.image

    from kaggle_digits.reports.plots import frontier_figure

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
    from kaggle_digits.reports.plots import frontier_label

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
