import zipfile

import numpy as np
import pytest
from helpers import assert_user_error, run_cli
from PIL import Image

from kaggle_digits.data.photo import mnist_style


def as_photo(image: np.ndarray, scale: int = 7, offset=(40, 110), size=(360, 300)) -> Image.Image:
    """A 28x28 digit as a user would photograph it: large, off-centre, dark ink on white."""
    big = Image.fromarray(255 - image.squeeze()).resize(
        (28 * scale, 28 * scale), Image.Resampling.BICUBIC
    )
    paper = Image.new("L", size, 255)
    paper.paste(big, offset)
    return paper


def predict(trained, *args):
    return run_cli(
        "--competition", trained.spec_path, "predict", "--runs-dir", trained.runs_dir, *args
    )


def test_mnist_style_recovers_a_scaled_shifted_inverted_digit(trained):
    from kaggle_digits.data.competition import load_competition
    from kaggle_digits.data.dataset import load_dataset

    dataset = load_dataset(load_competition(trained.spec_path), trained.data_dir)
    for image in dataset.train_images[:5]:
        processed = mnist_style(np.asarray(as_photo(image), dtype=np.float32), (28, 28, 1))
        assert processed.shape == (28, 28, 1) and processed.dtype == np.uint8
        correlation = np.corrcoef(processed.ravel().astype(float), image.ravel().astype(float))[
            0, 1
        ]
        assert correlation > 0.9


def test_own_images_are_recognised(trained, tmp_path):
    from kaggle_digits.data.competition import load_competition
    from kaggle_digits.data.dataset import load_dataset

    dataset = load_dataset(load_competition(trained.spec_path), trained.data_dir)
    paths, labels = [], []
    for label in range(10):
        row = int(np.flatnonzero(dataset.train_labels == label)[0])
        path = tmp_path / f"digit{label}.{'jpg' if label % 2 else 'png'}"
        as_photo(dataset.train_images[row]).convert("RGB").save(path)
        paths.append(path)
        labels.append(label)
    result = predict(trained, *paths)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 10
    predicted = [int(line.split(": ")[1].split()[0]) for line in lines]
    assert predicted == labels


def test_transparent_png_with_dark_ink(trained, tmp_path):
    from kaggle_digits.data.competition import load_competition
    from kaggle_digits.data.dataset import load_dataset

    dataset = load_dataset(load_competition(trained.spec_path), trained.data_dir)
    row = int(np.flatnonzero(dataset.train_labels == 7)[0])
    ink = np.asarray(as_photo(dataset.train_images[row]))
    rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)
    rgba[..., 3] = 255 - ink  # black ink whose opacity is the stroke, on a transparent sheet
    path = tmp_path / "seven.png"
    Image.fromarray(rgba, "RGBA").save(path)
    result = predict(trained, path, "--show", "--figure", tmp_path / "fig.png")
    assert result.exit_code == 0, result.output
    assert "seven.png: 7 " in result.stdout
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"


def test_csv_rows_are_predicted(trained):
    result = predict(trained, "--csv", trained.test_csv)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 50
    predicted = np.array([int(line.split(": ")[1].split()[0]) for line in lines])
    assert (predicted == trained.test_labels).mean() > 0.8
    assert lines[0].startswith("1: ")


def test_unreadable_and_blank_images(trained, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not really a png")
    assert_user_error(predict(trained, broken), "broken.png", "cannot read")
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    assert_user_error(predict(trained, blank), "blank.png", "no digit")
    assert_user_error(predict(trained, tmp_path / "missing.png"), "missing.png", "no such image")


def test_an_image_past_the_pixel_limit_is_one_line_saying_the_limit(trained, tmp_path, monkeypatch):
    """A decompression bomb (a 20,000 x 20,000 PNG, say) is refused before it is decoded;
    the limit is lowered here, so that the test's image stays small."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    large = tmp_path / "large.png"
    Image.new("L", (150, 150), 255).save(large)  # 22,500 pixels: past the limit (a warning)
    assert_user_error(predict(trained, large), "large.png", "too large", "10,000 pixels")
    huge = tmp_path / "huge.png"
    Image.new("L", (300, 300), 255).save(huge)  # past twice the limit (Pillow's error)
    assert_user_error(predict(trained, huge), "huge.png", "too large", "10,000 pixels")


def test_bad_csv(trained, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("pixel0,pixel1\n1,2\n")
    assert_user_error(predict(trained, "--csv", bad), "bad.csv", "header")


def test_predict_needs_input(trained):
    assert_user_error(predict(trained), "IMAGE", "--csv")


@pytest.mark.parametrize("name", ["nope"])
def test_unknown_run(trained, name):
    assert_user_error(predict(trained, "x.png", "--run", name), "nope", "no such run")


def test_a_model_that_cannot_be_loaded_is_one_line_naming_it(trained, tmp_path):
    import shutil

    runs_dir = tmp_path / "runs"
    run_dir = shutil.copytree(trained.run_dir, runs_dir / trained.run_dir.name)
    model = next(run_dir.glob("fold0/member0-*/model.keras"))

    def predict():
        return run_cli(
            "--competition", trained.spec_path, "predict", "--runs-dir", runs_dir,
            "--run", run_dir.name, "--csv", trained.test_csv,
        )  # fmt: skip

    model.write_bytes(model.read_bytes()[:1000])  # a copy cut short
    assert_user_error(predict(), f"damaged: {model} is cut short", "cv --resume")
    with zipfile.ZipFile(model, "w") as archive:  # whole, but no Keras model inside
        archive.writestr("config.json", "{}")
    assert_user_error(predict(), str(model), "cannot load the model with the tensorflow backend")
