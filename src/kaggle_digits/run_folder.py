"""A run folder's layout, and finding runs: what `cv` writes and resumes, and what `blend`,
`predict`, `submit` and `runs` read.

runs/<slug>/<timestamp>-<preset>/
  config.json          every option, plus data fingerprint, git commit, package versions
  folds.npy            the fold of each training row
  fold<k>/member<m>-<architecture>/
      model.keras, holdout_probs.npy, test_probs.npy, history.json,
      result.json      written last: the pair is finished when, and only when, it exists
  oof_probs.npy, test_probs.npy, plots, summary.txt
  metrics.json         written last: the run is complete when, and only when, it exists
runs/<slug>/latest     the newest complete run (a symlink)
"""

import os
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from kaggle_digits.competition import Competition
from kaggle_digits.config import CVConfig
from kaggle_digits.data import Dataset
from kaggle_digits.errors import UserError
from kaggle_digits.files import read_json

PAIR_FINISHED = "result.json"
RUN_COMPLETE = "metrics.json"


def pair_dir(run_dir: Path, fold: int, member: int, architecture: str) -> Path:
    return Path(run_dir) / f"fold{fold}" / f"member{member}-{architecture}"


def is_finished(pair_folder: Path) -> bool:
    return (pair_folder / PAIR_FINISHED).exists()


def is_complete(run_dir: Path) -> bool:
    return (Path(run_dir) / RUN_COMPLETE).is_file()


def new_run_dir(runs_dir: Path, preset: str) -> Path:
    """runs_dir/<timestamp>-<preset>, created; a suffix where that name is taken."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = runs_dir / f"{stamp}-{preset}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = runs_dir / f"{stamp}-{preset}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


def point_latest_at(run_dir: Path) -> None:
    """runs/latest -> the newest complete run (a symlink, swapped atomically)."""
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / ".latest-tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)


def run_folder(name: str, runs_dir: Path) -> Path:
    """A run given as a folder path, or as a folder name inside runs_dir."""
    run_dir = Path(name) if Path(name).is_dir() else Path(runs_dir) / name
    if not run_dir.is_dir():
        raise UserError(f"{name}: no such run (looked in {runs_dir})")
    return run_dir


def find_run(
    runs_dir: Path, name: str | None = None, competition: Competition | None = None
) -> Path:
    """A complete run: the one named (a path or a folder name in runs_dir), else the newest;
    given a competition, only a run made for it."""
    runs_dir = Path(runs_dir)
    if name is not None:
        run_dir = run_folder(name, runs_dir)
        if not is_complete(run_dir):
            raise UserError(f"{run_dir}: the run is not complete; finish it with `cv --resume`")
        if competition is not None:
            check_competition(run_dir, competition)
        return run_dir.resolve()
    complete = sorted(
        (
            path
            for path in runs_dir.glob("*")
            if path.is_dir()
            and not path.is_symlink()
            and is_complete(path)
            and (competition is None or run_competition(path) in (None, competition.slug))
        ),
        key=lambda path: (path / RUN_COMPLETE).stat().st_mtime,  # most recently finished
    )
    if not complete:
        raise UserError(f"no complete run in {runs_dir}; run `kaggle-digits cv` first")
    return complete[-1].resolve()


def run_competition(run_dir: Path) -> str | None:
    """The slug of the competition a run was made for (None for runs older than the field)."""
    return read_json(Path(run_dir) / "config.json").get("competition")


def check_competition(run_dir: Path, competition: Competition) -> None:
    made_for = run_competition(run_dir)
    if made_for is not None and made_for != competition.slug:
        raise UserError(
            f"{Path(run_dir).name}: the run was made for the competition '{made_for}', not "
            f"'{competition.slug}'; pass its spec with --competition"
        )


def resume_config(run_dir: Path, dataset: Dataset, execution: dict) -> CVConfig:
    """The saved options of an unfinished run, after checking it is one and fits the data.

    How its pairs run (`execution`: workers, engine) is the resuming command's choice."""
    if not (run_dir / "config.json").is_file() or not (run_dir / "folds.npy").is_file():
        raise UserError(f"{run_dir}: not a run folder (no config.json or folds.npy)")
    if is_complete(run_dir):
        raise UserError(f"{run_dir}: the run is already complete; nothing to resume")
    saved = read_json(run_dir / "config.json")
    if saved.get("data_fingerprint") != dataset.fingerprint:
        raise UserError(f"{run_dir}: the run was made on other data (the CSVs have changed)")
    return replace(CVConfig.from_dict(saved), **execution)
