"""submissions/<slug>/ledger.csv: every submission event (a failed upload, an upload, a
score), appended and never rewritten; what `submit`, `submissions`, `runs` and `leaderboard`
read of what was sent."""

import csv
import os
from datetime import UTC, datetime
from pathlib import Path

LEDGER_COLUMNS = [
    "time", "file", "sha256", "run_id", "cv_score", "message",
    "kaggle_ref", "status", "public_score", "reason",
]  # fmt: skip


class Ledger:
    """submissions/ledger.csv: one row per event (a failed upload, an upload, a score),
    only ever appended to. The latest row of a submission says where it stands."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as file:
            return list(csv.DictReader(file))

    def append(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        stamped = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **row}
        with open(self.path, "a", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=LEDGER_COLUMNS, extrasaction="raise")
            if new:
                writer.writeheader()
            writer.writerow({column: stamped.get(column, "") for column in LEDGER_COLUMNS})
            file.flush()
            os.fsync(file.fileno())

    def latest_for(self, digest: str) -> dict | None:
        matching = [row for row in self.rows() if row["sha256"] == digest]
        return matching[-1] if matching else None

    def submissions(self) -> list[dict]:
        """The latest row of each submission: by Kaggle ref, or by attempt when it failed."""
        latest: dict[str, dict] = {}
        for index, row in enumerate(self.rows()):
            key = row["kaggle_ref"] or f"failed-{index}"
            latest.pop(key, None)  # keep the order of each submission's latest event
            latest[key] = row
        return list(latest.values())

    def submitted_runs(self) -> set[str]:
        """The runs a submission was uploaded from."""
        return {row["run_id"] for row in self.rows() if row["kaggle_ref"] and row["run_id"]}
