"""MLflow tracking (`--track`): what a tracked cv, blend and submit leave in MLflow's default
store, that tracking off never imports MLflow, and that a broken store only warns."""

import json
from dataclasses import replace

import pytest
from helpers import (
    TINY,
    assert_user_error,
    cv_cli,
    fake_run,
    modules_imported,
    run_cli,
    run_tiny,
)

from kaggle_digits.data.competition import load_competition
from kaggle_digits.data.dataset import load_dataset

mlflow = pytest.importorskip("mlflow")  # make install brings it; a bare install may not


@pytest.fixture
def default_store(tmp_path, monkeypatch):
    """MLflow's own default: a SQLite file in the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "mlflow.db"


def mlflow_run(run_dir):
    saved = json.loads((run_dir / "mlflow.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=saved["tracking_uri"])
    return client, client.get_run(saved["run_id"])


def test_a_tracked_cv_holds_options_pair_series_scores_figures_then_its_public_score(
    small, tmp_path, default_store, kaggle_server
):
    config = replace(TINY, members=("mlp", "mlp"), epochs=2)  # two pairs a fold, quickly
    result = run_tiny(small, tmp_path, config, track=True)
    assert default_store.is_file()
    client, run = mlflow_run(result.run_dir)
    assert run.info.status == "FINISHED" and run.info.run_name == result.run_dir.name
    params = run.data.params
    assert (params["folds"], params["members"], params["epochs"]) == ("2", "mlp,mlp", "2")
    assert params["keras_backend"] and len(params["data_fingerprint"]) == 64
    for fold in (1, 2):
        for member, architecture in enumerate(config.members, start=1):
            series = f"fold{fold}/member{member}-{architecture}/loss"
            history = client.get_metric_history(run.info.run_id, series)
            assert [point.step for point in history] == [1, 2], series
    metrics = run.data.metrics
    assert metrics["oof_accuracy"] == pytest.approx(result.metrics["oof_accuracy"])
    assert metrics["oof_log_loss"] == pytest.approx(result.metrics["oof_log_loss"])
    assert metrics["wall_minutes"] == result.metrics["wall_minutes"]
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"learning_curves.png", "confusion_matrix.png", "summary.txt", "config.json"} <= (
        artifacts
    )

    submitted = run_cli(
        "--competition", small.spec_path, "--data-dir", small.data_dir, "submit",
        "--runs-dir", tmp_path / "runs", "--submissions-dir", tmp_path / "submissions",
        "--poll-every", "0.05", "--track",
    )  # fmt: skip
    assert submitted.exit_code == 0, submitted.output
    public = float(kaggle_server.submissions[0].public_score)
    _, run = mlflow_run(result.run_dir)
    assert run.data.metrics["public_score"] == pytest.approx(public)


def test_a_tracked_blend_holds_its_sources_and_weights(small, tmp_path, default_store):
    from kaggle_digits.jobs.blend import blend_runs

    competition = load_competition(small.spec_path)
    dataset = load_dataset(competition, small.data_dir)
    runs_dir = tmp_path / "runs"
    low = fake_run(runs_dir, "20260101-000000-quick", dataset, [0, 1, 2, 3, 4, 5])
    high = fake_run(runs_dir, "20260101-000001-quick", dataset, [4, 5, 6, 7, 8, 9])
    run_dir = blend_runs(
        [low.name, high.name], competition, small.data_dir, runs_dir, log=print, track=True
    )
    _, run = mlflow_run(run_dir)
    params = run.data.params
    weights = json.loads((run_dir / "config.json").read_text())["weights"]
    assert params["sources"] == f"{low.name},{high.name}" and params["method"] == "greedy"
    assert [float(params[f"weight.{name}"]) for name in (low.name, high.name)] == weights
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert run.data.metrics["oof_accuracy"] == pytest.approx(metrics["oof_accuracy"])


def test_without_track_mlflow_is_never_imported():
    untracked = (
        "from pathlib import Path\n"
        "from kaggle_digits.cli import main\n"
        "from kaggle_digits.jobs import blend, cv, leaderboard, submit\n"
        "from kaggle_digits.reports.tracking import Tracker\n"
        "tracker = Tracker(False, print)\n"
        "tracker.start(Path('nowhere'), 'x', {'a': 1}); tracker.epoch('s', 1, {'loss': 1.0})\n"
        "tracker.finish(Path('nowhere'), {}); tracker.attach(Path('nowhere'))"
    )
    assert modules_imported(untracked, "mlflow") == [False]


def test_a_broken_store_is_one_warning_and_the_run_loses_nothing(small, tmp_path, monkeypatch):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{not_a_folder}/mlflow.db")
    lines = []
    result = run_tiny(
        small, tmp_path, replace(TINY, members=("mlp",)), track=True, log=lines.append
    )
    warnings = [line for line in lines if line.startswith("warning: MLflow tracking stopped")]
    assert len(warnings) == 1, lines
    assert (result.run_dir / "metrics.json").is_file()
    assert len(result.metrics["pairs"]) == 2


def test_track_without_mlflow_installed_is_one_line_before_any_training(
    small, tmp_path, monkeypatch
):
    monkeypatch.setattr("kaggle_digits.reports.tracking.mlflow_installed", lambda: False)
    monkeypatch.setenv("KAGGLE_DIGITS_TRACK", "1")  # as --track
    result = cv_cli(small, tmp_path, "--members", "mlp", "--epochs", "1")
    assert_user_error(result, "--track needs MLflow", "pip install 'kaggle-digits[mlflow]'")
    assert not (tmp_path / "runs").exists()
