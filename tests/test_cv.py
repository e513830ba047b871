import json
import os

import numpy as np
import pytest
from helpers import TINY, assert_user_error, cv_cli, run_tiny, small_dataset

from kaggle_digits.base.errors import UserError
from kaggle_digits.data.competition import load_competition
from kaggle_digits.jobs.cv import fold_assignment, run_cv
from kaggle_digits.options.config import CVConfig
from kaggle_digits.options.presets import preset_config
from kaggle_digits.store.run_files import pair_dir
from kaggle_digits.store.run_folder import find_run


def test_folds_are_stratified_disjoint_covering_and_seeded():
    labels = np.repeat(np.arange(10), 53)
    fold_of_row = fold_assignment(labels, folds=5, seed=3)
    assert set(fold_of_row) == set(range(5))  # every row is held out in exactly one fold
    for fold in range(5):
        counts = np.bincount(labels[fold_of_row == fold], minlength=10)
        assert counts.max() - counts.min() <= 1  # each class spread evenly
    assert np.array_equal(fold_of_row, fold_assignment(labels, folds=5, seed=3))
    assert not np.array_equal(fold_of_row, fold_assignment(labels, folds=5, seed=4))


def test_run_folder_holds_everything_submit_needs(small, tmp_path):
    result = run_tiny(small, tmp_path)
    run_dir = result.run_dir
    for name in [
        "config.json",
        "metrics.json",
        "folds.npy",
        "oof_probs.npy",
        "test_probs.npy",
        "learning_curves.png",
        "confusion_matrix.png",
        "mistakes.png",
        "summary.txt",
    ]:
        assert (run_dir / name).is_file(), name
    for fold in range(2):
        for member, architecture in enumerate(TINY.members):
            folder = pair_dir(run_dir, fold, member, architecture)
            for name in [
                "model.keras",
                "holdout_probs.npy",
                "test_probs.npy",
                "history.json",
                "result.json",
            ]:
                assert (folder / name).is_file(), (folder, name)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["members"] == ["mlp", "lc-cnn"]
    assert len(config["data_fingerprint"]) == 64
    assert config["packages"]["keras"]
    assert "git_commit" in config
    # the kernels TensorFlow trained with: oneDNN's, unless the environment said otherwise
    if config["keras_backend"] == "tensorflow":
        assert config["tf_onednn"] == os.environ.get("TF_ENABLE_ONEDNN_OPTS") in ("0", "1")
    else:
        assert "tf_onednn" not in config  # no other backend reads it
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0 <= metrics["oof_accuracy"] <= 1
    assert len(metrics["fold_accuracies"]) == 2
    assert len(metrics["pairs"]) == 4
    assert (tmp_path / "runs" / "latest").resolve() == run_dir.resolve()
    assert find_run(tmp_path / "runs") == run_dir.resolve()


def test_oof_covers_each_row_once_and_ensembles_average(small, tmp_path):
    result = run_tiny(small, tmp_path)
    fold_of_row = np.load(result.run_dir / "folds.npy")
    assert result.oof_probs.shape == (200, 10)
    assert result.test_probs.shape == (50, 10)
    all_test, held_out_rows = [], 0
    for fold in range(2):
        holdout = [
            np.load(pair_dir(result.run_dir, fold, m, a) / "holdout_probs.npy")
            for m, a in enumerate(TINY.members)
        ]
        assert holdout[0].shape[0] == (fold_of_row == fold).sum()
        held_out_rows += holdout[0].shape[0]
        np.testing.assert_allclose(
            result.oof_probs[fold_of_row == fold], np.mean(holdout, axis=0), rtol=1e-5
        )
        all_test += [
            np.load(pair_dir(result.run_dir, fold, m, a) / "test_probs.npy")
            for m, a in enumerate(TINY.members)
        ]
    np.testing.assert_allclose(result.test_probs, np.mean(all_test, axis=0), rtol=1e-5)
    assert held_out_rows == 200  # the folds' held-out rows: every row, none twice


def test_a_killed_run_resumes_without_retraining_finished_pairs(small, tmp_path):
    competition = load_competition(small.spec_path)
    lines = []

    def killed_after_first_pair(line):
        lines.append(line)
        if "held-out accuracy" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cv(TINY, competition, small.data_dir, tmp_path / "runs", log=killed_after_first_pair)
    [run_dir] = [p for p in (tmp_path / "runs").iterdir()]
    assert lines[-1] == f"stopped: `kaggle-digits cv --resume {run_dir}` finishes this run"
    first = pair_dir(run_dir, 0, 0, "mlp") / "result.json"
    assert first.exists()
    assert not (run_dir / "metrics.json").exists()
    with pytest.raises(UserError, match="no complete run"):
        find_run(tmp_path / "runs")  # an unfinished run is never taken as a result
    with pytest.raises(UserError, match="not complete"):
        find_run(tmp_path / "runs", run_dir.name)
    stamp = first.stat().st_mtime_ns

    resumed = []
    result = run_cv(
        TINY, competition, small.data_dir, tmp_path / "runs", resume=run_dir, log=resumed.append
    )
    assert first.stat().st_mtime_ns == stamp
    assert any("fold 1/2 member 1/2 mlp: done" in line for line in resumed)
    assert sum("held-out accuracy" in line for line in resumed) == 3
    assert (run_dir / "metrics.json").exists()
    assert result.run_dir == run_dir


def test_same_seed_same_oof(small, tmp_path):
    config = CVConfig(preset="test", folds=2, members=("lc-cnn",), epochs=1, batch_size=32)
    first = run_tiny(small, tmp_path / "a", config)
    second = run_tiny(small, tmp_path / "b", config)
    np.testing.assert_allclose(first.oof_probs, second.oof_probs, atol=1e-5)
    assert first.metrics["oof_accuracy"] == second.metrics["oof_accuracy"]


def test_a_run_with_tta_predicts_with_its_views_and_saves_its_label_smoothing(small, tmp_path):
    from dataclasses import replace

    from kaggle_digits.store.members import load_model
    from kaggle_digits.training.fit import predict_probs

    config = CVConfig(
        preset="test", folds=2, members=("mlp",), epochs=1, tta=2, label_smoothing=0.1
    )
    result = run_tiny(small, tmp_path, config)
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert (saved["tta"], saved["label_smoothing"]) == (2, 0.1)
    folder = pair_dir(result.run_dir, 0, 0, "mlp")
    model = load_model(folder / "model.keras")
    test_images = small_dataset(small).test_images
    saved_probs = np.load(folder / "test_probs.npy")
    np.testing.assert_allclose(saved_probs, predict_probs(model, test_images, config), atol=1e-5)
    without_views = predict_probs(model, test_images, replace(config, tta=0))
    assert np.abs(saved_probs - without_views).max() > 1e-4


def test_auto_precision_is_settled_by_a_trial_and_saved_as_chosen(small, tmp_path):
    config = CVConfig(preset="test", folds=2, members=("mlp",), epochs=1, precision="auto")
    lines = []
    result = run_tiny(small, tmp_path, config, log=lines.append)
    saved = json.loads((result.run_dir / "config.json").read_text())
    trial = saved["precision_trial"]  # seconds an epoch of the members in each
    assert set(trial) == {"float32", "mixed_bfloat16"}
    assert trial[saved["precision"]] == min(trial.values())
    assert any(line.startswith(f"precision auto -> {saved['precision']}") for line in lines)
    import keras

    model = keras.saving.load_model(pair_dir(result.run_dir, 0, 0, "mlp") / "model.keras")
    hidden = next(layer for layer in model.layers if isinstance(layer, keras.layers.Dense))
    assert hidden.dtype_policy.name == saved["precision"]


def test_cli_cv_prints_config_engine_progress_and_a_wall_time_summary(small, tmp_path):
    from kaggle_digits.jobs.cv_pairs import training_wall_seconds

    result = cv_cli(
        small,
        tmp_path,
        *("--preset", "quick", "--folds", "2", "--members", "mlp", "--epochs", "2"),
        *("--no-deskew", "--precision", "float32", "--workers", "1"),  # no trial, no spawn
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "config preset=quick, folds=2, members=('mlp',), epochs=2" in out
    assert "deskew=False" in out  # the quick preset's own is True
    assert "fold 2/2 member 1/1 mlp epoch 2/2" in out and "ETA" in out
    assert "CV accuracy (out-of-fold)" in out
    assert "engine in-process (auto): training the pairs one after another" in out
    assert "optimistic" not in out
    [run_dir] = (tmp_path / "runs").glob("*-quick")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    pairs = metrics["pairs"]
    assert all(pair["finished_at"] > 0 for pair in pairs)
    pair_seconds = sum(pair["seconds"] for pair in pairs)
    assert metrics["pair_minutes"] == round(pair_seconds / 60, 1)
    assert metrics["wall_minutes"] == round(training_wall_seconds(pairs) / 60, 1)
    summary = f"training {metrics['wall_minutes']} min wall time ({metrics['pair_minutes']} pair"
    assert summary in out


def test_cli_early_stopping_is_flagged_optimistic(small, tmp_path):
    result = cv_cli(
        small,
        tmp_path,
        *("--preset", "quick", "--folds", "2", "--members", "mlp", "--epochs", "2"),
        *("--early-stopping", "1", "--precision", "float32", "--workers", "1"),
    )
    assert result.exit_code == 0, result.output
    assert "CV score is optimistic" in result.stdout


def test_cli_rejects_bad_options(small, tmp_path):
    assert_user_error(cv_cli(small, tmp_path, "--members", "mlp,nope"), "unknown architecture nope")
    assert_user_error(cv_cli(small, tmp_path, "--preset", "huge"), "unknown preset 'huge'")
    assert_user_error(cv_cli(small, tmp_path, "--folds", "1"), "--folds must be at least 2")
    for option in ("--epochs", "--select-hard", "--budget", "--ema", "--label-smoothing"):
        assert_user_error(cv_cli(small, tmp_path, option, "inf"), f"{option} must be a finite")
    # a spec without priors takes shifted views: 12 of them, where there are 6 turns
    assert_user_error(cv_cli(small, tmp_path, "--tta", "13"), "--tta must be between 0 and 12")
    assert_user_error(
        cv_cli(small, tmp_path, "--tta-views", "rotations", "--tta", "7"),
        "--tta must be between 0 and 6",
    )
    assert_user_error(
        cv_cli(small, tmp_path, "--tta-views", "turns"), "--tta-views: 'turns' is not kinds"
    )
    assert_user_error(cv_cli(small, tmp_path, "--select-hard", "-1"), "--select-hard must be 0")
    assert_user_error(cv_cli(small, tmp_path, "--zoom", "2"), "--zoom must be from 0 to 0.9")
    assert_user_error(cv_cli(small, tmp_path, "--rotation", "-5"), "--rotation must be from 0")
    assert_user_error(
        cv_cli(small, tmp_path, "--precision", "float16"),
        "--precision must be auto or one of float32, mixed_bfloat16",
    )
    assert_user_error(
        cv_cli(small, tmp_path, "--label-smoothing", "2"), "--label-smoothing must be at least 0"
    )
    assert_user_error(cv_cli(small, tmp_path, "--seed", "-1"), "--seed must be between 0 and")
    assert_user_error(cv_cli(small, tmp_path, "--early-stopping", "-2"), "--early-stopping")
    assert_user_error(cv_cli(small, tmp_path, "--resume", "nowhere"), "nowhere: no such run")
    assert_user_error(cv_cli(small, tmp_path, "--resume", "x", "--epochs", "3"), "drop --epochs")


def test_presets_are_valid():
    for name in ("quick", "default", "gpu"):
        assert preset_config(name).preset == name


def test_wall_time_counts_pairs_side_by_side_once_and_a_pause_not_at_all():
    from kaggle_digits.jobs.cv_pairs import training_wall_seconds

    side_by_side = [
        {"seconds": 10.0, "finished_at": 110.0},  # 100-110
        {"seconds": 10.0, "finished_at": 112.0},  # 102-112, beside the first
    ]
    after_a_pause = [{"seconds": 5.0, "finished_at": 500.0}]  # resumed: 495-500
    saved_before_the_field = [{"seconds": 3.0}]
    assert training_wall_seconds(side_by_side) == 12.0
    assert training_wall_seconds(side_by_side + after_a_pause) == 17.0
    assert training_wall_seconds(side_by_side + after_a_pause + saved_before_the_field) == 20.0


def test_options_the_data_or_the_machine_cannot_take_are_refused_before_training(small, tmp_path):
    """No more folds than the rarest class has rows, no more than 4 local workers a core;
    each refused before anything is written."""
    from kaggle_digits.machine.backend import cpu_count

    rarest = np.bincount(small_dataset(small).train_labels).min()
    assert_user_error(
        cv_cli(small, tmp_path, "--folds", "50000"), f"--folds 50000: at most {rarest}", "rarest"
    )
    too_many = 4 * cpu_count() + 1
    assert_user_error(
        cv_cli(small, tmp_path, "--workers", str(too_many)), f"--workers {too_many}: at most"
    )
    assert not list((tmp_path / "runs").glob("*"))  # nothing written


def test_a_run_takes_the_specs_priors_and_records_where_each_value_came_from(small, tmp_path):
    with small.spec_path.open("a") as spec:
        spec.write('\n[augment]\ndeskew = true\nflip_horizontal = true\nviews = "flips"\n')
    result = cv_cli(
        small, tmp_path, "--members", "mlp", "--folds", "2", "--epochs", "1", "--no-deskew",
        "--precision", "float32", "--workers", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((find_run(tmp_path / "runs") / "config.json").read_text())
    assert (saved["flip_horizontal"], saved["tta_views"], saved["tta"]) == (True, "flips", 1)
    assert saved["deskew"] is False  # the option, over the spec's deskew = true
    sources = saved["chosen_by"]
    assert (sources["flip_horizontal"], sources["tta_views"]) == ("spec", "spec")
    assert (sources["deskew"], sources["epochs"], sources["members"]) == ("option",) * 3
    assert (sources["zoom"], sources["select_hard"]) == ("spec default", "preset")
    sources_line = next(line for line in result.output.splitlines() if line.startswith("from "))
    assert "spec: " in sources_line and "option: " in sources_line


def test_flipped_views_refused_for_digits_in_one_line(small, tmp_path):
    result = cv_cli(small, tmp_path, "--tta-views", "flips+shifts", "--epochs", "1")
    assert_user_error(result, "--tta-views", "the training flips none", "--flip-horizontal")
