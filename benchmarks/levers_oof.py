"""Join levers.py's held-out probabilities of every fold into one out-of-fold score.

Each argument is an .npz that levers.py wrote (reports/levers/NAME-foldK.npz), one for each
fold of --folds; its members are averaged with --weights (equal unless given), as levers.py
averaged them. Prints the OOF accuracy, rows right and log-loss over all the training rows:

    python benchmarks/levers_oof.py --folds 10 reports/levers/f10-strided24-fold{0..9}.npz

With --pool, the .npz files are of one fold instead, and every member in them is pooled:
for each k, the rows right when k of the pooled models are averaged, over every choice of k
(how far more models of a fold go):

    python benchmarks/levers_oof.py --pool reports/levers/r1-strided54-m{0,1}-fold0.npz ...

With --curve, the files are nets of a recipe named NAME-mK-foldF.npz (member K of fold F, as
benchmarks/nets_curve.sh trains them): for each k, on the folds that have nets 0..k-1, the rows
right with the first 1, 2, ..., k nets of each fold averaged, and the log-loss at k (the
curve of accuracy against nets a fold, on the same rows all along):

    python benchmarks/levers_oof.py --curve reports/levers/default54-m*-fold*.npz
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


def nets_curve(paths: list[Path], labels: np.ndarray, fold_of_row: np.ndarray) -> None:
    """A markdown table: for each k, the folds with k nets, and their rows right with 1..k."""
    nets: dict[int, dict[int, np.ndarray]] = {}
    for path in paths:
        member, fold = map(int, re.search(r"-m(\d+)-fold(\d+)\.npz$", path.name).groups())
        saved = np.load(path)
        assert (saved["labels"] == labels[fold_of_row == fold]).all(), f"{path}: not fold {fold}"
        nets.setdefault(fold, {})[member] = fold_probs(saved, None)
    most = max(len(fold_nets) for fold_nets in nets.values())
    print(
        "| nets a fold | folds | rows | "
        + " | ".join(f"right, {j} net{'s' if j > 1 else ''}" for j in range(1, most + 1))
        + " | log-loss |"
    )
    print("|---" * (most + 4) + "|")
    for k in range(1, most + 1):
        folds = [fold for fold in sorted(nets) if all(j in nets[fold] for j in range(k))]
        if not folds:
            break
        fold_labels = np.concatenate([labels[fold_of_row == fold] for fold in folds])
        right = []
        for j in range(1, k + 1):
            probs = np.concatenate([np.mean([nets[f][i] for i in range(j)], axis=0) for f in folds])
            right.append(int((probs.argmax(1) == fold_labels).sum()))
        cells = [f"{r:,} ({r / len(fold_labels):.5f})" for r in right] + [""] * (most - k)
        loss = log_loss(fold_labels, probs / probs.sum(1, keepdims=True), labels=range(10))
        first = f"| {k} | {','.join(map(str, folds))} | {len(fold_labels):,} | "
        print(first + " | ".join(cells) + f" | {loss:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("npz", type=Path, nargs="+")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--weights", help="the members' weights, e.g. 0.8,0.2")
    parser.add_argument("--pool", action="store_true", help="one fold's models, k at a time")
    parser.add_argument("--curve", action="store_true", help="NAME-mK-foldF.npz: nets a fold")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args()
    if args.pool:
        pooled_curve(args.npz)
        return

    labels = load_dataset(load_competition(), args.data_dir).train_labels
    fold_of_row = fold_assignment(labels, args.folds, seed=42)
    if args.curve:
        nets_curve(args.npz, labels, fold_of_row)
        return
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
