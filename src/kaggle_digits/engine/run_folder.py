"""A run folder's layout, and finding runs: what `cv` writes and resumes, and what `blend`,
`predict`, `submit` and `runs` read.

runs/<slug>/<timestamp>-<preset>/
  request.json         the options as asked, written first: a run killed in its trials resumes
  run.lock             held (flock) while a `cv` writes the run
  folds.npy            the fold of each training row
  config.json          every option as the trials settled them, plus data fingerprint, git
                       commit, package versions; written after folds.npy
  fold<k>/member<m>-<architecture>/
      model.keras, holdout_probs.npy, test_probs.npy, history.json,
      result.json      written last: the pair is finished when it exists and the pair's
                       files are whole (pair_damage checks their sizes and shapes)
  oof_probs.npy, test_probs.npy, plots, summary.txt
  metrics.json         written last: the run is complete when, and only when, it exists
runs/<slug>/latest     the newest complete run (a symlink)

A complete run whose files are not whole is damaged (run_damage): `runs` says so, `submit`,
`blend` and `predict` refuse it, and `cv --resume` mends it.
"""

import contextlib
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import is_temporary
from kaggle_digits.data.competition import Competition
from kaggle_digits.data.dataset import Dataset
from kaggle_digits.options.config import CVConfig

REQUEST = "request.json"
SETTLED = "config.json"
LOCK = "run.lock"
PAIR_FINISHED = "result.json"
RUN_COMPLETE = "metrics.json"
RUN_ARRAYS = ("folds.npy", "oof_probs.npy", "test_probs.npy")


def pair_dir(run_dir: Path, fold: int, member: int, architecture: str) -> Path:
    return Path(run_dir) / f"fold{fold}" / f"member{member}-{architecture}"


def is_finished(pair_folder: Path) -> bool:
    return (pair_folder / PAIR_FINISHED).exists()


def finished_pairs(run_dir: Path) -> int:
    """How many pairs of the run folder are finished (their result.json written)."""
    return len(finished_pair_names(run_dir))


def finished_pair_names(run_dir: Path) -> list[str]:
    """The run folder's finished pairs, as `fold0/member0-strided-cnn`, sorted."""
    found = Path(run_dir).glob(f"fold*/member*/{PAIR_FINISHED}")
    return sorted(path.parent.relative_to(run_dir).as_posix() for path in found)


def is_complete(run_dir: Path) -> bool:
    return (Path(run_dir) / RUN_COMPLETE).is_file()


def options_file(run_dir: Path) -> Path:
    """Where a run's options are: settled by its trials, else as asked."""
    return Path(run_dir) / (SETTLED if (Path(run_dir) / SETTLED).is_file() else REQUEST)


def is_whole(run_dir: Path) -> bool:
    """Complete, undamaged and not being written: a run to submit or compare."""
    return not is_running(run_dir) and is_complete(run_dir) and run_damage(run_dir) is None


def run_folders(runs_dir: Path) -> list[Path]:
    """The run folders in runs_dir, in no order (runs/latest and stray files left out)."""
    return [
        folder
        for folder in Path(runs_dir).glob("*")
        if not folder.name.startswith(".")  # a blend being written
        and folder.is_dir()
        and not folder.is_symlink()
        and options_file(folder).is_file()
    ]


def new_run_dir(runs_dir: Path, preset: str) -> Path:
    """runs_dir/<timestamp>-<preset>, created; a suffix where that name is taken (mkdir
    either creates a folder or fails, so two runs started at once get one each)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    for suffix in range(1, 10_000):
        run_dir = Path(runs_dir) / (f"{stamp}-{preset}" + (f"-{suffix}" if suffix > 1 else ""))
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise UserError(f"{runs_dir}: 10,000 runs named {stamp}-{preset} already")


@contextlib.contextmanager
def writing(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock while writing it: a second `cv --resume` of it is refused, and
    `runs` shows it as running. The system lets go of the lock when the process dies."""
    lock = FileLock(Path(run_dir) / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(
            f"{run_dir}: another `kaggle-digits cv` is writing this run now; wait for it to end"
        ) from None
    try:
        yield
    finally:
        lock.release()


def is_running(run_dir: Path) -> bool:
    """Whether a live process holds the run's lock."""
    if not (Path(run_dir) / LOCK).exists():
        return False
    lock = FileLock(Path(run_dir) / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:  # a read-only folder: no one can be writing it
        return False
    lock.release()
    return False


def remove_temporary_files(run_dir: Path) -> None:
    """The files a killed process was writing under temporary names (files.atomic_path)."""
    for path in Path(run_dir).rglob(".*"):
        if is_temporary(path):
            path.unlink(missing_ok=True)


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
        check_undamaged(run_dir)
        return run_dir.resolve()
    complete = sorted(
        (
            path
            for path in runs_dir.glob("*")
            if path.is_dir()
            and not path.is_symlink()
            and not path.name.startswith(".")  # a blend being written
            and is_complete(path)
            and (competition is None or run_competition(path) in (None, competition.slug))
        ),
        key=lambda path: (path / RUN_COMPLETE).stat().st_mtime,  # most recently finished
    )
    if not complete:
        raise UserError(f"no complete run in {runs_dir}; run `kaggle-digits cv` first")
    check_undamaged(complete[-1])
    return complete[-1].resolve()


def check_undamaged(run_dir: Path) -> None:
    damage = run_damage(run_dir)
    if damage is not None:
        raise UserError(f"{run_dir.name}: damaged: {damage}; mend it: {mend_command(run_dir)}")


def mend_command(run_dir: Path) -> str:
    """What mends a damaged run: a blend is made again, a `cv` run resumed."""
    if "sources" in read_object(Path(run_dir) / SETTLED):
        return "blend its runs again"
    return f"kaggle-digits cv --resume {run_dir}"


def run_competition(run_dir: Path) -> str | None:
    """The slug of the competition a run was made for (None for runs older than the field)."""
    return read_object(Path(run_dir) / SETTLED).get("competition")


def check_competition(run_dir: Path, competition: Competition) -> None:
    made_for = run_competition(run_dir)
    if made_for is not None and made_for != competition.slug:
        raise UserError(
            f"{Path(run_dir).name}: the run was made for the competition '{made_for}', not "
            f"'{competition.slug}'; pass its spec with --competition"
        )


def resume_config(run_dir: Path, dataset: Dataset, execution: dict) -> tuple[CVConfig, bool]:
    """The saved options of an unfinished (or damaged) run, after checking it is one and fits
    the data; and whether its trials had settled them (else they are the options as asked,
    and the trials run again). How its pairs run (`execution`: workers, engine) is the
    resuming command's choice."""
    saved_file = options_file(run_dir)
    settled = saved_file.name == SETTLED
    if not saved_file.is_file():
        raise UserError(f"{run_dir}: not a `cv` run folder (no {REQUEST} or {SETTLED})")
    saved = read_object(saved_file)
    if not saved:
        raise UserError(f"{saved_file} {damage_of(saved_file)}: start the run again with `cv`")
    if "sources" in saved:
        raise UserError(f"{run_dir}: a blend, not a `cv` run; {mend_command(run_dir)}")
    if is_complete(run_dir) and run_damage(run_dir) is None:
        raise UserError(f"{run_dir}: the run is already complete; nothing to resume")
    if saved.get("data_fingerprint") != dataset.fingerprint:
        raise UserError(f"{run_dir}: the run was made on other data (the CSVs have changed)")
    folds = run_dir / "folds.npy"
    if settled and array_shape(folds) != (len(dataset.train_labels),):
        raise UserError(f"{folds} {damage_of(folds)}: start the run again with `cv`")
    return replace(CVConfig.from_dict(saved), **execution), settled


# --- damaged files: sizes and shapes checked, not only that a file exists --------------


def array_shape(path: Path) -> tuple[int, ...] | None:
    """The shape of a .npy file whose data is all there; None for one cut short or garbled."""
    try:
        return np.load(path, mmap_mode="r").shape
    except (OSError, ValueError, EOFError):
        return None


def damage_of(path: Path) -> str:
    return "is cut short or unreadable" if Path(path).exists() else "is missing"


def read_object(path: Path) -> dict:
    """A JSON object file's content; {} for one missing, cut short or garbled."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


@dataclass(frozen=True)
class Damage:
    path: Path  # the damaged file
    what: str

    def __str__(self) -> str:
        return f"{self.path} {self.what}"


def pair_damage(
    folder: Path, holdout_rows: int | None = None, test_rows: int | None = None
) -> Damage | None:
    """What is wrong with a finished pair's files (None: nothing), their shapes checked
    against the rows the pair held out and predicted, where given."""
    for name in (PAIR_FINISHED, "history.json"):
        if not read_object(folder / name):
            return Damage(folder / name, damage_of(folder / name))
    expected = {"holdout_probs.npy": holdout_rows, "test_probs.npy": test_rows}
    classes = set()
    for name, rows in expected.items():
        shape = array_shape(folder / name)
        if shape is None or len(shape) != 2:
            return Damage(folder / name, damage_of(folder / name))
        if rows is not None and shape[0] != rows:
            return Damage(folder / name, f"has {shape[0]} rows, not {rows}")
        classes.add(shape[1])
    if len(classes) > 1:
        return Damage(folder / "test_probs.npy", "has other classes than holdout_probs.npy")
    try:
        with zipfile.ZipFile(folder / "model.keras"):
            pass
    except (OSError, zipfile.BadZipFile):
        return Damage(folder / "model.keras", damage_of(folder / "model.keras"))
    return None


def run_damage(run_dir: Path) -> Damage | None:
    """The first damaged file of a complete run: its own files, or those of a pair that its
    metrics.json was made from."""
    run_dir = Path(run_dir)
    config, metrics = read_object(run_dir / SETTLED), read_object(run_dir / RUN_COMPLETE)
    for name, payload in ((SETTLED, config), (RUN_COMPLETE, metrics)):
        if not payload:
            return Damage(run_dir / name, damage_of(run_dir / name))
    shapes = {name: array_shape(run_dir / name) for name in RUN_ARRAYS}
    for name, shape in shapes.items():
        if shape is None or len(shape) != (1 if name == "folds.npy" else 2):
            return Damage(run_dir / name, damage_of(run_dir / name))
    rows, oof_rows = shapes["folds.npy"][0], shapes["oof_probs.npy"][0]
    if oof_rows != rows:
        return Damage(run_dir / "oof_probs.npy", f"has {oof_rows} rows, not {rows}")
    fold_of_row = np.load(run_dir / "folds.npy")
    for pair in metrics.get("pairs", []):  # none in a blend
        folder = pair_dir(run_dir, pair["fold"], pair["member"], pair["architecture"])
        holdout_rows = int((fold_of_row == pair["fold"]).sum())
        damage = pair_damage(folder, holdout_rows, test_rows=shapes["test_probs.npy"][0])
        if damage is not None:
            return damage
    return None
