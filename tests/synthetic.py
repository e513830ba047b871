"""Small, learnable, Kaggle-shaped digit data that the tests make for themselves."""

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from kaggle_digits.data.photo import ink_to_frame

SLUG = "digit-recognizer"

SPEC = """
slug = "{slug}"
title = "Digit Recognizer (test)"
metric = "accuracy"

[files]
train = "train.csv"
test = "test.csv"
sample_submission = "sample_submission.csv"

[data]
label_column = "label"
pixel_prefix = "pixel"
image_shape = [28, 28, 1]
pixel_range = [0, 255]
classes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
train_rows = {train_rows}
test_rows = {test_rows}

[submission]
id_column = "ImageId"
id_start = 1
label_column = "Label"
"""


def make_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` MNIST-style 28x28 uint8 digits 0-9 (balanced) and their labels: each drawn
    large with a jittered font size, stroke, slant and position, then normalised the way
    MNIST was (cropped, scaled into 20x20, centred by centre of mass)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = np.zeros((count, 28, 28, 1), dtype=np.uint8)
    for index, label in enumerate(labels):
        font = ImageFont.load_default(size=int(rng.integers(40, 56)))
        canvas = Image.new("L", (64, 64), 0)
        draw = ImageDraw.Draw(canvas)
        x, y = 32 + rng.integers(-4, 5), 32 + rng.integers(-4, 5)
        draw.text(
            (x, y),
            str(label),
            fill=255,
            font=font,
            anchor="mm",
            stroke_width=int(rng.integers(1, 4)),
            stroke_fill=255,
        )
        canvas = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
        # a clean white-on-black canvas: its pixels are the ink, no photo to search
        images[index] = ink_to_frame(np.asarray(canvas, dtype=np.float32) / 255, (28, 28, 1))
    return images, labels.astype(np.int64)


@dataclass
class SmallCompetition:
    root: Path
    spec_path: Path
    data_dir: Path
    folder: Path
    test_labels: np.ndarray

    @property
    def train_csv(self) -> Path:
        return self.folder / "train.csv"

    @property
    def test_csv(self) -> Path:
        return self.folder / "test.csv"


def write_spec(root: Path, train_rows: int, test_rows: int) -> Path:
    spec_path = root / "competition.toml"
    spec_path.write_text(SPEC.format(slug=SLUG, train_rows=train_rows, test_rows=test_rows))
    return spec_path


def competition_frames(train_rows: int, test_rows: int, seed: int = 0):
    """(train, test, sample_submission) frames in Kaggle's format, and the test labels."""
    images, labels = make_digits(train_rows + test_rows, seed)
    pixels = images.reshape(len(images), -1)
    columns = [f"pixel{i}" for i in range(784)]
    train = pd.DataFrame(pixels[:train_rows], columns=columns)
    train.insert(0, "label", labels[:train_rows])
    test = pd.DataFrame(pixels[train_rows:], columns=columns)
    sample = pd.DataFrame({"ImageId": np.arange(1, test_rows + 1), "Label": 0})
    return train, test, sample, labels[train_rows:]


def write_competition(root: Path, train_rows: int = 200, test_rows: int = 50) -> SmallCompetition:
    """A spec and data/<slug>/{train,test,sample_submission}.csv under root."""
    folder = root / "data" / SLUG
    folder.mkdir(parents=True, exist_ok=True)
    train, test, sample, test_labels = competition_frames(train_rows, test_rows)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    sample.to_csv(folder / "sample_submission.csv", index=False)
    spec_path = write_spec(root, train_rows, test_rows)
    return SmallCompetition(root, spec_path, root / "data", folder, test_labels)


def kannada_frames(train_rows: int, test_rows: int, seed: int = 1):
    """Frames in Kannada-MNIST's format: test.csv starts with an `id` column, ids run from
    0, and the sample submission is `id,label`."""
    train, test, _, test_labels = competition_frames(train_rows, test_rows, seed)
    test.insert(0, "id", np.arange(test_rows))
    sample = pd.DataFrame({"id": np.arange(test_rows), "label": 0})
    return train, test, sample, test_labels


def kannada_spec(root: Path, slug: str, train_rows: int, test_rows: int) -> Path:
    """The project's own competition/kannada-mnist.toml with its slug and row counts changed."""
    project_spec = Path(__file__).resolve().parents[1] / "competition" / "kannada-mnist.toml"
    text = project_spec.read_text()
    for field, value in (
        ("slug", f'"{slug}"'),
        ("train_rows", str(train_rows)),
        ("test_rows", str(test_rows)),
    ):
        text = re.sub(rf"^{field} = .*$", f"{field} = {value}", text, count=1, flags=re.M)
    spec_path = root / "kannada-like.toml"
    spec_path.write_text(text)
    return spec_path


def zip_frames(train, test, sample, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train.csv", train.to_csv(index=False))
        archive.writestr("test.csv", test.to_csv(index=False))
        archive.writestr("sample_submission.csv", sample.to_csv(index=False))
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return buffer.getvalue()


def competition_zip(train_rows: int, test_rows: int, extra: dict[str, bytes] | None = None):
    """The bytes of a Kaggle-shaped competition zip, and its hidden test labels."""
    train, test, sample, test_labels = competition_frames(train_rows, test_rows)
    return zip_frames(train, test, sample, extra), test_labels
