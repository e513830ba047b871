"""`make photos`: `predict` on phone-photo-like digits that no model trained on. Never in CI.

A stratified 20% of train.csv is withheld (the split of `make holdout`); a `quick` run is
trained on the rest (or `--run` names one trained that way). Each withheld digit is made
into a photo of one kind (tests/photos.py: ruled paper with blue lines and a red margin, a
shadow edge, light falling off towards a corner, a small digit far off-centre in a 3000x2250
frame, blue ink, thick marker, pencil, a 15° tilt), plus two easy kinds: dark ink on plain
white paper, and the 28x28 image itself. Prints the accuracy per kind of `predict`'s image
processing before this project handled photos (one global ink level, kept here as
`before_mnist_style`) and now, on the same photos, with the same models.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import check_data  # sets TF_CPP_MIN_LOG_LEVEL first
from holdout import split_competition
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from photos import KINDS, photo  # noqa: E402

from kaggle_digits.data.competition import load_competition  # noqa: E402
from kaggle_digits.data.photo import centre_of_mass, mnist_style  # noqa: E402
from kaggle_digits.kaggle_api.download import extract_zip  # noqa: E402

EASY_KINDS = ("plain", "mnist")


def before_mnist_style(gray: np.ndarray) -> np.ndarray:
    """`predict`'s processing before photos were handled: paper = the border's median, ink =
    anything 20% of the darkest ink or darker, cropped, scaled into 20x20, centred."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    paper = float(np.median(border))
    ink = np.clip(gray - paper if paper < 128 else paper - gray, 0, None)
    if ink.max() <= 0:
        return np.zeros((28, 28, 1), dtype=np.uint8)
    ink[ink < 0.2 * ink.max()] = 0
    rows, columns = np.nonzero(ink)
    ink = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1] / ink.max() * 255
    scale = 20 / max(ink.shape)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    digit = np.clip(np.asarray(Image.fromarray(ink.astype(np.float32)).resize(size)), 0, 255)
    frame = np.zeros((28, 28), dtype=np.float32)
    centre_row, centre_column = centre_of_mass(digit)
    top = min(max(int(round(14 - centre_row)), 0), 28 - digit.shape[0])
    left = min(max(int(round(14 - centre_column)), 0), 28 - digit.shape[1])
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.rint(frame).astype(np.uint8)[..., None]


def picture(digit: np.ndarray, kind: str, seed: int) -> Image.Image:
    if kind == "mnist":
        return Image.fromarray(digit.squeeze()).convert("RGB")
    if kind == "plain":  # dark ink, loosely cropped, on white paper: what `predict` read well
        big = Image.fromarray(255 - digit.squeeze()).resize((196, 196), Image.Resampling.BICUBIC)
        paper = Image.new("L", (360, 300), 255)
        paper.paste(big, (40 + seed % 50, 60 + seed % 40))
        return paper.convert("RGB")
    return photo(digit, kind, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="the competition zip")
    parser.add_argument("--run", type=Path, help="a run trained on the holdout split's rows")
    parser.add_argument("--per-kind", type=int, default=30, help="photos of each kind")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/holdout"))
    args = parser.parse_args()
    check_data(args.data)
    from kaggle_digits.data.dataset import load_dataset
    from kaggle_digits.jobs.cv import run_cv
    from kaggle_digits.jobs.predict import ensemble_probs
    from kaggle_digits.options.presets import preset_config

    competition = load_competition()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        extract_zip(args.data, scratch / "full", competition.data_files)
        holdout, withheld_labels = split_competition(
            competition, scratch / "full", scratch, 0.2, 2024
        )
        withheld = load_dataset(holdout, scratch).test_images
        quick = preset_config("quick", holdout.priors)
        run_dir = args.run or run_cv(quick, holdout, scratch, args.runs_dir).run_dir
    print(f"run {run_dir}; withheld digits the run never trained on: {len(withheld)}")
    print(f"{'kind':10s} {'photos':>6s} {'before':>8s} {'now':>8s} {'s/photo now':>12s}")
    for index, kind in enumerate((*EASY_KINDS, *KINDS)):
        rows = np.arange(index * args.per_kind, (index + 1) * args.per_kind)
        pictures = [picture(withheld[row], kind, seed=int(row)) for row in rows]
        before = np.stack(
            [before_mnist_style(np.asarray(ImageOps.grayscale(p), np.float32)) for p in pictures]
        )
        started = time.perf_counter()
        now = np.stack([mnist_style(np.asarray(p), holdout.image_shape) for p in pictures])
        seconds = (time.perf_counter() - started) / len(pictures)
        accuracy = [
            float(np.mean(ensemble_probs(run_dir, images).argmax(1) == withheld_labels[rows]))
            for images in (before, now)
        ]
        print(
            f"{kind:10s} {len(rows):6d} {accuracy[0]:8.1%} {accuracy[1]:8.1%} {seconds:12.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
