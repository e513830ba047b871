"""`kaggle-digits leaderboard`: where a score ranks on the competition's public leaderboard.

The top teams, your own best public score and its rank, and for each complete local run not
yet submitted the rank its OOF accuracy would take: an estimate, since the public score of a
run lands within about ±0.001 of its OOF
(see docs/benchmarks.md#does-the-cv-score-predict-the-leaderboard).
"""

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from kaggle_digits.data.competition import Competition
from kaggle_digits.jobs.ledger import ledger_of
from kaggle_digits.kaggle_api import client as kaggle_api
from kaggle_digits.kaggle_api.client import LeaderboardRow
from kaggle_digits.store.run_files import read_metrics
from kaggle_digits.store.run_folder import is_whole, run_folders


@dataclass(frozen=True)
class Board:
    """The leaderboard's rows read, best first; `whole`: every row, or only the top ones
    down past the lowest score that was to be ranked. `own_team`: the user's, whose row
    ranks are counted without."""

    rows: list[LeaderboardRow]
    whole: bool
    own_team: str | None = None

    @cached_property  # asked for every row that rank_of compares
    def higher_is_better(self) -> bool:
        scores = [row.score for row in self.rows if not math.isnan(row.score)]
        return len(scores) < 2 or scores[0] >= scores[-1]

    def better(self, score: float, than: float) -> bool:
        return score > than if self.higher_is_better else score < than

    def rank_of(self, score: float) -> int:
        """The rank `score` would take as a new submission: behind every other team that
        scores better or the same (the earlier submission wins a tie)."""
        others = [row for row in self.rows if row.team_name != self.own_team]
        return 1 + sum(1 for row in others if not self.better(score, row.score))

    def own_rank(self) -> int | None:
        """The own team's place on the board, where its row was read."""
        for place, row in enumerate(self.rows, start=1):
            if row.team_name == self.own_team:
                return place
        return None

    def describe(self, rank: int) -> str:
        of = f"of {len(self.rows):,}" if self.whole else f"of more than {len(self.rows):,}"
        return f"rank {rank:,} {of}"


@dataclass(frozen=True)
class Standing:
    name: str  # a team, or a run
    score: float
    rank: str  # "rank 153 of 1,234"
    note: str = ""


@dataclass(frozen=True)
class LeaderboardReport:
    competition: str
    board: Board
    top: int
    you: Standing | None
    estimates: list[Standing]


def read_board(slug: str, to_rank: list[float], top: int, own_team: str | None = None) -> Board:
    """The top `top` rows, and enough more to rank every score of `to_rank`."""

    def enough(rows: list[LeaderboardRow]) -> bool:
        if len(rows) < top:
            return False
        if not to_rank:
            return True
        board = Board(rows, whole=False)
        worst = min(to_rank) if board.higher_is_better else max(to_rank)
        return board.better(worst, rows[-1].score)

    rows, whole = kaggle_api.public_leaderboard(slug, enough)
    return Board(rows, whole, own_team)


def leaderboard_report(
    competition: Competition, runs_dir: Path, submissions_dir: Path, top: int = 10
) -> LeaderboardReport:
    """The top teams, your standing, and estimated ranks for runs not yet submitted."""
    mine = [
        sub
        for sub in kaggle_api.list_submissions(competition.slug, "reading the leaderboard")
        if sub.status == "COMPLETE" and sub.public_score
    ]
    unsubmitted = unsubmitted_runs(Path(runs_dir), Path(submissions_dir))
    scores = [float(sub.public_score) for sub in mine] + list(unsubmitted.values())
    team = next((sub.team_name for sub in mine if sub.team_name), None)
    board = read_board(competition.slug, scores, top, team)
    you = None
    if mine:
        best = max(float(sub.public_score) for sub in mine)
        if not board.higher_is_better:
            best = min(float(sub.public_score) for sub in mine)
        rank = board.own_rank() or board.rank_of(best)
        note = f"your best of {len(mine)} scored submission(s)"
        you = Standing(team or "you", best, board.describe(rank), note)
    estimates = [
        Standing(run_id, oof, board.describe(board.rank_of(oof)), "estimate")
        for run_id, oof in sorted(unsubmitted.items(), key=lambda item: -item[1])
    ]
    return LeaderboardReport(competition.slug, board, top, you, estimates)


def unsubmitted_runs(runs_dir: Path, submissions_dir: Path) -> dict[str, float]:
    """The OOF accuracy of each complete run in runs_dir that no submission came from."""
    submitted = ledger_of(submissions_dir).submitted_runs()
    oof_of_run = {
        folder.name: read_metrics(folder).get("oof_accuracy")
        for folder in run_folders(runs_dir)
        if folder.name not in submitted and is_whole(folder)
    }
    return {run_id: oof for run_id, oof in oof_of_run.items() if oof is not None}


def leaderboard_table(report: LeaderboardReport) -> str:
    board = report.board
    teams = f"{len(board.rows):,} teams" if board.whole else f"the top {len(board.rows):,} teams"
    lines = [f"{report.competition}: public leaderboard, {teams} read", ""]
    lines.append(f"{'rank':>6}  {'team':32} {'score':>8}  last submission")
    for rank, row in enumerate(board.rows[: report.top], start=1):
        lines.append(f"{rank:>6}  {row.team_name[:32]:32} {row.score:>8.5f}  {row.date}")
    lines.append("")
    if report.you is None:
        lines.append("you: no scored submission yet; `kaggle-digits submit` makes one")
    else:
        you = report.you
        lines.append(f"you: {you.name}, {you.score:.5f}, {you.rank} ({you.note})")
    if report.estimates:
        lines.append("")
        lines.append("runs not yet submitted, ranked by their OOF accuracy (an estimate):")
        for run in report.estimates:
            lines.append(f"  {run.name:32} {run.score:.5f}  ~{run.rank}")
    return "\n".join(lines)
