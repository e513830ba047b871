"""Join levers.py's held-out probabilities of every fold into one out-of-fold score.

Each argument is an .npz that levers.py wrote (reports/levers/NAME-foldK.npz), one for each
fold of --folds; its members are averaged with --weights (equal unless given), as levers.py
averaged them. Prints the OOF accuracy, rows right and log-loss over all the training rows:

    python benchmarks/levers_oof.py --folds 10 reports/levers/f10-strided24-fold{0..9}.npz

With --pool, the .npz files are of one fold instead, and every member in them is pooled:
for each k, the rows right when k of the pooled models are averaged, over every choice of k
(how far more models of a fold go):

    python benchmarks/levers_oof.py --pool reports/levers/r1-strided54-m{0,1}-fold0.npz ...
"""

import argparse
import itertools
import re
from pathlib import Path

import common  # noqa: F401  (sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads)
import numpy as np
from sklearn.metrics import log_loss

from kaggle_digits.data.competition import load_competition
from kaggle_digits.data.dataset import load_dataset
from kaggle_digits.jobs.cv import fold_assignment


def members_of(saved) -> list[np.ndarray]:
    """An .npz's members' held-out probabilities, in levers.py's order (member0, member1, ...)."""
    count = sum(name.startswith("member") for name in saved.files)
    return [saved[f"member{index}"] for index in range(count)]


def fold_probs(saved, weights: list[float] | None) -> np.ndarray:
    members = members_of(saved)
    shares = np.array(weights or [1.0] * len(members), dtype=np.float64)
    return np.tensordot(shares / shares.sum(), np.stack(members), axes=1)


def pooled_curve(paths: list[Path]) -> None:
    """Rows right of one fold's averages of k pooled models, for each k."""
    labels = np.load(paths[0])["labels"]
    models = []
    for path in paths:
        saved = np.load(path)
        assert (saved["labels"] == labels).all(), f"{path}: another fold than {paths[0]}"
        models += members_of(saved)
    for k in range(1, len(models) + 1):
        right = [
            int((np.mean([models[i] for i in chosen], axis=0).argmax(1) == labels).sum())
            for chosen in itertools.combinations(range(len(models)), k)
        ]
        print(
            f"{k} of {len(models)} models: rows right of {len(labels):,}: mean "
            f"{np.mean(right):,.1f}, fewest {min(right):,}, most {max(right):,}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("npz", type=Path, nargs="+")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--weights", help="the members' weights, e.g. 0.8,0.2")
    parser.add_argument("--pool", action="store_true", help="one fold's models, k at a time")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args()
    if args.pool:
        pooled_curve(args.npz)
        return

    labels = load_dataset(load_competition(), args.data_dir).train_labels
    fold_of_row = fold_assignment(labels, args.folds, seed=42)
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    oof = np.full((len(labels), 10), np.nan)
    for path in args.npz:
        fold = int(re.search(r"-fold(\d+)\.npz$", path.name).group(1))
        rows = fold_of_row == fold
        saved = np.load(path)
        assert (saved["labels"] == labels[rows]).all(), f"{path}: not fold {fold}"
        oof[rows] = fold_probs(saved, weights)
    missing = sorted({int(f) for f in fold_of_row[np.isnan(oof[:, 0])]})
    assert not missing, f"no probabilities for folds {missing}"
    right = int((oof.argmax(1) == labels).sum())
    print(
        f"OOF accuracy {right / len(labels):.5f} ({right:,} of {len(labels):,} rows right), "
        f"log-loss {log_loss(labels, oof / oof.sum(1, keepdims=True)):.4f}"
    )


if __name__ == "__main__":
    main()
