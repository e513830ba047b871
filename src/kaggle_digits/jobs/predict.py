"""`kaggle-digits predict`: the run's ensemble on your own images or on a test-format CSV.

A photo is read, its digit found and made MNIST-like by data/photo.py (the road is told
there); the run's members come from the store (store/members.py).
"""

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from kaggle_digits.base.errors import UserError
from kaggle_digits.data.competition import Competition
from kaggle_digits.data.photo import find_digit, ink_to_frame, read_image
from kaggle_digits.store.members import load_model, trained_runs

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
THUMBNAIL_SIDE = 256  # of the photo kept for the --show figure


@dataclass(frozen=True)
class Prediction:
    source: str
    image: np.ndarray  # the processed H x W x C uint8 image the models saw
    probs: np.ndarray
    photo: np.ndarray | None = None  # a thumbnail of the photo (RGB uint8), for the figure
    box: tuple[float, float, float, float] | None = None  # the digit in the thumbnail

    @property
    def label(self) -> int:
        return int(self.probs.argmax())


def image_paths(paths: list[Path]) -> list[Path]:
    """The image files given, a folder standing for the images in it (sorted by name)."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not inside:
                raise UserError(f"{path}: no images in the folder ({', '.join(IMAGE_SUFFIXES)})")
            found.extend(inside)
        else:
            found.append(path)
    return found


@contextlib.contextmanager
def framework_warnings_hidden() -> Iterator[None]:
    """Keras/TensorFlow warn about retracing when many saved models predict a few images
    each; that is expected here, and nothing a user can act on."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def ensemble_probs(run_dir: Path, images: np.ndarray) -> np.ndarray:
    """The mean probabilities of every (fold, member) model saved in a run (for a blend, the
    weighted sum of its source runs')."""
    from kaggle_digits.training.fit import predict_probs

    total = 0
    with framework_warnings_hidden():
        for run in trained_runs(run_dir):
            run_total = None
            for pair in run.pairs:
                probs = predict_probs(load_model(run.model_path(*pair)), images, run.config)
                run_total = probs if run_total is None else run_total + probs
            total = total + run.weight * (run_total / len(run.pairs))
    return total


def prepare_photo(path: Path, image_shape: tuple[int, int, int]) -> Prediction:
    """A photo read and made MNIST-like, with a thumbnail and the digit's box for the figure
    (its probabilities still empty)."""
    photo = read_image(path)
    found = find_digit(photo, str(path))
    shrink = min(1.0, THUMBNAIL_SIDE / max(photo.shape[:2]))
    thumbnail = Image.fromarray(photo)
    thumbnail.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return Prediction(
        source=str(path),
        image=ink_to_frame(found.ink, image_shape),
        probs=np.zeros(0, dtype=np.float32),
        photo=np.asarray(thumbnail),
        box=tuple(value * shrink for value in found.box),
    )


def predict_images(paths: list[Path], run_dir: Path, competition: Competition) -> list[Prediction]:
    prepared = [prepare_photo(path, competition.image_shape) for path in image_paths(paths)]
    probs = ensemble_probs(run_dir, np.stack([p.image for p in prepared]))
    return [replace(p, probs=row) for p, row in zip(prepared, probs, strict=True)]


def predict_csv(csv_path: Path, run_dir: Path, competition: Competition) -> list[Prediction]:
    from kaggle_digits.data.dataset import read_test_csv

    images, ids = read_test_csv(Path(csv_path), competition)
    if ids is None:
        ids = np.arange(competition.id_start, competition.id_start + len(images))
    probs = ensemble_probs(run_dir, images)
    return [
        Prediction(str(image_id), image, p)
        for image_id, image, p in zip(ids, images, probs, strict=True)
    ]


def predict(
    competition: Competition,
    runs_dir: Path,
    run: str | None,
    images: list[Path],
    csv: Path | None = None,
) -> list[Prediction]:
    """Predictions of a run's ensemble (the newest complete one unless named) for image
    files, or for every row of a test-format CSV."""
    from kaggle_digits.store.run_folder import find_run

    if not images and csv is None:
        raise UserError("give IMAGE files or --csv FILE")
    run_dir = find_run(runs_dir, run, competition)
    if csv is not None:
        return predict_csv(csv, run_dir, competition)
    return predict_images(images, run_dir, competition)


def describe(prediction: Prediction, classes: tuple[int, ...]) -> str:
    label = classes[prediction.label]
    spread = " ".join(f"{c}:{p:.3f}" for c, p in zip(classes, prediction.probs, strict=True))
    return f"{prediction.source}: {label} ({prediction.probs.max():.1%})   {spread}"


def save_figure(predictions: list[Prediction], classes: tuple[int, ...], path: Path) -> Path:
    from kaggle_digits.reports import plots

    return plots.predictions_figure(
        [p.photo for p in predictions],
        [p.box for p in predictions],
        np.stack([p.image for p in predictions]),
        np.stack([p.probs for p in predictions]),
        [Path(p.source).name for p in predictions],
        classes,
        path,
    )
