"""`kaggle-digits predict`: the run's ensemble on your own images or on a test-format CSV.

A photo's digit is found as a person would find it (`photo.find_digit`: paper brightness
estimated locally, ruled lines ignored, the main connected ink kept), then made MNIST-like
the way MNIST itself was made: white ink on black, cropped to the ink, scaled to fit a box
of 20/28 of the competition's image size keeping the aspect ratio, and placed in the frame
so that the centre of mass sits at the centre.
"""

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import read_json
from kaggle_digits.data.competition import Competition
from kaggle_digits.data.photo import find_digit
from kaggle_digits.options.config import CVConfig

DIGIT_BOX_FRACTION = 20 / 28  # MNIST scales the digit's longer side to 20 of 28 pixels
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


def read_image(path: Path | BinaryIO, name: str | None = None) -> np.ndarray:
    """A PNG/JPEG/... file (or an open one, named `name` in messages) as an RGB uint8 array,
    upright as the phone showed it (EXIF orientation applied), transparent pixels as white
    paper."""
    source = str(path) if name is None else name
    try:
        with warnings.catch_warnings():
            # past Pillow's pixel limit it only warns, up to twice it; either is refused here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
    except FileNotFoundError:
        raise UserError(f"{source}: no such image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(
            f"{source}: too large: at most {Image.MAX_IMAGE_PIXELS:,} pixels are read (a phone's "
            "photo has about 12,000,000); scale it down"
        ) from None
    except UnidentifiedImageError:
        raise UserError(f"{source}: cannot read the image (not an image file)") from None
    except OSError as error:
        raise UserError(f"{source}: cannot read the image ({error})") from None
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        background = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def mnist_style(
    photo: np.ndarray, image_shape: tuple[int, int, int], source: str = "image"
) -> np.ndarray:
    """A photo or image of a digit (grayscale or RGB, any size, either polarity) -> an
    MNIST-style uint8 image of the competition's shape (28x28x1 for MNIST)."""
    return ink_to_frame(find_digit(photo, source).ink, image_shape)


def ink_to_frame(ink: np.ndarray, image_shape: tuple[int, int, int]) -> np.ndarray:
    """A crop of ink (0 paper .. 1) -> scaled into MNIST's box, centred by centre of mass."""
    frame_height, frame_width, channels = image_shape
    rows, columns = np.nonzero(ink > 0)
    ink = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    ink = np.clip(ink / max(float(np.percentile(ink[ink > 0], 90)), 1e-6), 0, 1) * 255

    height, width = ink.shape
    scale = DIGIT_BOX_FRACTION * min(frame_height, frame_width) / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = np.asarray(
        Image.fromarray(ink.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    )
    digit = np.clip(digit, 0, 255)

    frame = np.zeros((frame_height, frame_width), dtype=np.float32)
    centre_row, centre_column = _centre_of_mass(digit)
    top = int(round(frame_height / 2 - centre_row))
    left = int(round(frame_width / 2 - centre_column))
    top = min(max(top, 0), frame_height - digit.shape[0])
    left = min(max(left, 0), frame_width - digit.shape[1])
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.repeat(np.rint(frame).astype(np.uint8)[..., None], channels, axis=-1)


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    total = image.sum()
    rows = np.arange(image.shape[0]) + 0.5
    columns = np.arange(image.shape[1]) + 0.5
    return float((image.sum(axis=1) * rows).sum() / total), float(
        (image.sum(axis=0) * columns).sum() / total
    )


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

    from kaggle_digits.engine.run_folder import pair_dir
    from kaggle_digits.engine.training import predict_probs
    from kaggle_digits.models import layers  # noqa: F401  (registers the custom layers)

    saved = read_json(run_dir / "config.json")
    if "sources" in saved:  # a blend: its source runs' ensembles, weighted
        return sum(
            weight * ensemble_probs(run_dir.parent / source, images)
            for source, weight in zip(saved["sources"], saved["weights"], strict=True)
            if weight > 0
        )
    config = CVConfig.from_dict(saved)
    total = None
    with framework_warnings_hidden():
        for fold in range(config.folds):
            for member, architecture in enumerate(config.members):
                model = load_model(pair_dir(run_dir, fold, member, architecture) / "model.keras")
                probs = predict_probs(model, images, config)
                total = probs if total is None else total + probs
    return total / (config.folds * len(config.members))


def load_model(path: Path):
    """A saved pair model, on whichever Keras backend this process runs (a .keras file holds
    no backend's code, so a model trained on one loads on any), or one line saying why not."""
    import keras

    try:
        return keras.saving.load_model(path)
    except FileNotFoundError:
        raise UserError(f"{path}: the model file is missing") from None
    except Exception as error:  # Keras raises ValueError, OSError, zipfile errors, ...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            f"{path}: cannot load the model with the {keras.backend.backend()} backend ({reason})"
        ) from None


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
    from kaggle_digits.engine.run_folder import find_run

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
    from kaggle_digits.base import plots

    return plots.predictions_figure(
        [p.photo for p in predictions],
        [p.box for p in predictions],
        np.stack([p.image for p in predictions]),
        np.stack([p.probs for p in predictions]),
        [Path(p.source).name for p in predictions],
        classes,
        path,
    )
