"""Every figure the toolkit draws: each a function from arrays to a PNG path."""

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(figure: plt.Figure, path: Path) -> Path:
    """Write the PNG atomically, so a half-written figure never replaces a good one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    os.replace(tmp.name, path)
    return path


def sample_grid(
    images: np.ndarray, titles: Sequence[str], path: Path, columns: int = 10
) -> Path:
    """A grid of digits, each with its title (the label, or prediction and truth)."""
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.25))
    for index, axis in enumerate(np.atleast_1d(axes).ravel()):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index].squeeze(), cmap="gray_r", vmin=0, vmax=255)
            axis.set_title(titles[index], fontsize=9)
    return _save(figure, path)
