"""`predict` on phone-photo-like pictures: ruled paper, a shadow edge, light falling off,
a small digit far off-centre, blue ink, marker, pencil, a tilt (tests/photos.py makes them)."""

import numpy as np
import pytest
from helpers import assert_user_error, run_cli
from photos import KINDS, photo
from PIL import Image
from synthetic import make_digits

from kaggle_digits.data.photo import mnist_style

SHAPE = (28, 28, 1)


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    image = image.squeeze().astype(float)
    rows, columns = np.mgrid[0 : image.shape[0], 0 : image.shape[1]] + 0.5
    return (image * rows).sum() / image.sum(), (image * columns).sum() / image.sum()


@pytest.mark.parametrize("kind", KINDS)
def test_a_photo_becomes_the_centred_digit_without_lines_or_shadow(kind):
    digits, _ = make_digits(4, seed=11)
    for seed, digit in enumerate(digits):
        processed = mnist_style(np.asarray(photo(digit, kind, seed)), SHAPE)
        clean = mnist_style(digit.squeeze(), SHAPE)  # the same digit, scanned clean
        assert processed.shape == SHAPE and processed.dtype == np.uint8
        row, column = centre_of_mass(processed)
        assert abs(row - 14) < 1 and abs(column - 14) < 1
        ring = np.ones((28, 28), dtype=bool)
        ring[2:26, 2:26] = False
        assert processed.squeeze()[ring].max() == 0  # no line or shadow reaches the border
        similarity = np.corrcoef(processed.ravel().astype(float), clean.ravel().astype(float))
        assert similarity[0, 1] > 0.7, (kind, seed, similarity[0, 1])


def test_a_large_photo_with_a_small_digit_far_off_centre():
    digit = make_digits(1, seed=3)[0][0]
    picture = np.asarray(photo(digit, "small", seed=1))
    assert picture.shape[:2] == (2250, 3000)
    processed = mnist_style(picture, SHAPE)
    rows, columns = np.nonzero(processed.squeeze())
    assert max(np.ptp(rows), np.ptp(columns)) + 1 in (19, 20, 21)  # scaled up into MNIST's box


def predict(trained, *args):
    return run_cli(
        "--competition", trained.spec_path, "predict", "--runs-dir", trained.runs_dir, *args
    )


def test_a_folder_of_photos_is_predicted_without_framework_warnings(trained, tmp_path):
    from kaggle_digits.data.competition import load_competition
    from kaggle_digits.data.dataset import load_dataset

    dataset = load_dataset(load_competition(trained.spec_path), trained.data_dir)
    folder = tmp_path / "photos"
    folder.mkdir()
    expected = {}
    for index, kind in enumerate(KINDS):
        label = index % 10
        row = int(np.flatnonzero(dataset.train_labels == label)[1])
        name = f"{index}-{kind}.jpg"
        photo(dataset.train_images[row], kind, seed=index).save(folder / name)
        expected[name] = label
    (folder / "notes.txt").write_text("not an image")  # skipped: not an image file
    result = predict(trained, folder, "--show", "--figure", tmp_path / "why.png")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    predicted = {
        line.split(": ")[0].split("/")[-1]: int(line.split(": ")[1].split()[0])
        for line in lines
        if ": " in line
    }
    assert set(predicted) == set(expected)
    # a 200-row, 2-fold model of font digits: it may misread a thick marker stroke or a
    # 15° tilt (shapes it never saw), not a digit that the photo's light or lines obscure
    for name, label in expected.items():
        if not name.endswith(("marker.jpg", "tilted.jpg")):
            assert predicted[name] == label, result.stdout
    for noise in ("WARNING", "retracing", "Traceback"):
        assert noise not in result.output
    assert (tmp_path / "why.png").read_bytes()[:4] == b"\x89PNG"


def test_a_page_without_a_digit_is_one_line(trained, tmp_path):
    blank = np.zeros((28, 28, 1), dtype=np.uint8)
    path = tmp_path / "ruled-page.jpg"
    photo(blank, "ruled", seed=0).save(path)
    assert_user_error(predict(trained, path), "ruled-page.jpg", "no digit found")


def test_an_empty_folder_is_one_line(trained, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_user_error(predict(trained, tmp_path / "empty"), "empty", "no images")


def test_a_photo_taken_sideways_is_turned_upright_by_its_exif_orientation(tmp_path):
    digit = make_digits(1, seed=5)[0][0]
    upright = photo(digit, "blue", seed=2)
    path = tmp_path / "sideways.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view": the pixels are stored sideways
    upright.rotate(90, expand=True).save(path, exif=exif)
    from kaggle_digits.data.photo import read_image

    assert read_image(path).shape[:2] == np.asarray(upright).shape[:2]
