"""`kaggle-digits predict`: the run's ensemble on your own images or on a test-format CSV.

Images are turned into MNIST-style digits the way MNIST itself was made: grayscale, white
ink on black, cropped to the ink, scaled to fit 20x20 keeping the aspect ratio, and placed in
a 28x28 frame so that the centre of mass sits at the centre.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kaggle_digits.competition import Competition
from kaggle_digits.config import CVConfig
from kaggle_digits.errors import UserError
from kaggle_digits.files import read_json

DIGIT_BOX = 20  # MNIST scales the digit's longer side to 20 pixels
FRAME = 28


@dataclass(frozen=True)
class Prediction:
    source: str
    image: np.ndarray  # the processed 28x28x1 uint8 image the models saw
    probs: np.ndarray

    @property
    def label(self) -> int:
        return int(self.probs.argmax())


def read_image(path: Path) -> np.ndarray:
    """A PNG/JPEG/... file as a float grayscale array (0 black ... 255 white)."""
    try:
        with Image.open(path) as image:
            image.load()
    except FileNotFoundError:
        raise UserError(f"{path}: no such image") from None
    except (UnidentifiedImageError, OSError) as error:
        raise UserError(f"{path}: cannot read the image ({error})") from None
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # transparent pixels count as white paper
        background = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(ImageOps.grayscale(image), dtype=np.float32)


def mnist_style(gray: np.ndarray, source: str = "image") -> np.ndarray:
    """A grayscale digit of any size and polarity -> a 28x28x1 uint8 MNIST-style digit."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    paper = float(np.median(border))
    ink = gray - paper if paper < 128 else paper - gray  # light-on-dark stays, dark-on-light flips
    ink = np.clip(ink, 0, None)
    if ink.max() <= 0:
        raise UserError(f"{source}: no digit found (the image is blank)")
    ink[ink < 0.2 * ink.max()] = 0  # paper texture and noise
    rows, columns = np.nonzero(ink)
    ink = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    ink = ink / ink.max() * 255

    height, width = ink.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = np.asarray(
        Image.fromarray(ink.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    )
    digit = np.clip(digit, 0, 255)

    frame = np.zeros((FRAME, FRAME), dtype=np.float32)
    centre_row, centre_column = _centre_of_mass(digit)
    top = int(round(FRAME / 2 - centre_row))
    left = int(round(FRAME / 2 - centre_column))
    top = min(max(top, 0), FRAME - digit.shape[0])
    left = min(max(left, 0), FRAME - digit.shape[1])
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.rint(frame).astype(np.uint8)[..., None]


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    total = image.sum()
    rows = np.arange(image.shape[0]) + 0.5
    columns = np.arange(image.shape[1]) + 0.5
    return float((image.sum(axis=1) * rows).sum() / total), float(
        (image.sum(axis=0) * columns).sum() / total
    )


def ensemble_probs(run_dir: Path, images: np.ndarray) -> np.ndarray:
    """The mean probabilities of every (fold, member) model saved in a run (for a blend, the
    weighted sum of its source runs')."""
    import keras

    from kaggle_digits import layers  # noqa: F401  (registers the custom layers)
    from kaggle_digits.cv import pair_dir
    from kaggle_digits.training import predict_probs

    saved = read_json(run_dir / "config.json")
    if "sources" in saved:  # a blend: its source runs' ensembles, weighted
        return sum(
            weight * ensemble_probs(run_dir.parent / source, images)
            for source, weight in zip(saved["sources"], saved["weights"], strict=True)
            if weight > 0
        )
    config = CVConfig.from_dict(saved)
    total = None
    for fold in range(config.folds):
        for member, architecture in enumerate(config.members):
            model = keras.saving.load_model(
                pair_dir(run_dir, fold, member, architecture) / "model.keras"
            )
            probs = predict_probs(model, images, config)
            total = probs if total is None else total + probs
    return total / (config.folds * len(config.members))


def predict_images(paths: list[Path], run_dir: Path) -> list[Prediction]:
    images = np.stack([mnist_style(read_image(path), str(path)) for path in paths])
    probs = ensemble_probs(run_dir, images)
    return [
        Prediction(str(path), image, p) for path, image, p in zip(paths, images, probs, strict=True)
    ]


def predict_csv(csv_path: Path, run_dir: Path, competition: Competition) -> list[Prediction]:
    from kaggle_digits.data import read_test_csv

    images = read_test_csv(Path(csv_path), competition)
    probs = ensemble_probs(run_dir, images)
    return [
        Prediction(f"{competition.id_start + row}", image, p)
        for row, (image, p) in enumerate(zip(images, probs, strict=True))
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
    from kaggle_digits.cv import find_run

    if not images and csv is None:
        raise UserError("give IMAGE files or --csv FILE")
    run_dir = find_run(runs_dir, run)
    if csv is not None:
        return predict_csv(csv, run_dir, competition)
    return predict_images(images, run_dir)


def describe(prediction: Prediction, classes: tuple[int, ...]) -> str:
    label = classes[prediction.label]
    spread = " ".join(f"{c}:{p:.3f}" for c, p in zip(classes, prediction.probs, strict=True))
    return f"{prediction.source}: {label} ({prediction.probs.max():.1%})   {spread}"


def save_figure(predictions: list[Prediction], classes: tuple[int, ...], path: Path) -> Path:
    from kaggle_digits import plots

    return plots.predictions_figure(
        np.stack([p.image for p in predictions]),
        np.stack([p.probs for p in predictions]),
        [Path(p.source).name for p in predictions],
        classes,
        path,
    )
