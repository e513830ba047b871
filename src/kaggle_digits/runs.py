"""`kaggle-digits runs`: every run folder at a glance, newest first, with its best public
score from the submissions ledger."""

import json
from dataclasses import dataclass
from pathlib import Path

from kaggle_digits.ledger import Ledger
from kaggle_digits.run_folder import is_complete


@dataclass(frozen=True)
class RunRow:
    run_id: str
    kind: str  # the preset, or "blend"
    members: str
    epochs: str
    oof_accuracy: float | None
    wall_minutes: float | None  # the time its pairs trained, side by side counted once
    complete: bool
    best_public_score: float | None
    path: Path


def list_runs(runs_dir: Path, submissions_dir: Path) -> list[RunRow]:
    """One row per run folder in runs_dir (runs/latest and stray files left out)."""
    best = best_public_scores(Path(submissions_dir) / "ledger.csv")
    rows = []
    for folder in Path(runs_dir).glob("*"):
        if not folder.is_dir() or folder.is_symlink() or not (folder / "config.json").is_file():
            continue
        config = _read(folder / "config.json")
        metrics = _read(folder / "metrics.json") if is_complete(folder) else {}
        rows.append(
            RunRow(
                run_id=folder.name,
                kind="blend" if "sources" in config else str(config.get("preset", "?")),
                members=",".join(config.get("members", [])),
                epochs=str(config.get("epochs", "")),
                oof_accuracy=metrics.get("oof_accuracy"),
                wall_minutes=metrics.get("wall_minutes"),
                complete=bool(metrics),
                best_public_score=best.get(folder.name),
                path=folder,
            )
        )
    return sorted(rows, key=lambda row: (row.path / "config.json").stat().st_mtime, reverse=True)


def best_public_scores(ledger_path: Path) -> dict[str, float]:
    best: dict[str, float] = {}
    for row in Ledger(ledger_path).rows():
        if row.get("public_score"):
            score = float(row["public_score"])
            best[row["run_id"]] = max(score, best.get(row["run_id"], score))
    return best


def runs_table(rows: list[RunRow]) -> str:
    if not rows:
        return "no runs yet; start one with `kaggle-digits cv`"
    lines = [
        f"{'run':28} {'kind':8} {'members':28} {'epochs':>6} {'OOF':>8} {'wall':>6} "
        f"{'best LB':>8}  state"
    ]
    for row in rows:
        oof = f"{row.oof_accuracy:.5f}" if row.oof_accuracy is not None else "-"
        minutes = f"{row.wall_minutes:.1f}" if row.wall_minutes is not None else "-"
        public = f"{row.best_public_score:.5f}" if row.best_public_score is not None else "-"
        state = "complete" if row.complete else f"incomplete: kaggle-digits cv --resume {row.path}"
        lines.append(
            f"{row.run_id:28} {row.kind:8} {row.members:28} {row.epochs:>6} {oof:>8} "
            f"{minutes:>6} {public:>8}  {state}"
        )
    return "\n".join(lines)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
