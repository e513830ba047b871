"""Two recipes row by row on the same held-out rows: the rows one gets right and the other
wrong, and a bootstrap over rows of the difference in accuracy and in log-loss (how recipes
that differ by less than the noise are told apart).

Each side is a list of levers.py's .npz files (reports/levers/NAME-foldK.npz; their members
averaged, as levers.py averaged them), matched fold by fold, or one run folder of `cv`
(its oof_probs.npy, every training row). FILE:0,2 takes only those members of a file;
several files of one fold on a side pool their members, equally weighted:

    python benchmarks/versus.py --a reports/levers/gpu-b128-fold{0,1}.npz \\
        --b reports/levers/gpu-b32-fold{0,1}.npz
    python benchmarks/versus.py --a reports/levers/fork-fold0.npz \\
        --b reports/levers/fork-fold0.npz:0
    python benchmarks/versus.py --a runs/digit-recognizer/RUN_A --b runs/digit-recognizer/RUN_B
"""

import argparse
import re
from pathlib import Path

import numpy as np
from levers_oof import members_of

RESAMPLES = 10_000


def held_out(paths: list[str], data_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """fold name -> (labels, probabilities) of one side."""
    if len(paths) == 1 and Path(paths[0]).is_dir():
        from kaggle_digits.data.competition import load_competition
        from kaggle_digits.data.dataset import load_dataset

        labels = load_dataset(load_competition(), data_dir).train_labels
        return {"all rows": (labels, np.load(Path(paths[0]) / "oof_probs.npy"))}
    folds: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
    for text in paths:
        path, _, picked = text.partition(":")
        fold = re.search(r"-(fold\d+)\.npz$", path).group(1)
        saved = np.load(path)
        members = members_of(saved)
        if picked:
            members = [members[int(index)] for index in picked.split(",")]
        labels, pooled = folds.setdefault(fold, (saved["labels"], []))
        if not (labels == saved["labels"]).all():
            raise SystemExit(f"error: {text}: its rows differ from the other {fold} files'")
        pooled.extend(members)
    return {fold: (labels, np.mean(members, axis=0)) for fold, (labels, members) in folds.items()}


def log_losses(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each row's log-loss."""
    true = probs[np.arange(len(labels)), labels] / probs.sum(1)
    return -np.log(np.clip(true, 1e-15, 1.0))


def bootstrap(differences: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """The 95% interval of the mean of `differences` over rows drawn again with replacement
    (RESAMPLES times, 500 at a time to bound the memory)."""
    draws = np.random.default_rng(seed)
    means = np.concatenate(
        [
            differences[draws.integers(0, len(differences), (500, len(differences)))].mean(1)
            for _ in range(RESAMPLES // 500)
        ]
    )
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def compare(name: str, labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    right_a, right_b = a.argmax(1) == labels, b.argmax(1) == labels
    accuracy = right_a.astype(float) - right_b.astype(float)
    loss = log_losses(labels, a) - log_losses(labels, b)
    low, high = bootstrap(accuracy)
    loss_low, loss_high = bootstrap(loss)
    print(
        f"{name}: {len(labels):,} rows; A right {int(right_a.sum()):,}, B right "
        f"{int(right_b.sum()):,}; A right where B wrong {int((right_a & ~right_b).sum())}, "
        f"B right where A wrong {int((right_b & ~right_a).sum())}\n"
        f"  accuracy A - B {accuracy.mean():+.5f} (95% bootstrap {low:+.5f} .. {high:+.5f}); "
        f"log-loss A - B {loss.mean():+.4f} ({loss_low:+.4f} .. {loss_high:+.4f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--a", nargs="+", required=True, help="FILE[:MEMBERS] ... or a run folder")
    parser.add_argument("--b", nargs="+", required=True)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args()
    side_a, side_b = held_out(args.a, args.data_dir), held_out(args.b, args.data_dir)
    if set(side_a) != set(side_b):
        raise SystemExit(f"error: the sides hold other folds: {sorted(side_a)} / {sorted(side_b)}")
    for fold in sorted(side_a):
        labels, probs_a = side_a[fold]
        other_labels, probs_b = side_b[fold]
        if not (labels == other_labels).all():
            raise SystemExit(f"error: {fold}: the two sides' rows differ")
        compare(fold, labels, probs_a, probs_b)
    if len(side_a) > 1:
        labels = np.concatenate([side_a[fold][0] for fold in sorted(side_a)])
        compare(
            "together",
            labels,
            np.concatenate([side_a[fold][1] for fold in sorted(side_a)]),
            np.concatenate([side_b[fold][1] for fold in sorted(side_b)]),
        )


if __name__ == "__main__":
    main()
