"""`kaggle-digits submit` and `submissions`: write a run's test predictions as an
id,label file (the spec's column names), validate it, upload it through the Kaggle API,
wait for its score, and keep an append-only ledger of every attempt."""

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_digits.base import faults
from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import atomic_path
from kaggle_digits.data.competition import Competition
from kaggle_digits.data.dataset import integer_values, read_csv_checked, read_sample_submission
from kaggle_digits.jobs.leaderboard import Board, read_board
from kaggle_digits.jobs.ledger import UPLOADING, Ledger, ledger_of, uploading_reason
from kaggle_digits.kaggle_api import client as kaggle_api
from kaggle_digits.reports.tracking import Tracker
from kaggle_digits.store.run_files import read_metrics, read_test_probs
from kaggle_digits.store.run_folder import find_run

GAP_WARNING = 0.002  # a CV-leaderboard gap larger than this is flagged

Log = Callable[[str], None]


@dataclass(frozen=True)
class SubmitResult:
    file: Path
    ref: int | None
    status: str  # dry-run, pending or complete (an errored submission raises UserError)
    public_score: float | None
    cv_score: float | None


def write_submission(run_dir: Path, competition: Competition, submissions_dir: Path) -> Path:
    """submissions/<run-id>.csv: ids from id_start in test.csv order, the argmax label."""
    test_probs = read_test_probs(run_dir)
    labels = np.asarray(competition.classes)[test_probs.argmax(axis=1)]
    frame = pd.DataFrame(
        {
            competition.id_column: np.arange(
                competition.id_start, competition.id_start + len(labels)
            ),
            competition.submission_label_column: labels,
        }
    )
    path = Path(submissions_dir) / f"{run_dir.name}.csv"
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def validate_submission(path: Path, competition: Competition, data_root: Path) -> None:
    """The checks Kaggle would make, done before anything leaves the machine: the header,
    the sample submission's ids, one row each, and labels within the classes."""
    if not Path(path).is_file():
        raise UserError(f"{path}: no such submission file")
    sample_path = Path(data_root) / competition.slug / competition.sample_submission_file
    if not sample_path.is_file():
        raise UserError(f"{sample_path}: not found; run `kaggle-digits download` first")
    sample_ids = read_sample_submission(
        sample_path, competition, expected_rows=competition.test_rows
    )
    frame = read_csv_checked(Path(path), competition.submission_columns)
    if len(frame) != len(sample_ids):
        raise UserError(
            f"{path}: has {len(frame)} rows, expected {len(sample_ids)} as in {sample_path.name}"
        )
    values = integer_values(frame, Path(path))
    ids, labels = values[:, 0], values[:, 1]
    wrong_id = ~np.isin(ids, sample_ids)
    duplicate = pd.Series(ids).duplicated().to_numpy()
    wrong_label = ~np.isin(labels, competition.classes)
    for bad, column, what in (
        (wrong_id, competition.id_column, f"is not an id of {sample_path.name}"),
        (duplicate, competition.id_column, "appears twice"),
        (
            wrong_label,
            competition.submission_label_column,
            f"is not one of {list(competition.classes)}",
        ),
    ):
        if bad.any():
            row = int(np.argmax(bad))
            value = values[row, 0 if column == competition.id_column else 1]
            raise UserError(f"{path}: row {row + 1}, column '{column}': {value} {what}")


def submit(
    competition: Competition,
    data_root: Path,
    runs_dir: Path,
    submissions_dir: Path,
    run: str | None = None,
    file: Path | None = None,
    message: str = "",
    dry_run: bool = False,
    force: bool = False,
    wait_seconds: float = 300,
    poll_seconds: float = 10,
    log: Log = print,
    track: bool = False,
) -> SubmitResult:
    """Write (or take) a submission file, validate it, upload it, wait for its public score.
    `track`: add the public score to the MLflow run the run was tracked in (tracking.py)."""
    tracker = Tracker(track, log)
    submissions_dir = Path(submissions_dir)
    run_dir = None
    if file is not None:
        path, run_id, cv_score = Path(file), "", None
    else:
        run_dir = find_run(runs_dir, run, competition)
        run_id = run_dir.name
        cv_score = read_metrics(run_dir)["oof_accuracy"]
        path = write_submission(run_dir, competition, submissions_dir)
        log(f"wrote {path} from run {run_id} (CV {cv_score:.5f})")
    validate_submission(path, competition, data_root)
    log(f"{path} is a valid submission")
    if dry_run:
        return SubmitResult(path, None, "dry-run", None, cv_score)

    ledger = ledger_of(submissions_dir)
    digest = sha256(path)
    full_message = " ".join(
        part for part in (run_id or path.name, cv_note(cv_score), message) if part
    )
    row = {"file": str(path), "sha256": digest, "run_id": run_id, "message": full_message,
           "cv_score": "" if cv_score is None else f"{cv_score:.5f}"}  # fmt: skip
    with ledger.locked():  # no other submit between the check and the upload's first row
        recover_interrupted(ledger, competition.slug, log)
        previous = ledger.latest_for(digest)
        if previous is not None and previous["status"] == UPLOADING:
            raise UserError(
                f"{path.name} is being uploaded by another kaggle-digits ({previous['reason']})"
            )
        if previous is not None and previous["status"] != "failed" and not force:
            raise UserError(
                f"{path.name} was already submitted (Kaggle ref {previous['kaggle_ref']}, "
                f"{previous['status']}); use --force to submit it again"
            )
        ledger.append({**row, "status": UPLOADING, "reason": uploading_reason()})
    try:
        ref = kaggle_api.submit_file(competition.slug, path, full_message)
    except UserError as error:
        ledger.append({**row, "status": "failed", "reason": str(error)})
        raise
    faults.reached("upload")
    ledger.append({**row, "kaggle_ref": ref, "status": "submitted"})
    log(f"uploaded {path.name} as Kaggle submission {ref}: {full_message}")
    remote = wait_for_score(competition.slug, ref, wait_seconds, poll_seconds, log)
    if remote is None:
        log(f"not scored within {wait_seconds:.0f} s; `kaggle-digits submissions` shows it later")
        return SubmitResult(path, ref, "pending", None, cv_score)
    record_remote(ledger, row, remote)
    if remote.status == "ERROR":
        raise UserError(
            f"Kaggle marked submission {ref} as errored: {remote.error or 'no reason given'}"
        )
    public = float(remote.public_score) if remote.public_score else None
    log(score_line(public, cv_score))
    if public is not None and run_dir is not None and tracker.attach(run_dir):
        tracker.metrics({"public_score": public})
    return SubmitResult(path, ref, "complete", public, cv_score)


def recover_interrupted(ledger: Ledger, slug: str, log: Log) -> None:
    """Write down the outcome of uploads that a crash cut off from it: the Kaggle submission
    of the same description made since, or a failure where Kaggle has none."""
    interrupted = ledger.interrupted()
    if not interrupted:
        return
    remote = kaggle_api.list_submissions(slug)
    known = {row["kaggle_ref"] for row in ledger.rows() if row["kaggle_ref"]}
    for begun in interrupted:
        event = {key: begun[key] for key in ("file", "sha256", "run_id", "cv_score", "message")}
        found = next(
            (
                sub
                for sub in remote
                if (sub.description or "") == begun["message"] and str(sub.ref) not in known
            ),
            None,
        )
        if found is None:
            ledger.append(
                {**event, "status": "failed", "reason": "interrupted before Kaggle had it"}
            )
            log(f"{Path(begun['file']).name}: an interrupted upload that Kaggle never received")
            continue
        known.add(str(found.ref))
        ledger.append(
            {**event, "kaggle_ref": found.ref, "status": "submitted",
             "reason": "found on Kaggle after an interrupted submit"}
        )  # fmt: skip
        name = Path(begun["file"]).name
        log(f"{name}: an interrupted upload, found on Kaggle as submission {found.ref}")


def cv_note(cv_score: float | None) -> str:
    return "" if cv_score is None else f"CV {cv_score:.5f}"


def score_line(public: float | None, cv_score: float | None) -> str:
    if public is None:
        return "scored, but Kaggle shows no public score"
    if cv_score is None:
        return f"public score {public:.5f}"
    gap = public - cv_score
    flag = "  <- large CV-LB gap" if abs(gap) > GAP_WARNING else ""
    return f"public score {public:.5f}   CV {cv_score:.5f}   gap {gap:+.5f}{flag}"


def wait_for_score(
    slug: str, ref: int, wait_seconds: float, poll_seconds: float, log: Log
) -> kaggle_api.RemoteSubmission | None:
    """Poll the submission list until `ref` is scored or errored; None when time runs out."""
    deadline = time.monotonic() + wait_seconds
    while True:
        remote = next((s for s in kaggle_api.list_submissions(slug) if s.ref == ref), None)
        if remote is not None and remote.status != "PENDING":
            return remote
        if time.monotonic() + poll_seconds > deadline:
            return None
        log(f"waiting for Kaggle to score submission {ref} ...")
        time.sleep(poll_seconds)


def record_remote(ledger: "Ledger", row: dict, remote: kaggle_api.RemoteSubmission) -> None:
    ledger.append(
        {**row, "kaggle_ref": remote.ref, "status": remote.status.lower(),
         "public_score": remote.public_score or "", "reason": remote.error or ""}
    )  # fmt: skip


def sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def show_submissions(
    competition: Competition, submissions_dir: Path, log: Log = print
) -> list[dict]:
    """The ledger with each submission's latest remote status and score, CV beside LB.

    Newly final remote statuses are appended to the ledger; when Kaggle cannot be reached
    the ledger is shown as it stands."""
    ledger = ledger_of(submissions_dir)
    if ledger.interrupted():
        try:
            with ledger.locked():
                recover_interrupted(ledger, competition.slug, log)
        except UserError as error:
            log(f"an interrupted upload stays unknown for now: {error}")
    rows = ledger.submissions()
    if not rows:
        log(f"no submissions yet ({ledger.path} is empty); run `kaggle-digits submit`")
        return []
    board = None
    if any(row["kaggle_ref"] for row in rows):
        try:
            remote = {s.ref: s for s in kaggle_api.list_submissions(competition.slug)}
        except UserError as error:
            log(f"showing the ledger only: {error}")
            remote = None
        for index, row in enumerate(rows):
            update = remote.get(int(row["kaggle_ref"])) if remote and row["kaggle_ref"] else None
            if (
                update is not None
                and update.status.lower() != row["status"]
                and update.status != "PENDING"
            ):
                record_remote(ledger, row, update)
                rows[index] = ledger.rows()[-1]
        scores = [float(row["public_score"]) for row in rows if row["public_score"]]
        if remote is not None and scores:
            team = next((sub.team_name for sub in remote.values() if sub.team_name), None)
            board = leaderboard_for_ranks(competition.slug, scores, team, log)
    log(ledger_table(rows, board))
    return rows


def leaderboard_for_ranks(
    slug: str, scores: list[float], own_team: str | None, log: Log
) -> Board | None:
    """The leaderboard down past the lowest of `scores`, or None (and a line) where Kaggle
    does not answer: the ledger is then shown without ranks."""
    try:
        return read_board(slug, scores, top=0, own_team=own_team)
    except UserError as error:
        log(f"showing no ranks: {error}")
        return None


def ledger_table(rows: list[dict], board: Board | None = None) -> str:
    """One line a submission; with the leaderboard, the rank each public score takes on it."""
    header = (
        f"{'time':20} {'run':28} {'ref':>7} {'status':10} {'CV':>8} {'LB':>8} {'rank':>7} "
        f"{'gap':>8}  message"
    )
    lines = [header]
    for row in rows:
        cv = float(row["cv_score"]) if row["cv_score"] else None
        lb = float(row["public_score"]) if row["public_score"] else None
        gap = f"{lb - cv:+.5f}" if cv is not None and lb is not None else ""
        rank = f"{board.rank_of(lb):,}" if board is not None and lb is not None else ""
        flag = " !" if gap and abs(lb - cv) > GAP_WARNING else ""
        detail = row["reason"] if row["status"] in ("failed", "error") else row["message"]
        lines.append(
            f"{row['time'][:19]:20} {(row['run_id'] or Path(row['file']).name)[:28]:28} "
            f"{row['kaggle_ref']:>7} {row['status']:10} {row['cv_score']:>8} "
            f"{row['public_score']:>8} {rank:>7} {gap:>8}{flag}  {detail}"
        )
    if any(" !" in line for line in lines[1:]):
        lines.append(f"! the leaderboard differs from the CV score by more than {GAP_WARNING}")
    return "\n".join(lines)
