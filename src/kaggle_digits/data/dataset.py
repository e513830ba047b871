"""CSV files -> validated uint8 image arrays, cached next to the CSVs.

Every check names the file, the row and the column of the first problem it finds.
Rows are counted from 1 after the header, so row R is on line R + 1 of the file.
"""

import codecs
import csv
import hashlib
import os
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import atomic_path
from kaggle_digits.data.competition import Competition

CACHE_NAME = "cache.npz"


@dataclass(frozen=True)
class Dataset:
    train_images: np.ndarray  # uint8, N x H x W x C
    train_labels: np.ndarray  # int64, N
    test_images: np.ndarray  # uint8, M x H x W x C
    fingerprint: str  # sha256 of the CSV files and the spec that read them


def load_dataset(competition: Competition, data_root: Path) -> Dataset:
    """The competition's train and test images, from the cache when the CSVs are unchanged."""
    folder = Path(data_root) / competition.slug
    paths = [folder / name for name in competition.data_files]
    for path in paths:
        if not path.is_file():
            raise UserError(f"{path}: not found; run `kaggle-digits download` first")
    fingerprint = fingerprint_files(paths, salt=competition.fingerprint())
    cache = writable_folder(folder, competition.slug) / CACHE_NAME
    cached = _read_cache(cache, fingerprint)
    if cached is not None:
        return cached
    train_path, test_path, sample_path = paths
    train_images, train_labels = read_train_csv(train_path, competition)
    test_images, test_ids = read_test_csv(test_path, competition, competition.test_rows)
    sample_ids = read_sample_submission(sample_path, competition, expected_rows=len(test_images))
    if test_ids is not None:
        _check_ids_match(test_path, competition.test_id_column, test_ids, sample_path, sample_ids)
    dataset = Dataset(train_images, train_labels, test_images, fingerprint)
    _write_cache(cache, dataset)
    return dataset


def writable_folder(folder: Path, slug: str) -> Path:
    """Where files derived from the data go (the cache, the sample grid): beside the CSVs,
    unless that folder is read-only (a Kaggle notebook's /kaggle/input), then the user's cache
    folder ($XDG_CACHE_HOME or ~/.cache)/kaggle-digits/<slug>."""
    if is_writable(folder):
        return folder
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "kaggle-digits" / slug


def is_writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


def fingerprint_files(paths: list[Path], salt: str = "") -> str:
    digest = hashlib.sha256(salt.encode())
    for path in paths:
        with open(path, "rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


def read_train_csv(path: Path, competition: Competition) -> tuple[np.ndarray, np.ndarray]:
    frame = read_csv_checked(path, competition.train_columns)
    values = integer_values(frame, path)  # first: a stray line is named by its row
    _check_row_count(path, len(frame), competition.train_rows)
    labels = values[:, 0]
    bad = ~np.isin(labels, competition.classes)
    if bad.any():
        row = int(np.argmax(bad))
        raise UserError(
            f"{path}: row {row + 1}, column '{competition.label_column}': label {labels[row]} "
            f"is not one of the classes {list(competition.classes)}"
        )
    images = _pixels_to_images(values[:, 1:], path, competition)
    return images, labels.astype(np.int64)


def read_test_csv(
    path: Path, competition: Competition, expected_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The test images, and the ids of the test.csv's id column (None if it has none)."""
    frame = read_csv_checked(path, competition.test_columns)
    values = integer_values(frame, path)
    if expected_rows is not None:
        _check_row_count(path, len(frame), expected_rows)
    if not competition.test_id_column:
        return _pixels_to_images(values, path, competition), None
    return _pixels_to_images(values[:, 1:], path, competition), values[:, 0]


def _check_ids_match(
    test_path: Path, id_column: str, test_ids: np.ndarray, sample_path: Path, sample_ids: np.ndarray
) -> None:
    """Predictions are written in test.csv's row order under the sample submission's ids, so
    the two files must list the same ids in the same order."""
    wrong = test_ids != sample_ids
    if wrong.any():
        row = int(np.argmax(wrong))
        raise UserError(
            f"{test_path}: row {row + 1}, column '{id_column}': id {test_ids[row]}, but "
            f"{sample_path.name} has {sample_ids[row]} on that row"
        )


def read_sample_submission(path: Path, competition: Competition, expected_rows: int) -> np.ndarray:
    """The sample submission's ids, checked to be id_start, id_start + 1, ... in order."""
    frame = read_csv_checked(path, competition.submission_columns)
    _check_row_count(path, len(frame), expected_rows)
    ids = integer_values(frame[[competition.id_column]], path)[:, 0]
    expected_ids = np.arange(competition.id_start, competition.id_start + expected_rows)
    wrong = ids != expected_ids
    if wrong.any():
        row = int(np.argmax(wrong))
        raise UserError(
            f"{path}: row {row + 1}, column '{competition.id_column}': "
            f"expected id {expected_ids[row]}, found {ids[row]}"
        )
    return ids


def read_csv_checked(path: Path, expected_columns: list[str]) -> pd.DataFrame:
    _check_text(path)
    _check_header(path, expected_columns)
    try:
        # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a byte-order mark
        return pd.read_csv(path, engine="c", encoding="utf-8-sig")
    except pd.errors.ParserError as error:
        raise UserError(f"{path}: {_describe_parser_error(error)}") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: {_not_utf8(error)}") from None


def _check_text(path: Path, sample_bytes: int = 1 << 16) -> None:
    """A CSV must be UTF-8 text: a binary file or a UTF-16 one (saved by mistake) is refused
    here, with one line, rather than deep inside the parser."""
    with open(path, "rb") as file:
        sample = file.read(sample_bytes)
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in sample:
        kind = (
            "UTF-16 text"
            if sample[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
            else ("binary (it holds NUL bytes)")
        )
        raise UserError(f"{path}: not a UTF-8 text CSV: the file is {kind}; save it as UTF-8 CSV")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: {_not_utf8(error)}") from None


def _not_utf8(error: UnicodeDecodeError) -> str:
    return (
        f"not a UTF-8 text CSV: byte {error.start} (0x{error.object[error.start]:02x}) "
        "cannot be decoded; save it as UTF-8 CSV"
    )


def _check_header(path: Path, expected: list[str]) -> None:
    with open(path, newline="", encoding="utf-8-sig") as file:
        header = next(csv.reader(file), None)
    if not header:
        raise UserError(f"{path}: the file is empty; expected the header {_preview(expected)}")
    for index, (found, wanted) in enumerate(zip(header, expected, strict=False)):
        if found != wanted:
            raise UserError(f"{path}: header column {index + 1} is '{found}', expected '{wanted}'")
    if len(header) != len(expected):
        raise UserError(
            f"{path}: the header has {len(header)} columns, expected {len(expected)} "
            f"({_preview(expected)})"
        )


def _preview(columns: list[str]) -> str:
    shown = ",".join(columns[:3])
    return f"{shown},...,{columns[-1]}" if len(columns) > 4 else ",".join(columns)


def _describe_parser_error(error: Exception) -> str:
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
    if not match:
        return f"cannot parse the CSV ({error})"
    expected, line, saw = (int(group) for group in match.groups())
    return f"row {line - 1} (line {line}) has {saw} fields, expected {expected}"


def _check_row_count(path: Path, rows: int, expected: int) -> None:
    if rows != expected:
        raise UserError(f"{path}: has {rows} rows, expected {expected}")


def integer_values(frame: pd.DataFrame, path: Path) -> np.ndarray:
    """The frame as an int64 array, or a UserError at the first missing or non-integer cell."""
    bad_cells = []  # (row, column) of the first bad cell of each column that has one
    for column in frame.columns:
        if pd.api.types.is_integer_dtype(frame[column]):
            continue
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = numbers.isna().to_numpy() | (numbers.to_numpy() % 1 != 0)
        if bad.any():
            bad_cells.append((int(np.argmax(bad)), column))
    if bad_cells:
        row, column = min(bad_cells, key=lambda cell: cell[0])
        value = frame[column].iloc[row]
        what = "is missing" if pd.isna(value) else f"is '{value}', not an integer"
        raise UserError(f"{path}: row {row + 1}, column '{column}': the value {what}")
    return frame.to_numpy(dtype=np.int64)


def _pixels_to_images(pixels: np.ndarray, path: Path, competition: Competition) -> np.ndarray:
    low, high = competition.pixel_range
    outside = (pixels < low) | (pixels > high)
    if outside.any():
        row, column = np.argwhere(outside)[0]
        name = competition.pixel_columns[column]
        raise UserError(
            f"{path}: row {row + 1}, column '{name}': pixel {pixels[row, column]} "
            f"is outside {low}-{high}"
        )
    return pixels.astype(np.uint8).reshape(-1, *competition.image_shape)


def _read_cache(path: Path, fingerprint: str) -> Dataset | None:
    """The cached arrays, or None: no cache, one of other CSVs or of another version (rebuilt
    quietly), or one that cannot be read (cut short, damaged: rebuilt, with a line saying so)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as cache:
            if str(cache["fingerprint"]) != fingerprint:
                return None
            return Dataset(
                cache["train_images"], cache["train_labels"], cache["test_images"], fingerprint
            )
    except KeyError:
        return None  # written by another version
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        print(f"{path}: unreadable ({error}); rebuilding it from the CSVs", file=sys.stderr)
        return None


def _write_cache(path: Path, dataset: Dataset) -> None:
    with atomic_path(path) as tmp:
        np.savez(
            tmp,
            train_images=dataset.train_images,
            train_labels=dataset.train_labels,
            test_images=dataset.test_images,
            fingerprint=np.array(dataset.fingerprint),
        )
