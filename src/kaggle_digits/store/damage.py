"""Damaged files: a run's and its pairs' sizes and shapes checked, not only that each file
exists. A complete run whose files are not whole is damaged: `runs` says so, `submit`,
`blend` and `predict` refuse it, and `cv --resume` mends it."""

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kaggle_digits.store.run_files import (
    FOLDS,
    HISTORY,
    HOLDOUT_PROBS,
    OOF_PROBS,
    PAIR_FINISHED,
    PAIR_TEST_PROBS,
    RUN_ARRAYS,
    RUN_COMPLETE,
    SETTLED,
    TEST_PROBS,
    model_path,
    pair_dir,
    read_folds,
    read_object,
)


def array_shape(path: Path) -> tuple[int, ...] | None:
    """The shape of a .npy file whose data is all there; None for one cut short or garbled."""
    try:
        return np.load(path, mmap_mode="r").shape
    except (OSError, ValueError, EOFError):
        return None


def damage_of(path: Path) -> str:
    return "is cut short or unreadable" if Path(path).exists() else "is missing"


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
    for name in (PAIR_FINISHED, HISTORY):
        if not read_object(folder / name):
            return Damage(folder / name, damage_of(folder / name))
    expected = {HOLDOUT_PROBS: holdout_rows, PAIR_TEST_PROBS: test_rows}
    classes = set()
    for name, rows in expected.items():
        shape = array_shape(folder / name)
        if shape is None or len(shape) != 2:
            return Damage(folder / name, damage_of(folder / name))
        if rows is not None and shape[0] != rows:
            return Damage(folder / name, f"has {shape[0]} rows, not {rows}")
        classes.add(shape[1])
    if len(classes) > 1:
        return Damage(folder / PAIR_TEST_PROBS, f"has other classes than {HOLDOUT_PROBS}")
    try:
        with zipfile.ZipFile(model_path(folder)):
            pass
    except (OSError, zipfile.BadZipFile):
        return Damage(model_path(folder), damage_of(model_path(folder)))
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
        if shape is None or len(shape) != (1 if name == FOLDS else 2):
            return Damage(run_dir / name, damage_of(run_dir / name))
    rows, oof_rows = shapes[FOLDS][0], shapes[OOF_PROBS][0]
    if oof_rows != rows:
        return Damage(run_dir / OOF_PROBS, f"has {oof_rows} rows, not {rows}")
    fold_of_row = read_folds(run_dir)
    for pair in metrics.get("pairs", []):  # none in a blend
        folder = pair_dir(run_dir, pair["fold"], pair["member"], pair["architecture"])
        holdout_rows = int((fold_of_row == pair["fold"]).sum())
        damage = pair_damage(folder, holdout_rows, test_rows=shapes[TEST_PROBS][0])
        if damage is not None:
            return damage
    return None
