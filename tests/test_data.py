import numpy as np
import pandas as pd
import pytest
from helpers import assert_user_error, run_cli

from kaggle_digits.data import dataset as data  # the local `dataset`s are its Datasets
from kaggle_digits.data.competition import load_competition


def info(small, *extra):
    return run_cli("--competition", small.spec_path, "--data-dir", small.data_dir, "info", *extra)


def test_load_returns_validated_uint8_images(small):
    competition = load_competition(small.spec_path)
    dataset = data.load_dataset(competition, small.data_dir)
    assert dataset.train_images.shape == (200, 28, 28, 1)
    assert dataset.train_images.dtype == np.uint8
    assert dataset.test_images.shape == (50, 28, 28, 1)
    assert dataset.train_labels.dtype == np.int64
    assert set(dataset.train_labels) == set(range(10))
    train = pd.read_csv(small.train_csv)
    assert (dataset.train_images[7].ravel() == train.iloc[7, 1:].to_numpy()).all()
    assert dataset.train_labels[7] == train.iloc[7, 0]


def test_second_load_comes_from_the_cache(small, monkeypatch):
    competition = load_competition(small.spec_path)
    first = data.load_dataset(competition, small.data_dir)
    assert (small.folder / data.CACHE_NAME).exists()

    def no_parsing(*args, **kwargs):
        raise AssertionError("the CSV was parsed again")

    monkeypatch.setattr(data, "read_train_csv", no_parsing)
    second = data.load_dataset(competition, small.data_dir)
    assert second.fingerprint == first.fingerprint
    assert np.array_equal(second.train_images, first.train_images)


def test_cache_is_rebuilt_when_a_csv_changes(small):
    competition = load_competition(small.spec_path)
    first = data.load_dataset(competition, small.data_dir)
    train = pd.read_csv(small.train_csv)
    train.loc[0, "label"] = (train.loc[0, "label"] + 1) % 10
    train.to_csv(small.train_csv, index=False)
    second = data.load_dataset(competition, small.data_dir)
    assert second.fingerprint != first.fingerprint
    assert second.train_labels[0] == (first.train_labels[0] + 1) % 10


def test_a_csv_saved_with_a_byte_order_mark_is_read(small):
    """Spreadsheets save "CSV UTF-8" with a byte-order mark before the first header."""
    competition = load_competition(small.spec_path)
    plain = data.load_dataset(competition, small.data_dir)
    for path in (small.train_csv, small.folder / "test.csv"):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    marked = data.load_dataset(competition, small.data_dir)
    assert marked.fingerprint != plain.fingerprint  # read from the CSVs, not the cache
    assert np.array_equal(marked.train_images, plain.train_images)
    assert np.array_equal(marked.train_labels, plain.train_labels)
    assert np.array_equal(marked.test_images, plain.test_images)


def test_a_cache_cut_short_is_rebuilt_with_one_line(small, capsys):
    competition = load_competition(small.spec_path)
    first = data.load_dataset(competition, small.data_dir)
    cache = small.folder / data.CACHE_NAME
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 3])
    capsys.readouterr()
    again = data.load_dataset(competition, small.data_dir)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "cache.npz: unreadable" in lines[0] and "rebuilding" in lines[0]
    assert np.array_equal(again.train_images, first.train_images)
    assert data.load_dataset(competition, small.data_dir).fingerprint == first.fingerprint
    assert capsys.readouterr().err == ""  # rebuilt: read from the cache again, quietly


def test_info_prints_statistics_and_saves_a_grid(small, tmp_path):
    png = tmp_path / "grid.png"
    result = info(small, "--output", png)
    assert result.exit_code == 0, result.output
    assert "(200, 28, 28, 1)" in result.stdout
    assert "(50, 28, 28, 1)" in result.stdout
    assert "label counts" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def rewrite(path, edit):
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(frame)
    frame.to_csv(path, index=False)


BAD_TRAIN = {
    "renamed column": (
        lambda f: f.rename(columns={"pixel5": "pixel_5"}, inplace=True),
        ["train.csv", "column 7", "'pixel_5'", "'pixel5'"],
    ),
    "extra column": (
        lambda f: f.insert(785, "extra", "0"),
        ["train.csv", "786 columns", "expected 785"],
    ),
    "missing value": (
        lambda f: f.loc.__setitem__((3, "pixel100"), ""),
        ["train.csv", "row 4", "'pixel100'", "missing"],
    ),
    "text value": (
        lambda f: f.loc.__setitem__((5, "pixel7"), "abc"),
        ["train.csv", "row 6", "'pixel7'", "'abc'", "not an integer"],
    ),
    "fractional value": (
        lambda f: f.loc.__setitem__((2, "pixel9"), "1.5"),
        ["train.csv", "row 3", "'pixel9'", "not an integer"],
    ),
    "pixel out of range": (
        lambda f: f.loc.__setitem__((9, "pixel300"), "256"),
        ["train.csv", "row 10", "'pixel300'", "256", "0-255"],
    ),
    "negative pixel": (
        lambda f: f.loc.__setitem__((1, "pixel0"), "-1"),
        ["train.csv", "row 2", "'pixel0'", "-1"],
    ),
    "unknown label": (
        lambda f: f.loc.__setitem__((8, "label"), "11"),
        ["train.csv", "row 9", "'label'", "11", "classes"],
    ),
    "too few rows": (
        lambda f: f.drop(index=[0, 1], inplace=True),
        ["train.csv", "198 rows", "expected 200"],
    ),
}


@pytest.mark.parametrize("case", BAD_TRAIN)
def test_bad_train_csv_is_one_clear_line(small, case):
    edit, fragments = BAD_TRAIN[case]
    rewrite(small.train_csv, edit)
    assert_user_error(info(small), *fragments)
    assert not (small.folder / data.CACHE_NAME).exists()


def test_a_header_line_repeated_inside_is_named_by_its_row(small):
    lines = small.train_csv.read_text().splitlines()
    lines.insert(42, lines[0])  # as when two CSVs are pasted together
    small.train_csv.write_text("\n".join(lines) + "\n")
    assert_user_error(info(small), "train.csv", "row 42,", "'label'", "not an integer")


def test_ragged_row_names_the_line(small):
    lines = small.test_csv.read_text().splitlines()
    lines[4] += ",0"
    small.test_csv.write_text("\n".join(lines) + "\n")
    assert_user_error(info(small), "test.csv", "row 4 (line 5)", "785 fields", "expected 784")


def test_bad_test_pixel_names_file_row_and_column(small):
    rewrite(small.test_csv, lambda f: f.loc.__setitem__((12, "pixel783"), "999"))
    assert_user_error(info(small), "test.csv", "row 13", "'pixel783'", "999")


def test_sample_submission_must_match_the_test_rows(small):
    rewrite(small.folder / "sample_submission.csv", lambda f: f.drop(index=[49], inplace=True))
    assert_user_error(info(small), "sample_submission.csv", "49 rows", "expected 50")


def test_sample_submission_ids_must_count_from_the_start(small):
    rewrite(
        small.folder / "sample_submission.csv", lambda f: f.loc.__setitem__((3, "ImageId"), "40")
    )
    assert_user_error(info(small), "sample_submission.csv", "row 4", "'ImageId'", "expected id 4")


@pytest.mark.parametrize(
    "encode, fragments",
    [
        (lambda text: text.encode("utf-16"), ["UTF-16 text", "save it as UTF-8"]),
        (lambda text: bytes(range(256)) * 40, ["binary", "NUL bytes"]),
        (lambda text: text.encode("latin-1") + b"\xe9,1\n", ["byte", "0xe9", "not a UTF-8"]),
        (lambda text: b"\xc3\x28" + text.encode(), ["byte 0 (0xc3)", "not a UTF-8"]),
    ],
    ids=["utf-16", "binary", "latin-1 tail", "garbage head"],
)
def test_a_csv_that_is_not_utf8_text_is_one_clear_line(small, encode, fragments):
    small.test_csv.write_bytes(encode(small.test_csv.read_text()))
    assert_user_error(info(small), "test.csv", *fragments)


def test_empty_file(small):
    small.test_csv.write_text("")
    assert_user_error(info(small), "test.csv", "empty")


def test_missing_data_says_to_download(small):
    small.train_csv.unlink()
    assert_user_error(info(small), "train.csv", "kaggle-digits download")


def test_missing_or_broken_spec(tmp_path, small):
    assert_user_error(
        run_cli("--competition", tmp_path / "nope.toml", "info"), "nope.toml", "not found"
    )
    broken = tmp_path / "broken.toml"
    broken.write_text('slug = "x"\n')
    assert_user_error(run_cli("--competition", broken, "info"), "broken.toml", "missing the field")


def test_the_shipped_spec_describes_the_real_competition():
    competition = load_competition()
    assert competition.slug == "digit-recognizer"
    assert competition.train_columns[:2] == ["label", "pixel0"]
    assert competition.train_columns[-1] == "pixel783"
    assert (competition.train_rows, competition.test_rows) == (42000, 28000)
    assert competition.submission_columns == ["ImageId", "Label"]


def test_a_read_only_data_folder_works(small, tmp_path, monkeypatch):
    """As in a Kaggle notebook, where /kaggle/input is a read-only mount: nothing is written
    beside the CSVs; the cache and the sample grid go to the user's cache folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    small.folder.chmod(0o555)
    # root may write into a folder without write permission: report what a read-only mount does
    monkeypatch.setattr(data, "is_writable", lambda folder: folder != small.folder)
    before = sorted(path.name for path in small.folder.iterdir())
    try:
        result = info(small)
        assert result.exit_code == 0, result.output
        user_cache = tmp_path / "user-cache" / "kaggle-digits" / small.folder.name
        assert (user_cache / data.CACHE_NAME).is_file()
        assert (user_cache / "samples.png").is_file()
        assert sorted(path.name for path in small.folder.iterdir()) == before
        competition = load_competition(small.spec_path)
        assert data.load_dataset(competition, small.data_dir).train_images.shape[0] == 200
    finally:
        small.folder.chmod(0o755)
