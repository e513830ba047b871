"""kaggle-digits blend: honest weights, compatible runs only, a run folder like any other."""

import json
import shutil

import numpy as np
import pytest
from helpers import assert_user_error, fake_run, run_cli

from kaggle_digits.data.competition import load_competition
from kaggle_digits.data.dataset import load_dataset
from kaggle_digits.jobs import blend
from kaggle_digits.jobs.blend import blend_runs, greedy_weights


@pytest.fixture
def two_runs(small, tmp_path):
    competition = load_competition(small.spec_path)
    dataset = load_dataset(competition, small.data_dir)
    runs_dir = tmp_path / "runs"
    low = fake_run(runs_dir, "20260101-000000-quick", dataset, [0, 1, 2, 3, 4, 5])
    high = fake_run(runs_dir, "20260101-000001-quick", dataset, [4, 5, 6, 7, 8, 9])
    return competition, dataset, runs_dir, low, high


def test_greedy_blend_beats_each_run_and_weights_sum_to_one(small, two_runs):
    competition, dataset, runs_dir, low, high = two_runs
    lines = []
    run_dir = blend_runs(
        [low.name, high.name], competition, small.data_dir, runs_dir, log=lines.append
    )
    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert config["sources"] == [low.name, high.name]
    assert sum(config["weights"]) == pytest.approx(1)
    best_source = max(metrics["member_oof_accuracies"].values())
    assert metrics["oof_accuracy"] >= best_source
    assert metrics["oof_accuracy"] > 0.95
    for name in ("oof_probs.npy", "test_probs.npy", "folds.npy", "summary.txt"):
        assert (run_dir / name).is_file()
    assert any("weight" in line for line in lines)
    assert (runs_dir / "latest").resolve() == run_dir.resolve()


def test_each_folds_weights_are_chosen_without_its_rows(small, two_runs, monkeypatch):
    competition, dataset, runs_dir, low, high = two_runs
    seen = []

    def recording(probs, labels, rounds=blend.ROUNDS):
        seen.append(labels.copy())
        return greedy_weights(probs, labels, rounds)

    monkeypatch.setattr(blend, "greedy_weights", recording)
    blend_runs([low.name, high.name], competition, small.data_dir, runs_dir, log=lambda _: None)
    fold_of_row = np.load(low / "folds.npy")
    labels = dataset.train_labels
    assert len(seen) == 3  # one per fold, then all rows for the test prediction
    for fold in range(2):
        assert np.array_equal(seen[fold], labels[fold_of_row != fold])
    assert np.array_equal(seen[2], labels)


def test_greedy_weights_follow_the_better_source():
    labels = np.array([0, 1, 0, 1])
    good = np.eye(2)[labels][None] * 0.9 + 0.05
    bad = np.full((1, 4, 2), 0.5)
    weights = greedy_weights(np.concatenate([bad, good]), labels)
    assert weights[1] > weights[0] and weights.sum() == pytest.approx(1)


def test_runs_on_other_folds_are_refused(small, two_runs):
    competition, dataset, runs_dir, low, _ = two_runs
    other = fake_run(runs_dir, "20260101-000002-quick", dataset, [1, 2], seed=7)
    result = run_cli(
        "--competition", small.spec_path, "--data-dir", small.data_dir,
        "blend", low.name, other.name, "--runs-dir", runs_dir,
    )  # fmt: skip
    assert_user_error(result, other.name, "folds differ", "--seed 42 --folds 2")


def test_a_blend_submits_and_predicts_like_a_run(trained, tmp_path):
    runs_dir = tmp_path / "runs"
    for copy in ("a", "b"):
        shutil.copytree(trained.run_dir, runs_dir / f"{trained.run_dir.name}-{copy}")
    common = ["--competition", trained.spec_path, "--data-dir", trained.data_dir]
    names = [f"{trained.run_dir.name}-a", f"{trained.run_dir.name}-b"]
    result = run_cli(*common, "blend", *names, "--runs-dir", runs_dir, "--method", "mean")
    assert result.exit_code == 0, result.output
    [blend_dir] = [path for path in runs_dir.glob("*-blend")]
    np.testing.assert_allclose(
        np.load(blend_dir / "test_probs.npy"), np.load(trained.run_dir / "test_probs.npy"),
        atol=1e-6,
    )  # fmt: skip
    submitted = run_cli(
        *common, "submit", "--dry-run", "--runs-dir", runs_dir,
        "--submissions-dir", tmp_path / "submissions",
    )  # fmt: skip
    assert submitted.exit_code == 0, submitted.output
    assert (tmp_path / "submissions" / f"{blend_dir.name}.csv").is_file()
    predicted = run_cli(
        "--competition", trained.spec_path, "predict", "--runs-dir", runs_dir,
        "--run", blend_dir.name, "--csv", trained.test_csv,
    )  # fmt: skip
    assert predicted.exit_code == 0, predicted.output
    listed = run_cli("runs", "--runs-dir", runs_dir)
    assert "blend" in listed.stdout
