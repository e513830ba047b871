"""The small end-to-end path under whichever Keras backend KERAS_BACKEND names, run by
test_backends.py in a process of its own (a process keeps the first backend it imports):
download from the stand-in server, `cv` (two pairs at once in the automatic worker
processes, after a trial where `--precision auto` or `--budget` is asked; hard rows, EMA,
test-time views), `--resume`, a second run, `blend`,
`submit --dry-run`, `runs`, `info`, `predict` on a photo and on a CSV.

    KERAS_BACKEND=jax python tests/backend_run.py WORK_DIR [--precision auto] [--budget MINUTES]

Exits non-zero, naming the step, at the first command that fails; prints a JSON summary.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from kaggle_stub import StubKaggle  # noqa: E402
from synthetic import SLUG, competition_zip, make_digits, write_spec  # noqa: E402

TRAIN_ROWS, TEST_ROWS = 200, 50


def point_client_at(stub: StubKaggle, home: Path) -> None:
    """The real `kaggle` client, talking to the stand-in server with its credentials."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        HOME=str(home),
        KAGGLE_API_ENVIRONMENT="LOCALHOST",
        KAGGLE_USERNAME=stub.username,
        KAGGLE_KEY=stub.key,
    )
    os.environ.pop("KAGGLE_API_TOKEN", None)
    from kaggle.api.kaggle_api_extended import KaggleApi
    from kagglesdk import kaggle_env

    kaggle_env._env_to_endpoint[kaggle_env.KaggleEnv.LOCAL] = stub.url
    KaggleApi.args = ["--local"]
    KaggleApi.config_dir = str(home / ".kaggle")
    KaggleApi.config = str(home / ".kaggle" / "kaggle.json")


def run_folders(runs_dir: Path) -> list[Path]:
    return sorted(path for path in runs_dir.iterdir() if path.is_dir() and not path.is_symlink())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work", type=Path)
    parser.add_argument("--budget", type=float, default=0.0, help="minutes; 0: 2 epochs")
    parser.add_argument("--precision", default="float32", help="auto: settled by a trial")
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    zip_bytes, test_labels = competition_zip(TRAIN_ROWS, TEST_ROWS)
    stub = StubKaggle(slug=SLUG, zip_bytes=zip_bytes, hidden_labels=list(test_labels)).start()
    point_client_at(stub, work / "home")

    from typer.testing import CliRunner

    from kaggle_digits.cli.main import app

    spec = write_spec(work, TRAIN_ROWS, TEST_ROWS)
    common = ["--competition", str(spec), "--data-dir", str(work / "data")]
    runs_dir = work / "runs"

    def cli(step: str, *arguments: object) -> str:
        result = CliRunner().invoke(app, [*common, *map(str, arguments)])
        if result.exit_code != 0:
            print(f"{step} failed ({result.exit_code}):\n{result.output}", file=sys.stderr)
            if result.exception and not isinstance(result.exception, SystemExit):
                raise result.exception
            sys.exit(1)
        return result.stdout

    cli("download", "download")
    cli("info", "info", "--output", work / "samples.png")
    trained = ["--folds", 2, "--select-hard", 1, "--ema", 0.9, "--runs-dir", runs_dir]
    if args.budget:
        cli("cv --budget", "cv", "--preset", "quick", "--budget", args.budget, *trained)
    else:
        extra = ["--epochs", 2, "--precision", args.precision]
        cli("cv", "cv", "--preset", "quick", *extra, *trained)
    (first,) = run_folders(runs_dir)
    # the run as a crash would leave it: its last pair and the summary not yet written
    (first / "metrics.json").unlink()
    shutil.rmtree(first / "fold1")
    cli("cv --resume", "cv", "--resume", first.name, "--workers", 1, "--runs-dir", runs_dir)
    cli(
        "cv (lc-cnn)",
        "cv",
        *("--preset", "quick", "--members", "lc-cnn", "--epochs", 1, "--folds", 2),
        *("--no-augment", "--workers", 1, "--precision", "float32", "--runs-dir", runs_dir),
    )
    second = next(path for path in run_folders(runs_dir) if path != first)
    cli("blend", "blend", first.name, second.name, "--method", "mean", "--runs-dir", runs_dir)
    blended = next(path for path in runs_dir.iterdir() if path.name.endswith("-blend"))
    submissions = work / "submissions"
    cli(
        "submit --dry-run",
        *("submit", blended.name, "--dry-run"),
        *("--runs-dir", runs_dir, "--submissions-dir", submissions),
    )
    listed = cli("runs", "runs", "--runs-dir", runs_dir, "--submissions-dir", submissions)

    from photos import photo
    from PIL import Image

    digits, labels = make_digits(4, seed=7)
    photo_path = work / "photo.jpg"
    photo(digits[0], "ruled", seed=1).save(photo_path)
    predicted_photo = cli("predict", "predict", photo_path, "--run", first.name,
                          "--runs-dir", runs_dir)  # fmt: skip
    assert Image.open(photo_path).size[0] > 28
    csv_lines = cli(
        "predict --csv",
        *("predict", "--csv", work / "data" / SLUG / "test.csv", "--run", first.name),
        *("--runs-dir", runs_dir),
    ).splitlines()

    import keras

    print(
        json.dumps(
            {
                "backend": keras.backend.backend(),
                "runs": [first.name, second.name, blended.name],
                "run_config": json.loads((first / "config.json").read_text()),
                "metrics": json.loads((first / "metrics.json").read_text()),
                "submission": sorted(p.name for p in (submissions).iterdir()),
                "runs_listed": listed,
                "photo_label": int(labels[0]),
                "photo_line": predicted_photo.strip(),
                "csv_lines": len(csv_lines),
            }
        )
    )
    stub.stop()


if __name__ == "__main__":
    main()
