"""What `kaggle-digits serve` shows of a run, as plain data that its page and the tests read:
a run's ensemble kept loaded (Ensemble: each member's probabilities and vote), an image
prepared as `predict` prepares a photo, the out-of-fold confusion matrix and the mistakes
behind each of its cells, the test rows the ensemble is least sure of, and two runs side by
side."""

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import confusion_matrix

from kaggle_digits.base.errors import UserError
from kaggle_digits.data.competition import Competition
from kaggle_digits.data.dataset import Dataset
from kaggle_digits.data.photo import find_digit, ink_to_frame, read_image
from kaggle_digits.options.config import CVConfig
from kaggle_digits.store import run_files
from kaggle_digits.store.members import load_model, trained_runs


@dataclass(frozen=True)
class Member:
    name: str  # "fold 2 strided-cnn", or "<source run>/fold 2 strided-cnn" in a blend
    weight: float  # its share of the ensemble's probabilities
    model: object  # a loaded keras.Model
    config: CVConfig  # its run's, for the test-time views


class Ensemble:
    """A complete run's models, loaded once: the weighted mean of their probabilities (the
    mean of a run's models; a blend: its sources' ensembles, weighted), each model's own
    probabilities kept beside it."""

    def __init__(self, run_dir: Path) -> None:
        self.members: list[Member] = []
        for run in trained_runs(run_dir):
            for fold, member, architecture in run.pairs:
                model = load_model(run.model_path(fold, member, architecture))
                name = f"{run.prefix}fold {fold + 1} {architecture}"
                self.members.append(Member(name, run.weight / len(run.pairs), model, run.config))

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ensemble's probabilities (N x C) and each member's (M x N x C)."""
        # padded to a power of two: a model compiles once for each batch size it meets
        padded = np.zeros((1 << (len(images) - 1).bit_length(), *images.shape[1:]), images.dtype)
        padded[: len(images)] = images
        member_probs = np.stack([_probs(member, padded)[: len(images)] for member in self.members])
        weights = np.array([member.weight for member in self.members], dtype=np.float32)
        return np.tensordot(weights / weights.sum(), member_probs, axes=1), member_probs


def _probs(member: Member, images: np.ndarray) -> np.ndarray:
    """One model's probabilities with its run's test-time views, every view in one call (a
    call per view costs more than the arithmetic, for a drawing's one image)."""
    from kaggle_digits.training.fit import prediction_views

    views = [images, *prediction_views(images, member.config)]
    outputs = member.model.predict_on_batch(np.concatenate(views))  # compiled once a shape
    return np.asarray(outputs).reshape(len(views), len(images), -1).mean(axis=0)


# --- an image, as `predict` prepares a photo ---------------------------------------------


@dataclass(frozen=True)
class PreparedImage:
    image: np.ndarray  # the H x W x C uint8 image the models see
    box: tuple[float, float, float, float]  # where the digit was found, as fractions of the
    # photo's width and height: left, top, right, bottom


def prepare_upload(
    content: bytes, name: str, competition: Competition, drawing: bool = False
) -> PreparedImage:
    """An uploaded photo, or a drawing of the page's canvas, read and framed as `predict`
    frames a photo (scaled into MNIST's box, centred by its centre of mass); a file that is
    not an image is one line, as `predict` says it. A drawing is clean dark ink on white:
    its pixels are the ink, with no photo's paper, shadows and ruled lines to search."""
    photo = read_image(io.BytesIO(content), name)
    height, width = photo.shape[:2]
    if drawing:
        ink = 1 - photo.min(axis=2).astype(np.float32) / 255
        rows, columns = np.nonzero(ink > 0.05)
        if not len(rows):
            raise UserError(f"{name}: the drawing is empty; draw a digit")
        top, left = rows.min(), columns.min()
        bottom, right = rows.max() + 1, columns.max() + 1
        ink = ink[top:bottom, left:right]
    else:
        found = find_digit(photo, name)
        top, left, bottom, right = found.box
        ink = found.ink
    box = (left / width, top / height, right / width, bottom / height)
    return PreparedImage(ink_to_frame(ink, competition.image_shape), box)


def png_data_url(image: np.ndarray) -> str:
    """A uint8 image (H x W x C) as a PNG data URL, for an <img> of the page."""
    buffer = io.BytesIO()
    channels = image.shape[-1] if image.ndim == 3 else 1
    pixels = image[..., 0] if channels == 1 else image
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# --- a run's out-of-fold errors ------------------------------------------------------------


@dataclass(frozen=True)
class RunErrors:
    """A complete run's out-of-fold predictions against the training labels."""

    oof_probs: np.ndarray
    labels: np.ndarray
    fold_of_row: np.ndarray

    @classmethod
    def of(cls, run_dir: Path, dataset: Dataset) -> "RunErrors":
        oof_probs = run_files.read_oof_probs(run_dir)
        if len(oof_probs) != len(dataset.train_labels):
            raise UserError(f"{Path(run_dir).name}: the run was made on other data")
        return cls(oof_probs, dataset.train_labels, run_files.read_folds(run_dir))

    @property
    def predicted(self) -> np.ndarray:
        return self.oof_probs.argmax(axis=1)

    def confusion(self) -> list[list[int]]:
        """counts[true][predicted], as cv.finish_run plots it"""
        classes = range(self.oof_probs.shape[1])
        return confusion_matrix(self.labels, self.predicted, labels=classes).tolist()

    def fold_accuracies(self) -> list[float]:
        right = self.predicted == self.labels
        folds = np.unique(self.fold_of_row)
        return [float(right[self.fold_of_row == fold].mean()) for fold in folds]

    def mistakes(self, true: int | None = None, predicted: int | None = None) -> np.ndarray:
        """The training rows (0-based) the run gets wrong, of class `true` called
        `predicted` where given, the most confident mistakes first."""
        wrong = self.predicted != self.labels
        if true is not None:
            wrong &= self.labels == true
        if predicted is not None:
            wrong &= self.predicted == predicted
        rows = np.flatnonzero(wrong)
        confidence = self.oof_probs[rows, self.predicted[rows]]
        return rows[np.argsort(-confidence, kind="stable")]


def row_cards(rows: np.ndarray, images: np.ndarray, probs: np.ndarray, labels=None) -> list[dict]:
    """Rows as the page shows them: row number (1-based, as in the CSV), image, the
    predicted class and its probability, the true class where known."""
    cards = []
    for row in rows:
        predicted = int(probs[row].argmax())
        card = {
            "row": int(row) + 1,
            "predicted": predicted,
            "confidence": round(float(probs[row, predicted]), 4),
            "image": png_data_url(images[row]),
        }
        if labels is not None:
            card["true"] = int(labels[row])
        cards.append(card)
    return cards


def least_sure_test_rows(test_probs: np.ndarray) -> np.ndarray:
    """The test rows (0-based) whose top two classes are closest: the likeliest to cost
    leaderboard places."""
    top_two = np.sort(test_probs, axis=1)[:, -2:]
    return np.argsort(top_two[:, 1] - top_two[:, 0], kind="stable")


def compare(first: RunErrors, second: RunErrors) -> dict:
    """Two runs on the same training rows: their scores, and the rows one gets right and the
    other wrong."""
    right_first = first.predicted == first.labels
    right_second = second.predicted == second.labels
    return {
        "oof_accuracy": [float(right_first.mean()), float(right_second.mean())],
        "fold_accuracies": [first.fold_accuracies(), second.fold_accuracies()],
        "confusion": [first.confusion(), second.confusion()],
        "only_first_right": np.flatnonzero(right_first & ~right_second),
        "only_second_right": np.flatnonzero(~right_first & right_second),
    }


def run_overview(run_dir: Path) -> dict:
    """A run's options, scores and figures, for its page."""
    run_dir = Path(run_dir)
    return {
        "config": run_files.read_options(run_dir),  # a run not yet settled: its options as asked
        "metrics": run_files.metrics_if_any(run_dir),
        "figures": run_files.figure_files(run_dir),
    }
