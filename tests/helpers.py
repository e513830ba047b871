import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from kaggle_digits.cli.main import app
from kaggle_digits.options.config import CVConfig

# what TensorFlow's C++ side prints as it starts, before its log level applies
TENSORFLOW_CHATTER = ("absl::InitializeLog", "oneDNN custom operations", "cudart_stub")

# the smallest real run: two folds of two fast baselines, one epoch
TINY = CVConfig(preset="test", folds=2, members=("mlp", "lc-cnn"), epochs=1, batch_size=32)


def run_cli(*args: object):
    """Run `kaggle-digits ARGS` in-process; returns click's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(app, [str(arg) for arg in args])


def run_tiny(small, tmp_path, config=TINY, **kwargs):
    """run_cv on the small generated data, into tmp_path/runs, its log discarded."""
    from kaggle_digits.data.competition import load_competition
    from kaggle_digits.jobs.cv import run_cv

    competition = load_competition(small.spec_path)
    kwargs.setdefault("log", lambda line: None)
    return run_cv(config, competition, small.data_dir, tmp_path / "runs", **kwargs)


def cv_cli(small, tmp_path, *args):
    """`kaggle-digits cv ARGS` on the small generated data, into tmp_path/runs."""
    return run_cli(
        "--competition",
        small.spec_path,
        "--data-dir",
        small.data_dir,
        "cv",
        "--runs-dir",
        tmp_path / "runs",
        *args,
    )


def small_dataset(small):
    """The small generated data, loaded."""
    from kaggle_digits.data.competition import load_competition
    from kaggle_digits.data.dataset import load_dataset

    return load_dataset(load_competition(small.spec_path), small.data_dir)


def training_data(small):
    """The small data as a pair's training sees it, in 2 folds."""
    from kaggle_digits.jobs.cv import fold_assignment
    from kaggle_digits.training.pairs import TrainingData

    dataset = small_dataset(small)
    fold_of_row = fold_assignment(dataset.train_labels, 2, 0)
    return TrainingData(
        dataset.train_images, dataset.train_labels, dataset.test_images, fold_of_row, 10
    )


def fake_run(runs_dir, name, dataset, good_classes, seed=42, folds=2):
    """A complete run folder whose OOF probabilities are right on `good_classes` only."""
    import numpy as np

    from kaggle_digits.base.files import save_array, write_json
    from kaggle_digits.jobs.cv import fold_assignment

    rng = np.random.default_rng(len(name))
    labels = dataset.train_labels
    oof = rng.dirichlet(np.ones(10), size=len(labels)).astype(np.float32)
    good = np.isin(labels, good_classes)
    oof[good] = 0.05 / 9
    oof[good, labels[good]] = 0.95
    test = rng.dirichlet(np.ones(10), size=len(dataset.test_images)).astype(np.float32)
    folder = runs_dir / name
    write_json(
        folder / "config.json",
        {"preset": "quick", "members": ["tiny-cnn"], "folds": folds, "seed": seed, "epochs": 1,
         "data_fingerprint": dataset.fingerprint},
    )  # fmt: skip
    save_array(folder / "folds.npy", fold_assignment(labels, folds, seed))
    save_array(folder / "oof_probs.npy", oof)
    save_array(folder / "test_probs.npy", test)
    accuracy = float((oof.argmax(1) == labels).mean())
    write_json(
        folder / "metrics.json",
        {"oof_accuracy": accuracy, "wall_minutes": 1.0, "pair_minutes": 2.0},
    )
    return folder


def assert_user_error(result, *fragments: str) -> None:
    """A handled error: exit code 2, one line on stderr holding each fragment, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output


def modules_imported(code: str, *modules: str) -> list[bool]:
    """Which of `modules` a fresh Python has imported after running `code`."""
    check = f"{code}\nimport sys\nprint(*[name in sys.modules for name in {modules!r}])"
    answer = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert answer.returncode == 0, answer.stderr
    return [word == "True" for word in answer.stdout.split()]


class BackgroundScripts:
    """Scripts of tests/ started at once, each under a Keras backend of its own, to run while
    the rest of the suite does (CI's two cores are otherwise half idle); a test then waits
    for the one it needs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.jobs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, backend: str, script: str, *arguments: object) -> None:
        environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        with (
            open(self.folder / f"{name}.out", "w") as out,
            open(self.folder / f"{name}.err", "w") as err,
        ):
            self.jobs[name] = subprocess.Popen(
                [sys.executable, str(Path(__file__).parent / script), *map(str, arguments)],
                stdout=out,
                stderr=err,
                env=environment,
            )

    def output(self, name: str, timeout: float = 1200) -> str:
        """The standard output of a script that exited 0 (else the test fails with its errors)."""
        code = self.jobs[name].wait(timeout)
        errors = (self.folder / f"{name}.err").read_text()
        assert code == 0, errors[-4000:]
        return (self.folder / f"{name}.out").read_text()

    def stop(self) -> None:
        for job in self.jobs.values():
            if job.poll() is None:
                job.kill()
                job.wait()
