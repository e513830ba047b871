"""`kaggle-digits runs`: every run folder at a glance, newest first, with its state
(complete, running, incomplete, damaged or on Kaggle, its kernel asked now) and its best
public score from the ledger."""

from dataclasses import dataclass
from pathlib import Path

from kaggle_digits.base.errors import UserError
from kaggle_digits.jobs.ledger import ledger_of
from kaggle_digits.kaggle_api import kernels as kaggle_kernels
from kaggle_digits.store.damage import run_damage
from kaggle_digits.store.run_files import (
    current_version,
    read_kernel,
    read_metrics,
    read_options,
    started_at,
)
from kaggle_digits.store.run_folder import (
    is_complete,
    is_on_kaggle,
    is_running,
    mend_command,
    run_folders,
)
from kaggle_digits.training.budget import net_names


@dataclass(frozen=True)
class RunRow:
    run_id: str
    kind: str  # the preset, or "blend"
    members: str  # a fold's nets, "strided-cnn x 2"; a blend's sources
    nets_why: str  # why that many, where a budget chose
    epochs: str
    oof_accuracy: float | None
    wall_minutes: float | None  # the time its pairs trained, side by side counted once
    complete: bool  # and undamaged
    best_public_score: float | None
    path: Path
    state: str  # complete, running, on Kaggle, incomplete or damaged, with what to do


def list_runs(runs_dir: Path, submissions_dir: Path) -> list[RunRow]:
    """One row per run folder in runs_dir (runs/latest and stray files left out)."""
    best = best_public_scores(submissions_dir)
    rows = []
    for folder in run_folders(runs_dir):
        config = read_options(folder)
        state, metrics = run_state(folder)
        rows.append(
            RunRow(
                run_id=folder.name,
                kind="blend" if "sources" in config else str(config.get("preset", "?")),
                members=members_text(config),
                nets_why=config.get("budget_plan", {}).get("nets_why", ""),
                epochs=str(config.get("epochs", "")),
                oof_accuracy=metrics.get("oof_accuracy"),
                wall_minutes=metrics.get("wall_minutes"),
                complete=state == "complete",
                best_public_score=best.get(folder.name),
                path=folder,
                state=state,
            )
        )
    return sorted(rows, key=lambda row: started_at(row.path), reverse=True)


def members_text(config: dict) -> str:
    members = config.get("members", [])
    return ",".join(members) if "sources" in config else net_names(members)


def run_state(folder: Path) -> tuple[str, dict]:
    """What a run folder is now, with what to do about it; and its metrics, where whole."""
    if is_running(folder):
        return "running", {}
    if is_on_kaggle(folder):
        return kaggle_state(folder), {}
    if not is_complete(folder):
        return f"incomplete: kaggle-digits cv --resume {folder}", {}
    damage = run_damage(folder)
    if damage is not None:
        where = damage.path.relative_to(folder)
        return f"damaged: {where} {damage.what}; {mend_command(folder)}", {}
    return "complete", read_metrics(folder)  # whole: readable


def kaggle_state(run_dir: Path) -> str:
    """What `runs` shows for a run still on Kaggle: its kernel's status, asked now."""
    record = read_kernel(run_dir)
    if not record["versions"]:
        return f"on Kaggle: written for `kaggle kernels push -p {record.get('by_hand')}`"
    ref, version = current_version(record)
    try:
        state = kaggle_kernels.kernel_status(ref, version)
    except UserError as error:
        return f"on Kaggle ({ref} v{version}; status unknown: {error})"
    then = "brings it home" if state.finished else "waits for it"
    return (
        f"on Kaggle: {state.word} ({record['versions'][-1]['url']}); "
        f"kaggle-digits cv --resume {run_dir} {then}"
    )


def best_public_scores(submissions_dir: Path) -> dict[str, float]:
    best: dict[str, float] = {}
    for row in ledger_of(submissions_dir).rows():
        if row.get("public_score"):
            score = float(row["public_score"])
            best[row["run_id"]] = max(score, best.get(row["run_id"], score))
    return best


def runs_table(rows: list[RunRow]) -> str:
    if not rows:
        return "no runs yet; start one with `kaggle-digits cv`"
    lines = [
        f"{'run':28} {'kind':8} {'nets':30} {'epochs':>6} {'OOF':>8} {'wall':>6} "
        f"{'best LB':>8}  state"
    ]
    for row in rows:
        oof = f"{row.oof_accuracy:.5f}" if row.oof_accuracy is not None else "-"
        minutes = f"{row.wall_minutes:.1f}" if row.wall_minutes is not None else "-"
        public = f"{row.best_public_score:.5f}" if row.best_public_score is not None else "-"
        lines.append(
            f"{row.run_id:28} {row.kind:8} {row.members:30} {row.epochs:>6} {oof:>8} "
            f"{minutes:>6} {public:>8}  {row.state}"
        )
    chosen = [row for row in rows if row.nets_why]
    if chosen:
        lines += ["", "why that many nets a fold (the budget's plan):"]
        lines += [f"  {row.run_id}: {row.nets_why}" for row in chosen]
    return "\n".join(lines)
