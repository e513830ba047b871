"""submissions/<slug>/ledger.csv: every submission event (an upload begun, a failed upload,
an upload, a score), appended and never rewritten; what `submit`, `submissions`, `runs` and
`leaderboard` read of what was sent.

Safe against crashes and company: each event is one line, appended under a lock (two
`submit`s at once both land whole) and flushed to disk; a line cut short by a crash is
neither read nor kept. An upload is written down before it begins ("uploading", with the
process id), so one that a crash cut off from its outcome is found again on Kaggle
(recover_interrupted)."""

import contextlib
import csv
import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from filelock import FileLock

from kaggle_digits.base import faults
from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import process_alive

LEDGER_COLUMNS = [
    "time", "file", "sha256", "run_id", "cv_score", "message",
    "kaggle_ref", "status", "public_score", "reason",
]  # fmt: skip
UPLOADING = "uploading"  # an upload begun; its `reason` holds the pid of the process
# past this, an upload begun is taken for interrupted even where its pid is alive: the pid
# may since have gone to another process (a reboot); a submission file takes seconds
UPLOAD_LIMIT = timedelta(hours=1)


LEDGER = "ledger.csv"  # in a competition's submissions folder


def ledger_of(submissions_dir: Path) -> "Ledger":
    """The ledger of the submissions in `submissions_dir`."""
    return Ledger(Path(submissions_dir) / LEDGER)


class Ledger:
    """submissions/ledger.csv: one row per event, only ever appended to. The latest row of a
    submission says where it stands."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = FileLock(self.path.with_name(self.path.name + ".lock"))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the ledger for a read-then-append that no other process may come between."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:  # re-entrant: append() takes it again
            yield

    def rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        text = self.path.read_bytes().decode(errors="replace")
        whole = text[: text.rfind("\n") + 1]  # a last line with no end was cut short
        reader = csv.DictReader(io.StringIO(whole, newline=""))
        if whole and reader.fieldnames != LEDGER_COLUMNS:
            raise UserError(
                f"{self.path}: line 1 is not the ledger's header ({','.join(LEDGER_COLUMNS)}); "
                "move the file aside to start a new ledger"
            )
        return list(reader)

    def append(self, row: dict) -> None:
        stamped = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **row}
        unknown = set(stamped) - set(LEDGER_COLUMNS)
        if unknown:
            raise ValueError(f"not ledger columns: {sorted(unknown)}")
        line = io.StringIO()
        writer = csv.DictWriter(line, fieldnames=LEDGER_COLUMNS)
        writer.writerow({column: one_line(stamped.get(column, "")) for column in LEDGER_COLUMNS})
        with self.locked():
            faults.reached("ledger")
            with open(self.path, "a+b") as file:  # appends; reads from where it seeks
                file.seek(0)
                written = file.read()
                kept = written.rfind(b"\n") + 1
                if kept < len(written):  # a crash cut the last line short: drop it
                    file.truncate(kept)
                if kept == 0:
                    file.write(",".join(LEDGER_COLUMNS).encode() + b"\r\n")
                file.write(line.getvalue().encode())
                file.flush()
                os.fsync(file.fileno())

    def latest_for(self, digest: str) -> dict | None:
        matching = [row for row in self.rows() if row["sha256"] == digest]
        return matching[-1] if matching else None

    def submissions(self) -> list[dict]:
        """The latest row of each submission: by Kaggle ref, or by attempt when it failed or
        its outcome is unknown (an upload begun: the next row of its file supersedes it)."""
        latest: dict[str, dict] = {}
        for index, row in enumerate(self.rows()):
            begun = f"{UPLOADING}-{row['sha256']}"
            latest.pop(begun, None)
            key = begun if row["status"] == UPLOADING else row["kaggle_ref"] or f"failed-{index}"
            latest.pop(key, None)  # keep the order of each submission's latest event
            latest[key] = row
        return list(latest.values())

    def interrupted(self) -> list[dict]:
        """Uploads begun whose process died before it wrote down their outcome."""
        now = datetime.now(UTC)
        return [
            row
            for row in self.submissions()
            if row["status"] == UPLOADING
            and (
                not uploader_alive(row["reason"])
                or now - datetime.fromisoformat(row["time"]) > UPLOAD_LIMIT
            )
        ]

    def submitted_runs(self) -> set[str]:
        """The runs a submission was uploaded from."""
        return {row["run_id"] for row in self.rows() if row["kaggle_ref"] and row["run_id"]}


def one_line(value: object) -> str:
    """A field with no line breaks, so that a ledger line is a whole event."""
    return " ".join(str(value).splitlines())


def uploading_reason() -> str:
    return f"pid {os.getpid()}"


def uploader_alive(reason: str) -> bool:
    """Whether the process named by an UPLOADING row's reason ("pid N") still runs."""
    pid = reason.removeprefix("pid ")
    return pid.isdigit() and process_alive(int(pid))
