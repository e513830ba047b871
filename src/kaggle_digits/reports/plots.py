"""Every figure the toolkit draws: each a function from arrays to a PNG path."""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from kaggle_digits.base.files import atomic_path  # noqa: E402


def _save(figure: plt.Figure, path: Path) -> Path:
    """Write the PNG atomically, so a half-written figure never replaces a good one."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return Path(path)


def sample_grid(images: np.ndarray, titles: Sequence[str], path: Path, columns: int = 10) -> Path:
    """A grid of digits, each with its title (the label, or prediction and truth)."""
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.25))
    for index, axis in enumerate(np.atleast_1d(axes).ravel()):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index].squeeze(), cmap="gray_r", vmin=0, vmax=255)
            axis.set_title(titles[index], fontsize=9)
    return _save(figure, path)


def learning_curves(histories: dict[int, dict[str, dict[str, list[float]]]], path: Path) -> Path:
    """Loss and accuracy per epoch, one panel per fold, a line per member: training (dashed)
    and held-out (solid, only evaluated, never used to choose anything by default)."""
    folds = sorted(histories)
    figure, axes = plt.subplots(2, len(folds), figsize=(3.2 * len(folds), 5.5), squeeze=False)
    for column, fold in enumerate(folds):
        for index, (architecture, history) in enumerate(histories[fold].items()):
            color = f"C{index}"
            epochs = np.arange(1, len(history["loss"]) + 1)
            for row, metric in enumerate(("loss", "accuracy")):
                axis = axes[row, column]
                axis.plot(epochs, history[metric], "--", color=color, alpha=0.6)
                if f"val_{metric}" in history:
                    axis.plot(epochs, history[f"val_{metric}"], color=color, label=architecture)
        axes[0, column].set_title(f"fold {fold + 1}")
        axes[0, column].set_yscale("log")
        axes[1, column].set_ylim(0.97, 1.0)
        axes[1, column].set_xlabel("epoch")
        for axis in axes[:, column]:
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_ylabel("loss (log)")
    axes[1, 0].set_ylabel("accuracy")
    axes[0, 0].legend(fontsize=7)
    figure.suptitle("training (dashed) and held-out (solid)")
    return _save(figure, path)


def confusion_matrix_figure(matrix: np.ndarray, classes: Sequence[int], path: Path) -> Path:
    """Counts of (true, predicted) pairs; the diagonal is dimmed so the mistakes stand out."""
    off_diagonal = matrix.astype(float).copy()
    np.fill_diagonal(off_diagonal, 0)
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    image = axis.imshow(off_diagonal, cmap="Reds")
    for (true, predicted), count in np.ndenumerate(matrix):
        color = "grey" if true == predicted else "black"
        axis.text(predicted, true, str(count), ha="center", va="center", fontsize=7, color=color)
    axis.set_xticks(range(len(classes)), [str(c) for c in classes])
    axis.set_yticks(range(len(classes)), [str(c) for c in classes])
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"out-of-fold confusion matrix ({matrix.trace()}/{matrix.sum()} right)")
    figure.colorbar(image, ax=axis, label="mistakes")
    return _save(figure, path)


def _digit_and_bars(image_axis, bar_axis, image, probs, classes, title, true=None) -> None:
    """A digit beside a bar chart of its class probabilities (red: predicted, green: true)."""
    predicted = int(np.argmax(probs))
    image_axis.imshow(image.squeeze(), cmap="gray_r", vmin=0, vmax=255)
    image_axis.set_title(title, fontsize=8)
    image_axis.axis("off")
    colors = ["C2" if c == true else "C3" if c == predicted else "C7" for c in range(len(classes))]
    bar_axis.bar(range(len(classes)), probs, color=colors)
    bar_axis.set_xticks(range(len(classes)), [str(c) for c in classes], fontsize=6)
    bar_axis.set_ylim(0, 1)
    bar_axis.tick_params(axis="y", labelsize=6)


def _digit_grid(count: int, columns: int):
    rows = max(1, -(-count // columns))
    figure, axes = plt.subplots(
        rows, columns * 2, figsize=(columns * 3.6, rows * 1.9), squeeze=False
    )
    for axis in axes.ravel():
        axis.axis("off")
    cells = [
        (axes[i // columns, (i % columns) * 2], axes[i // columns, (i % columns) * 2 + 1])
        for i in range(count)
    ]
    for _, bar_axis in cells:
        bar_axis.axis("on")
    return figure, axes, cells


def confident_mistakes(
    images: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[int],
    path: Path,
    count: int = 12,
) -> Path:
    """The out-of-fold mistakes the ensemble was surest of: each digit with its true and
    predicted label, beside a bar chart of the predicted probabilities."""
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    worst = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:count]
    figure, axes, cells = _digit_grid(len(worst), columns=4)
    for (image_axis, bar_axis), row in zip(cells, worst, strict=True):
        title = f"true {classes[labels[row]]} / pred {classes[predicted[row]]}"
        _digit_and_bars(image_axis, bar_axis, images[row], probs[row], classes, title, labels[row])
    if not len(worst):
        axes[0, 0].set_title("no out-of-fold mistakes")
    figure.suptitle("most confidently wrong out-of-fold predictions (green: true, red: predicted)")
    return _save(figure, path)


def predictions_figure(
    photos: Sequence[np.ndarray | None],
    boxes: Sequence[tuple[float, float, float, float] | None],
    images: np.ndarray,
    probs: np.ndarray,
    titles: Sequence[str],
    classes: Sequence[int],
    path: Path,
) -> Path:
    """A row per input: the photo with the box where the digit was found, the image the
    models saw, and the probability bars, so a wrong prediction shows where it went wrong."""
    figure, axes = plt.subplots(
        len(images), 3, figsize=(8, 2.3 * len(images)), squeeze=False, width_ratios=[1.4, 1, 1.4]
    )
    for row, (photo, box, image, p, title) in enumerate(
        zip(photos, boxes, images, probs, titles, strict=True)
    ):
        photo_axis, image_axis, bar_axis = axes[row]
        photo_axis.axis("off")
        if photo is not None:
            photo_axis.imshow(photo, cmap="gray" if photo.ndim == 2 else None)
            photo_axis.set_title(title, fontsize=8)
        if box is not None:
            top, left, bottom, right = box
            outline = plt.Rectangle(
                (left, top), right - left, bottom - top, fill=False, edgecolor="C3", linewidth=1.5
            )
            photo_axis.add_patch(outline)
        label = classes[int(np.argmax(p))]
        _digit_and_bars(image_axis, bar_axis, image, p, classes, f"what the models saw -> {label}")
    figure.tight_layout()
    return _save(figure, path)


def frontier_figure(points: Sequence[dict], references: Sequence[dict], path: Path) -> Path:
    """Accuracy against wall-clock minutes: the OOF and held-out-test accuracy of each budget,
    and reference recipes as labelled markers."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    minutes = [point["minutes"] for point in points]
    axis.plot(minutes, [p["oof_accuracy"] for p in points], "o-", label="OOF (CV)")
    axis.plot(minutes, [p["test_accuracy"] for p in points], "s--", label="held-out test")
    for point in points:
        axis.annotate(
            frontier_label(point),
            (point["minutes"], point["oof_accuracy"]),
            textcoords="offset points",
            xytext=(4, -12),
            fontsize=8,
        )
    for reference in references:
        axis.plot(reference["minutes"], reference["accuracy"], "k^")
        axis.annotate(
            reference["name"],
            (reference["minutes"], reference["accuracy"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    axis.set_xlabel("wall-clock minutes on this machine")
    axis.set_ylabel("accuracy")
    axis.set_title("Accuracy for the time you give it")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    return _save(figure, path)


def frontier_label(point: dict) -> str:
    """What a budget chose, as the frontier figure labels it: "30-min budget: strided-cnn x
    36.3 epochs of 1/3", where each epoch trained on the hardest third of the rows
    (CVConfig.select_hard = 2); points saved before select_hard was recorded have none."""
    label = f"{point['budget']:g}-min budget: {point['members']} x {point['epochs']:g} epochs"
    select_hard = point.get("select_hard", 0.0)  # NaN (never > 0) in older frontier.csv rows
    if select_hard > 0:
        label += f" of 1/{1 + select_hard:g}"
    return label
