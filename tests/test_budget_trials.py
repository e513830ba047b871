"""--budget's trials: a few timed steps, then the precision, recipe, workers and plan they
settle, and how a run records them."""

import json
import time
from dataclasses import replace

import numpy as np
import pytest
from helpers import assert_user_error, cv_cli, run_tiny

from kaggle_digits.base.errors import UserError
from kaggle_digits.jobs.runs import list_runs, runs_table
from kaggle_digits.options.config import CVConfig
from kaggle_digits.options.presets import preset_config, rerun_command
from kaggle_digits.training.budget import (
    SAFETY,
    SHORT_RECIPE_EPOCHS,
    passes,
)
from kaggle_digits.training.pairs import (
    StepTiming,
    TrainingData,
)
from kaggle_digits.training.trials import fit_budget


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


def full_size_data() -> TrainingData:
    """The full data's shapes (42,000 rows in 5 folds, 28,000 to predict), none of its
    pixels: what a trial's time model reads."""
    return TrainingData(
        np.empty((42000, 1, 1, 1)), np.zeros(42000), np.empty((28000, 1, 1, 1)),
        np.arange(42000) % 5, 10,
    )  # fmt: skip


def fit(minutes: float, runner: TimedRunner, folds_given: bool = False):
    """The default preset's five folds, given as --folds 5 where `folds_given`."""
    folds = 5 if folds_given else None
    config = preset_config("default", budget_minutes=minutes, folds=folds, workers=2)
    assert config.folds == 5
    return fit_budget(config, full_size_data(), runner, time.perf_counter(), lambda line: None)


class CrowdedRunner(TimedRunner):
    """Three workers on two cores, timed in the trial with all three busy and with two; they
    can be made two."""

    def __init__(self, crowded: float, alone: float) -> None:
        super().__init__({"strided-cnn": crowded})
        self.crowded, self.alone, self.used = crowded, alone, None

    def time_steps(self, data, config, architecture):
        timing = super().time_steps(data, config, architecture)
        return replace(
            timing, uncrowded_step_seconds=self.alone * timing.step_seconds / self.crowded
        )

    def use_workers(self, workers: int) -> None:
        self.used = workers


def fit_with_three(minutes: float, runner: TimedRunner, **options):
    config = preset_config("default", budget_minutes=minutes, folds=5, workers=3, **options)
    config = replace(config, chosen_by={**config.chosen_by, "workers": "preset"})
    return fit_budget(config, full_size_data(), runner, time.perf_counter(), lambda line: None)


def test_workers_that_crowd_the_cores_badly_become_one_a_core():
    # the 2-core Zen 3 of 2026-12-07: 162 ms a step with three busy, 77 with two (0.47 each)
    slow_crowd = CrowdedRunner(0.162, 0.077)
    config, plan = fit_with_three(120, slow_crowd)
    assert slow_crowd.used == 2 and config.workers == 2
    assert plan["workers_from_trial"] == {"workers": 3, "speed": pytest.approx(0.475, abs=0.01)}
    # the Zen 4 of earlier sessions: 45 ms with three busy, 32 with two (0.71 each): kept
    good_crowd = CrowdedRunner(0.045, 0.032)
    config, plan = fit_with_three(120, good_crowd)
    assert good_crowd.used is None and config.workers == 3 and "workers_from_trial" not in plan
    # workers given by hand are kept
    by_hand = CrowdedRunner(0.162, 0.077)
    config, _ = fit_budget(
        preset_config("default", budget_minutes=120, folds=5, workers=3),
        full_size_data(),
        by_hand,
        time.perf_counter(),
        lambda line: None,
    )
    assert by_hand.used is None and config.workers == 3


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
    # how many nets a fold, and why, in config.json and in `runs`
    assert saved["budget_plan"]["nets_per_fold"] == 1
    assert saved["budget_plan"]["nets_why"].startswith("no flat tail measured for these nets")
    table = runs_table(list_runs(result.run_dir.parent, tmp_path / "submissions"))
    assert table.split()[2] == "nets" and "tiny-cnn " in table.splitlines()[1]
    assert f"  {result.run_dir.name}: no flat tail measured" in table


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
    data = full_size_data()
    almost_spent = time.perf_counter() - 59.7  # the trial's 0.4 s will leave less than 0.4 s
    with pytest.raises(UserError, match=r"too small here: its trials alone .* --budget 3 or more"):
        fit_budget(config, data, runner, almost_spent, lambda line: None)
    assert runner.timed == ["strided-cnn", "strided-cnn"]  # the quick recipe's never ran
