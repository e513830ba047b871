"""The competition spec: everything competition-specific, read from a TOML file."""

import hashlib
import math
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from kaggle_digits.errors import UserError

SPEC_NAME = "competition/digit-recognizer.toml"


def default_spec_path() -> Path:
    """The spec in the current project folder, else the one beside this source checkout."""
    here = Path(SPEC_NAME)
    if here.exists():
        return here
    return Path(__file__).resolve().parents[2] / SPEC_NAME


@dataclass(frozen=True)
class Competition:
    slug: str
    title: str
    metric: str
    train_file: str
    test_file: str
    sample_submission_file: str
    label_column: str
    pixel_prefix: str
    image_shape: tuple[int, int, int]
    pixel_range: tuple[int, int]
    classes: tuple[int, ...]
    train_rows: int
    test_rows: int
    id_column: str
    id_start: int
    submission_label_column: str

    @property
    def pixel_columns(self) -> list[str]:
        return [f"{self.pixel_prefix}{i}" for i in range(math.prod(self.image_shape))]

    @property
    def train_columns(self) -> list[str]:
        return [self.label_column, *self.pixel_columns]

    @property
    def submission_columns(self) -> list[str]:
        return [self.id_column, self.submission_label_column]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def data_files(self) -> tuple[str, str, str]:
        return (self.train_file, self.test_file, self.sample_submission_file)

    @property
    def url(self) -> str:
        return f"https://www.kaggle.com/competitions/{self.slug}"

    def fingerprint(self) -> str:
        """A short hash of the spec, so caches built under another spec are not reused."""
        return hashlib.sha256(repr(sorted(asdict(self).items())).encode()).hexdigest()[:16]


def load_competition(path: Path | None = None) -> Competition:
    """Read a competition spec; a missing file or field is a UserError naming it."""
    path = Path(path) if path is not None else default_spec_path()
    try:
        spec = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: competition spec not found (pass --competition PATH)") from None
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: not valid TOML: {error}") from None
    try:
        files, data, submission = spec["files"], spec["data"], spec["submission"]
        return Competition(
            slug=spec["slug"],
            title=spec.get("title", spec["slug"]),
            metric=spec.get("metric", "accuracy"),
            train_file=files["train"],
            test_file=files["test"],
            sample_submission_file=files["sample_submission"],
            label_column=data["label_column"],
            pixel_prefix=data["pixel_prefix"],
            image_shape=tuple(data["image_shape"]),
            pixel_range=tuple(data["pixel_range"]),
            classes=tuple(data["classes"]),
            train_rows=int(data["train_rows"]),
            test_rows=int(data["test_rows"]),
            id_column=submission["id_column"],
            id_start=int(submission["id_start"]),
            submission_label_column=submission["label_column"],
        )
    except KeyError as error:
        raise UserError(f"{path}: competition spec is missing the field {error}") from None
