"""`kaggle-digits leaderboard` and the ranks in `submissions`, through the real `kaggle` client
against the stand-in server's GetLeaderboard (paged, as Kaggle's is)."""

import json
import re
import shutil

import pytest
from helpers import assert_user_error, run_cli

# 450 other teams, best first from 1.00000 down by 0.0005: more than two of the client's pages
OTHER_TEAMS = [(f"team {n:03d}", f"{1 - n * 0.0005:.5f}", "2026-11-30") for n in range(450)]


@pytest.fixture
def folders(trained, tmp_path):
    """A runs folder holding the trained run and a second complete run never submitted."""
    runs_dir = tmp_path / "runs"
    shutil.copytree(trained.run_dir, runs_dir / trained.run_dir.name)
    unsubmitted = runs_dir / "20261203-120000-default"
    shutil.copytree(trained.run_dir, unsubmitted)
    metrics = json.loads((unsubmitted / "metrics.json").read_text())
    (unsubmitted / "metrics.json").write_text(json.dumps(metrics | {"oof_accuracy": 0.99012}))
    return {"runs": runs_dir, "submissions": tmp_path / "submissions"}


def cli(trained, folders, *args):
    return run_cli(
        "--competition", trained.spec_path, "--data-dir", trained.data_dir, *args,
        "--runs-dir", folders["runs"], "--submissions-dir", folders["submissions"],
    )  # fmt: skip


def rank_among_others(score: float) -> int:
    """Behind every other team with the same score or better."""
    return 1 + sum(1 for _, other, _ in OTHER_TEAMS if float(other) >= score)


def test_leaderboard_shows_the_top_your_rank_and_estimates_for_unsubmitted_runs(
    kaggle_server, trained, folders
):
    kaggle_server.leaderboard = list(OTHER_TEAMS)
    kaggle_server.polls_before_scored = 0
    submitted = cli(trained, folders, "submit", trained.run_dir.name, "--poll-every", "0.05")
    assert submitted.exit_code == 0, submitted.output
    public = float(kaggle_server.submissions[0].public_score)

    result = cli(trained, folders, "leaderboard", "--top", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    board = kaggle_server.public_board()  # as Kaggle shows it, the user's team on it
    rows = [re.match(r"\s*(\d+)  (.{32}) +(\S+)  ", line) for line in lines]
    top = [row.groups() for row in rows if row]
    assert top == [
        (str(rank), f"{name:32}", f"{float(score):.5f}")
        for rank, (name, score, _) in enumerate(board[:3], start=1)
    ]
    your_rank = 1 + [name for name, _, _ in board].index("tester's team")
    assert f"you: tester's team, {public:.5f}, rank {your_rank:,} " in result.stdout
    assert "your best of 1 scored submission(s)" in result.stdout
    # the submitted run gets no estimate; the other one is ranked by its OOF accuracy
    [estimate] = [line for line in lines if "20261203-120000-default" in line]
    assert f"0.99012  ~rank {rank_among_others(0.99012):,} " in estimate
    assert trained.run_dir.name not in result.stdout.split("not yet submitted")[1]


def test_submissions_shows_the_rank_of_each_public_score(kaggle_server, trained, folders):
    kaggle_server.leaderboard = list(OTHER_TEAMS)
    kaggle_server.polls_before_scored = 0
    assert cli(trained, folders, "submit", "--poll-every", "0.05").exit_code == 0
    public = float(kaggle_server.submissions[0].public_score)
    result = run_cli(
        "--competition", trained.spec_path, "submissions",
        "--submissions-dir", folders["submissions"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[6] == "rank"
    # time, run, ref, status, CV, LB, rank
    assert row.split()[6] == f"{rank_among_others(public):,}"


def test_without_a_scored_submission_the_leaderboard_says_how_to_get_one(
    kaggle_server, trained, folders
):
    kaggle_server.leaderboard = list(OTHER_TEAMS[:5])
    result = cli(trained, folders, "leaderboard")
    assert result.exit_code == 0, result.output
    assert "5 teams read" in result.stdout
    assert "you: no scored submission yet" in result.stdout


@pytest.mark.parametrize(
    "fault, message",
    [
        ("credentials", "Kaggle rejected the credentials (401)"),
        ("rules", "you have not accepted this competition's rules (403)"),
        ("slug", "not found on Kaggle (404)"),
        ("network", "cannot reach Kaggle"),
    ],
)
def test_kaggle_errors_are_one_line(kaggle_server, trained, folders, monkeypatch, fault, message):
    kaggle_server.leaderboard = list(OTHER_TEAMS)
    if fault == "credentials":
        monkeypatch.setenv("KAGGLE_KEY", "wrong-key-456")
    elif fault == "rules":
        kaggle_server.rules_accepted = False
    elif fault == "slug":
        kaggle_server.slug = "another-competition"
    else:
        kaggle_server.stop()
    result = cli(trained, folders, "leaderboard")
    assert_user_error(result, "reading the leaderboard failed", message)
