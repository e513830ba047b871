import csv

import pandas as pd
import pytest
from helpers import assert_user_error, run_cli

from kaggle_digits.jobs.ledger import LEDGER_COLUMNS


@pytest.fixture
def paths(trained, tmp_path):
    return {"submissions": tmp_path / "submissions"}


def submit(trained, paths, *args):
    return run_cli(
        "--competition", trained.spec_path, "--data-dir", trained.data_dir,
        "submit", "--runs-dir", trained.runs_dir, "--submissions-dir", paths["submissions"],
        "--poll-every", "0.05", "--wait", "10", *args,
    )  # fmt: skip


def ledger_rows(paths):
    with open(paths["submissions"] / "ledger.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_happy_path_uploads_and_prints_the_public_score(kaggle_server, trained, paths):
    result = submit(trained, paths, "--message", "first try")
    assert result.exit_code == 0, result.output
    written = paths["submissions"] / f"{trained.run_dir.name}.csv"
    frame = pd.read_csv(written)
    assert list(frame.columns) == ["ImageId", "Label"]
    assert frame["ImageId"].tolist() == list(range(1, 51))
    [uploaded] = kaggle_server.submissions
    assert uploaded.content == written.read_bytes()
    assert trained.run_dir.name in uploaded.description and "first try" in uploaded.description
    assert f"CV {trained.oof_accuracy:.5f}" in uploaded.description
    expected = (frame["Label"].to_numpy() == kaggle_server.hidden_labels).mean()
    assert f"public score {expected:.5f}" in result.stdout
    assert f"CV {trained.oof_accuracy:.5f}" in result.stdout
    rows = ledger_rows(paths)
    assert [row["status"] for row in rows] == ["uploading", "submitted", "complete"]
    assert rows[-1]["public_score"] == f"{expected:.5f}"
    assert rows[-1]["kaggle_ref"] == str(uploaded.ref)
    assert list(rows[0]) == LEDGER_COLUMNS


def test_dry_run_uploads_nothing(kaggle_server, trained, paths):
    result = submit(trained, paths, "--dry-run")
    assert result.exit_code == 0, result.output
    assert (paths["submissions"] / f"{trained.run_dir.name}.csv").is_file()
    assert "valid" in result.stdout
    assert kaggle_server.calls == []
    assert not (paths["submissions"] / "ledger.csv").exists()


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (lambda f: f.drop(index=[10]), ["49 rows", "expected 50"]),
        (lambda f: f.assign(Label=f["Label"].where(f.index != 4, 12)), ["row 5", "'Label'", "12"]),
        (
            lambda f: f.assign(ImageId=f["ImageId"].where(f.index != 7, 1)),
            ["row 8", "'ImageId'", "twice"],
        ),
        (lambda f: f.assign(ImageId=f["ImageId"] + 100), ["row 1", "'ImageId'", "101"]),
        (lambda f: f.rename(columns={"Label": "label"}), ["column 2", "'label'", "'Label'"]),
    ],
)
def test_invalid_file_is_refused_before_upload(
    kaggle_server, trained, paths, tmp_path, edit, fragments
):
    good = pd.DataFrame({"ImageId": range(1, 51), "Label": 3})
    bad = tmp_path / "bad.csv"
    edit(good).to_csv(bad, index=False)
    assert_user_error(submit(trained, paths, "--file", bad), "bad.csv", *fragments)
    assert kaggle_server.calls == []


def test_any_valid_file_can_be_submitted(kaggle_server, trained, paths, tmp_path):
    mine = tmp_path / "mine.csv"
    pd.DataFrame({"ImageId": range(1, 51), "Label": 3}).to_csv(mine, index=False)
    result = submit(trained, paths, "--file", mine)
    assert result.exit_code == 0, result.output
    expected = (pd.Series(kaggle_server.hidden_labels) == 3).mean()
    assert f"public score {expected:.5f}" in result.stdout
    assert kaggle_server.submissions[0].description == "mine.csv"


def test_failed_upload_leaves_a_failed_row_and_a_retry_succeeds(kaggle_server, trained, paths):
    kaggle_server.fail_next_upload = 1
    assert_user_error(submit(trained, paths), "submission failed", "upload")
    assert (paths["submissions"] / f"{trained.run_dir.name}.csv").is_file()
    first = ledger_rows(paths)
    assert [row["status"] for row in first] == ["uploading", "failed"]
    assert "upload" in first[1]["reason"]

    result = submit(trained, paths)
    assert result.exit_code == 0, result.output
    rows = ledger_rows(paths)
    assert rows[: len(first)] == first  # appended to, never rewritten
    statuses = ["uploading", "failed", "uploading", "submitted", "complete"]
    assert [row["status"] for row in rows] == statuses


def test_a_submitted_file_is_not_sent_twice_without_force(kaggle_server, trained, paths):
    assert submit(trained, paths).exit_code == 0
    assert_user_error(submit(trained, paths), "already submitted", "--force")
    assert len(kaggle_server.submissions) == 1
    assert submit(trained, paths, "--force").exit_code == 0
    assert len(kaggle_server.submissions) == 2


def test_daily_limit(kaggle_server, trained, paths):
    kaggle_server.submissions_left = 0
    assert_user_error(submit(trained, paths), "daily submission limit", "Submission not allowed")
    assert ledger_rows(paths)[-1]["status"] == "failed"


def test_wrong_credentials(kaggle_server, trained, paths, monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", "nope-nope")
    result = submit(trained, paths)
    assert_user_error(result, "401")
    assert "nope-nope" not in result.output


def test_missing_credentials(kaggle_server, trained, paths, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    assert_user_error(submit(trained, paths), "KAGGLE_API_TOKEN", "kaggle.json")


def test_rules_not_accepted(kaggle_server, trained, paths):
    kaggle_server.rules_accepted = False
    assert_user_error(
        submit(trained, paths), "403", "rules", "/competitions/digit-recognizer/rules"
    )


def test_unknown_competition(kaggle_server, trained, paths):
    kaggle_server.slug = "other"
    assert_user_error(submit(trained, paths), "404", "not found")


def test_network_down(kaggle_server, trained, paths):
    kaggle_server.stop()
    assert_user_error(submit(trained, paths), "cannot reach Kaggle")
    assert ledger_rows(paths)[-1]["status"] == "failed"


def test_errored_submission_shows_kaggle_error_text(kaggle_server, trained, paths):
    kaggle_server.hidden_labels = [0]  # the server now finds every file malformed
    assert_user_error(submit(trained, paths), "errored", "invalid format")
    assert ledger_rows(paths)[-1]["status"] == "error"


def test_not_scored_in_time_is_pending_not_an_error(kaggle_server, trained, paths):
    kaggle_server.polls_before_scored = 10_000
    result = submit(trained, paths, "--wait", "0.2")
    assert result.exit_code == 0, result.output
    assert "not scored within" in result.stdout
    assert ledger_rows(paths)[-1]["status"] == "submitted"


def test_submissions_shows_ledger_with_remote_scores(kaggle_server, trained, paths):
    kaggle_server.polls_before_scored = 10_000
    assert submit(trained, paths, "--wait", "0").exit_code == 0
    kaggle_server.polls_before_scored = 0
    result = run_cli(
        "--competition", trained.spec_path, "submissions", "--submissions-dir", paths["submissions"]
    )
    assert result.exit_code == 0, result.output
    assert "complete" in result.stdout
    assert trained.run_dir.name[:28] in result.stdout
    assert f"{trained.oof_accuracy:.5f}" in result.stdout
    assert [row["status"] for row in ledger_rows(paths)] == ["uploading", "submitted", "complete"]


def test_submissions_flags_a_large_cv_lb_gap(kaggle_server, trained, paths, tmp_path):
    from kaggle_digits.jobs.ledger import Ledger
    from kaggle_digits.jobs.submit import ledger_table

    ledger = Ledger(tmp_path / "ledger.csv")
    ledger.append({"file": "a.csv", "run_id": "r", "cv_score": "0.99500", "kaggle_ref": 1,
                   "status": "complete", "public_score": "0.98000"})  # fmt: skip
    assert "!" in ledger_table(ledger.submissions())
    assert "-0.01500" in ledger_table(ledger.submissions())


def test_submit_without_a_complete_run(kaggle_server, trained, paths, tmp_path):
    result = run_cli(
        "--competition", trained.spec_path, "--data-dir", trained.data_dir,
        "submit", "--runs-dir", tmp_path / "empty", "--submissions-dir", paths["submissions"],
    )  # fmt: skip
    assert_user_error(result, "no complete run")
