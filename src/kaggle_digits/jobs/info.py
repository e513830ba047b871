"""`kaggle-digits info`: the first look every tutorial takes at the data."""

from pathlib import Path

import numpy as np

from kaggle_digits.data.competition import Competition
from kaggle_digits.data.dataset import Dataset
from kaggle_digits.reports import plots


def describe_dataset(dataset: Dataset, competition: Competition) -> str:
    """The first look at the data: shapes, label counts and pixel statistics."""
    labels, counts = np.unique(dataset.train_labels, return_counts=True)
    lines = [
        f"competition   {competition.title} ({competition.slug})",
        f"train images  {dataset.train_images.shape} {dataset.train_images.dtype}",
        f"test images   {dataset.test_images.shape} {dataset.test_images.dtype}",
        f"fingerprint   {dataset.fingerprint[:16]}",
        "label counts  "
        + "  ".join(f"{label}:{count}" for label, count in zip(labels, counts, strict=True)),
    ]
    for name, images in (("train", dataset.train_images), ("test", dataset.test_images)):
        ink = (images > 0).mean(axis=(1, 2, 3))
        lines.append(
            f"{name + ' pixels':14}mean {images.mean():.2f}  std {images.std():.2f}  "
            f"min {images.min()}  max {images.max()}  non-zero {ink.mean():.1%} per image"
        )
    return "\n".join(lines)


def sample_digits_figure(dataset: Dataset, path: Path, per_class: int = 4) -> Path:
    """A grid with the first `per_class` training digits of each class, titled by label."""
    classes = np.unique(dataset.train_labels)
    rows = [np.flatnonzero(dataset.train_labels == label)[:per_class] for label in classes]
    picked = np.concatenate(rows)
    titles = [str(label) for label in dataset.train_labels[picked]]
    return plots.sample_grid(dataset.train_images[picked], titles, path, columns=per_class * 2)
