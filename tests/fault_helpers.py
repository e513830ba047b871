"""What the fault tests check in a run folder after a kill or a full disk: its finished
pairs whole, nothing unfinished taken as finished, no temporary files left behind."""

import json
from pathlib import Path

import numpy as np
import pytest

from kaggle_digits.base.errors import UserError
from kaggle_digits.jobs.runs import run_state
from kaggle_digits.store.damage import pair_damage
from kaggle_digits.store.run_files import pair_dir
from kaggle_digits.store.run_folder import find_run

# the tests' TINY (helpers.py) as options: two folds of two fast baselines, one epoch
TINY_CV = (
    "--folds", "2", "--members", "mlp,lc-cnn", "--epochs", "1", "--batch-size", "32",
    "--tta", "0", "--no-deskew", "--select-hard", "0",
)  # fmt: skip


def finished_pairs(run_dir: Path, test_rows: int) -> int:
    """The pairs with a result.json, each checked to be whole (sizes and shapes)."""
    if not (run_dir / "config.json").exists():
        return 0
    config = json.loads((run_dir / "config.json").read_text())
    fold_of_row = np.load(run_dir / "folds.npy")
    finished = 0
    for fold in range(config["folds"]):
        for member, architecture in enumerate(config["members"]):
            folder = pair_dir(run_dir, fold, member, architecture)
            if (folder / "result.json").exists():
                holdout_rows = int((fold_of_row == fold).sum())
                assert pair_damage(folder, holdout_rows, test_rows) is None, folder
                finished += 1
    return finished


def assert_nothing_half_done(run_dir: Path, test_rows: int) -> int:
    """After a kill: nothing unfinished is taken as finished, and the run says how to go
    on; the pairs finished."""
    assert not (run_dir / "metrics.json").exists()
    with pytest.raises(UserError, match="no complete run"):
        find_run(run_dir.parent)
    state, _ = run_state(run_dir)
    assert state == f"incomplete: kaggle-digits cv --resume {run_dir}"  # its lock died with it
    json.loads((run_dir / "request.json").read_text())
    return finished_pairs(run_dir, test_rows)


def temporary_files(run_dir: Path) -> list[str]:
    return sorted(path.name for path in run_dir.rglob(".*") if path.name != "run.lock")
