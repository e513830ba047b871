"""The Kaggle clients users have: the toolkit under the oldest client pyproject.toml
declares, and under older ones forced in (each installed apart by `make kaggle-clients`, run
by tests/kaggle_cli.py ahead of the installed one), against the stand-in Kaggle as it
answers in 2026 (whole-second durations, a newer X-Kaggle-APIVersion, 403 for a kernel it
does not know)."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import assert_user_error
from kernel_helpers import SHORT, cli, finish_later, only_run, pushes

from kaggle_digits.kaggle_api.client import UPGRADE_COMMAND

CLIENTS = Path(__file__).parents[1] / ".venv" / "kaggle-clients"
OLDEST_DECLARED = "kaggle-2.2.5-kagglesdk-0.1.38"
REPORTED = "kaggle-2.2.2-kagglesdk-0.1.30"  # users' reports, September 2026
OLDER = "kaggle-1.8.4-kagglesdk-0.1.15"


@dataclass
class Result:
    """A finished command, shaped as click's Result for assert_user_error."""

    exit_code: int
    stdout: str
    stderr: str
    exception: object = None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def client_cli(client: str, kaggle, *args) -> Result:
    """`kaggle-digits ARGS` (as kernel_helpers.cli) in a process of its own, under `client`."""
    folder = Path(os.environ.get("KAGGLE_DIGITS_CLIENTS", CLIENTS)) / client
    if not folder.is_dir():
        pytest.skip(f"{folder} missing: `make kaggle-clients` installs it")
    where = ("--runs-dir", kaggle.runs_dir) if args[0] in ("cv", "runs", "submit") else ()
    command = [sys.executable, str(Path(__file__).parent / "kaggle_cli.py"), kaggle.url]
    command += ["--competition", str(kaggle.spec_path), "--data-dir", str(kaggle.data_dir)]
    command += [*map(str, args), *map(str, where)]
    environment = os.environ | {"KAGGLE_DIGITS_TEST_CLIENT": str(folder)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    return Result(done.returncode, done.stdout, done.stderr)


def test_a_client_that_cannot_read_whole_seconds_is_one_line_with_the_upgrade(kaggle):
    # kagglesdk 0.1.30 fails on "0s", which the stand-in sends as Kaggle does
    result = client_cli(REPORTED, kaggle, "cv", "--on", "kaggle", *SHORT)
    assert_user_error(
        result,
        "reading your GPU quota failed: the installed Kaggle client (kaggle 2.2.2, kagglesdk "
        "0.1.30) could not read Kaggle's answer",
        UPGRADE_COMMAND,
    )
    assert "Traceback" not in result.output
    assert pushes(kaggle) == [] and not kaggle.runs_dir.exists()


def test_a_client_lacking_a_call_is_one_line_with_the_upgrade(kaggle):
    result = client_cli(OLDER, kaggle, "cv", "--on", "kaggle", *SHORT)
    assert_user_error(
        result, "the installed Kaggle client (kaggle 1.8.4, kagglesdk 0.1.15)", UPGRADE_COMMAND
    )
    assert "Traceback" not in result.output and pushes(kaggle) == []


def test_an_older_client_submits_and_tells_what_it_scored(kaggle, trained, tmp_path):
    # kaggle 2.2.2 has no COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE (2.2.5's)
    kaggle.runs_dir, kaggle.spec_path = trained.runs_dir, trained.spec_path
    kaggle.data_dir = trained.data_dir
    args = ("--submissions-dir", tmp_path / "subs", "--poll-every", "0.05", "--wait", "10")
    result = client_cli(REPORTED, kaggle, "submit", *args)
    assert result.exit_code == 0, result.output
    assert "public score" in result.stdout and len(kaggle.submissions) == 1


def test_the_oldest_declared_client_pushes_waits_and_resumes(kaggle):
    kaggle.kernels.polls_before_ready = 0
    finish_later(kaggle, "RUNNING", "ERROR")
    failed = client_cli(OLDEST_DECLARED, kaggle, "cv", "--on", "kaggle", *SHORT)
    assert_user_error(failed, "v1 failed", "cv --resume")
    run_dir = only_run(kaggle)
    (run_dir / "fold0" / "member0-strided-cnn").mkdir(parents=True)  # a pair made at home,
    (run_dir / "fold0" / "member0-strided-cnn" / "result.json").write_text("{}")  # to carry
    finish_later(kaggle, "COMPLETE", version=2)
    resumed = client_cli(OLDEST_DECLARED, kaggle, "cv", "--resume", run_dir.name)
    assert_user_error(resumed, "holds no complete run")  # nothing ran: no image here
    assert "uploaded the finished pairs as the private dataset" in resumed.stdout
    first, second = pushes(kaggle)
    assert "dockerImagePinningType" not in first
    assert second["dockerImagePinningType"] == "original"  # the first version's image
    assert second["datasetDataSources"] and "GetDataset" in kaggle.calls


def test_the_clients_outdated_warning_is_said_once_a_command(kaggle):
    kaggle.api_version = "99.0.0"  # the server announces a newer client
    finish_later(kaggle, "QUEUED", "RUNNING", "RUNNING", "COMPLETE", seconds=0.2)
    result = cli(kaggle, "cv", "--on", "kaggle", *SHORT)
    assert_user_error(result, "holds no complete run")
    assert result.stdout.count("Looks like you're using an outdated `kaggle` version") == 1
    assert len([call for call in kaggle.calls if "GetKernelSessionStatus" in call]) > 3
