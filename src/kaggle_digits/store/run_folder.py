"""A run folder's layout, and finding runs: what `cv` writes and resumes, and what `blend`,
`predict`, `submit` and `runs` read. Each file is named, read and written in run_files.py.

runs/<slug>/<timestamp>-<preset>/
  request.json         the options as asked, written first: a run killed in its trials resumes
  run.lock             held (flock) while a `cv` writes the run
  folds.npy            the fold of each training row
  config.json          every option as the trials settled them, plus data fingerprint, git
                       commit, package versions; written after folds.npy
  fold<k>/member<m>-<architecture>/
      model.keras, holdout_probs.npy, test_probs.npy, history.json,
      result.json      written last: the pair is finished when it exists and the pair's
                       files are whole (damage.pair_damage checks their sizes and shapes)
  oof_probs.npy, test_probs.npy, the figures, summary.txt
  metrics.json         written last: the run is complete when, and only when, it exists
  mlflow.json          a tracked run's MLflow run (`--track`)
  kernel.json, kernel.log, kernel_environment.json    a run trained on Kaggle
runs/<slug>/latest     the newest complete run (a symlink)

A complete run whose files are not whole is damaged (damage.run_damage): `runs` says so,
`submit`, `blend` and `predict` refuse it, and `cv --resume` mends it.
"""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from filelock import FileLock, Timeout

from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import is_temporary
from kaggle_digits.data.competition import Competition
from kaggle_digits.data.dataset import Dataset
from kaggle_digits.options.config import CVConfig
from kaggle_digits.store.damage import array_shape, damage_of, run_damage
from kaggle_digits.store.run_files import (
    LOCK,
    PAIR_FINISHED,
    REQUEST,
    RUN_COMPLETE,
    SETTLED,
    completed_at,
    folds_path,
    has_kernel,
    options_file,
    read_object,
    read_options,
)


def finished_pairs(run_dir: Path) -> int:
    """How many pairs of the run folder are finished (their result.json written)."""
    return len(finished_pair_names(run_dir))


def finished_pair_names(run_dir: Path) -> list[str]:
    """The run folder's finished pairs, as `fold0/member0-strided-cnn`, sorted."""
    found = Path(run_dir).glob(f"fold*/member*/{PAIR_FINISHED}")
    return sorted(path.parent.relative_to(run_dir).as_posix() for path in found)


def is_complete(run_dir: Path) -> bool:
    return (Path(run_dir) / RUN_COMPLETE).is_file()


def is_on_kaggle(run_dir: Path) -> bool:
    """Whether a run folder belongs to a Kaggle kernel and is not home yet."""
    return has_kernel(run_dir) and not is_complete(run_dir)


def uncomplete(run_dir: Path) -> None:
    """The run is being written again (mended, resumed): not complete until finished anew."""
    (Path(run_dir) / RUN_COMPLETE).unlink(missing_ok=True)


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
        key=completed_at,  # most recently finished
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
    if "sources" in read_options(run_dir):
        return "blend its runs again"
    return f"kaggle-digits cv --resume {run_dir}"


def run_competition(run_dir: Path) -> str | None:
    """The slug of the competition a run was made for (None for runs older than the field)."""
    return read_options(run_dir).get("competition")


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
    folds = folds_path(run_dir)
    if settled and array_shape(folds) != (len(dataset.train_labels),):
        raise UserError(f"{folds} {damage_of(folds)}: start the run again with `cv`")
    return replace(CVConfig.from_dict(saved), **execution), settled
