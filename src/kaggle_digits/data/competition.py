"""The competition spec: everything competition-specific, read from a TOML file.

`competition/<name>.toml` holds one competition: its files, the layout of its CSVs (label
and id columns, pixel columns, image shape, classes, row counts), its submission format,
and its images' priors (`[augment]`: what changes an image without changing its class).
A spec is found by path or by name (`--competition kannada-mnist`)."""

import hashlib
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from kaggle_digits.base.errors import UserError
from kaggle_digits.data.views import view_problem

SPEC_FOLDER = "competition"
DEFAULT_NAME = "digit-recognizer"


@dataclass(frozen=True)
class Priors:
    """What a competition's images allow: the spec's [augment] section. A field the spec
    leaves out takes the default here, safe for any image: no deskewing, no flips, small
    turns, zooms and shifts, shifted views. `presets`: a preset's own choices for these
    images ([augment.quick]), over the section's."""

    deskew: bool = False  # straighten slanted handwriting (a shear) in front of the net
    rotation: float = 10.0  # largest random turn while training, degrees
    zoom: float = 0.10  # largest random zoom, a share of the size
    shift: float = 0.10  # largest random move, a share of the size
    flip_horizontal: bool = False  # a mirrored image shows the same class
    flip_vertical: bool = False  # an image upside down shows the same class
    views: str = "shifts"  # test-time views: views.VIEW_KINDS joined by "+"
    stated: frozenset[str] = frozenset()  # the fields the spec gives
    presets: dict[str, dict] = field(default_factory=dict, hash=False)
    path: str = ""  # the spec's file, for messages

    def for_preset(self, preset: str) -> dict[str, object]:
        """The priors a run of `preset` takes: the section's, then the preset's own."""
        return {
            name: self.presets.get(preset, {}).get(name, getattr(self, name))
            for name in PRIOR_NAMES
        }

    def stated_for(self, preset: str) -> set[str]:
        """The fields of for_preset(preset) that the spec gives (not its defaults)."""
        return set(self.stated) | set(self.presets.get(preset, {}))


PRIOR_NAMES = ("deskew", "rotation", "zoom", "shift", "flip_horizontal", "flip_vertical", "views")


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
    test_id_column: str = ""  # a first column of ids in test.csv, if the competition has one
    priors: Priors = Priors()

    @property
    def pixel_columns(self) -> list[str]:
        return [f"{self.pixel_prefix}{i}" for i in range(math.prod(self.image_shape))]

    @property
    def train_columns(self) -> list[str]:
        return [self.label_column, *self.pixel_columns]

    @property
    def test_columns(self) -> list[str]:
        ids = [self.test_id_column] if self.test_id_column else []
        return [*ids, *self.pixel_columns]

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
        values = asdict(self)
        del values["priors"]  # how the images are trained on, not what the data is
        if not values["test_id_column"]:
            del values["test_id_column"]  # as before the field existed: older runs still match
        return hashlib.sha256(repr(sorted(values.items())).encode()).hexdigest()[:16]


def spec_folders() -> list[Path]:
    """Where specs are looked up by name: the current project, then this source checkout."""
    here = Path(SPEC_FOLDER)
    beside_source = Path(__file__).resolve().parents[3] / SPEC_FOLDER
    return [here] if here.resolve() == beside_source.resolve() else [here, beside_source]


def find_spec(name_or_path: str | Path | None) -> Path:
    """A spec's path, given a path or a name (`kannada-mnist`: competition/kannada-mnist.toml)."""
    given = str(name_or_path) if name_or_path is not None else DEFAULT_NAME
    path = Path(given)
    if path.suffix == ".toml" or path.is_file() or len(path.parts) > 1:
        return path
    for folder in spec_folders():
        candidate = folder / f"{given}.toml"
        if candidate.is_file():
            return candidate
    known = sorted({spec.stem for folder in spec_folders() for spec in folder.glob("*.toml")})
    raise UserError(
        f"no competition spec named '{given}' (known: {', '.join(known) or 'none'}; "
        "or pass --competition PATH.toml)"
    )


def load_competition(name_or_path: str | Path | None = None) -> Competition:
    """Read a competition spec; a missing file, or a missing or contradictory field, is a
    UserError naming it."""
    path = find_spec(name_or_path)
    try:
        spec = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"{path}: competition spec not found (pass --competition NAME|PATH)"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: not valid TOML: {error}") from None
    fields = SpecFields(spec, path)
    competition = Competition(
        slug=fields.text("slug"),
        title=fields.text("title", default=spec.get("slug", "")),
        metric=fields.text("metric", default="accuracy"),
        train_file=fields.text("files.train"),
        test_file=fields.text("files.test"),
        sample_submission_file=fields.text("files.sample_submission"),
        label_column=fields.text("data.label_column"),
        pixel_prefix=fields.text("data.pixel_prefix"),
        image_shape=fields.integers("data.image_shape", length=3, minimum=1),
        pixel_range=fields.integers("data.pixel_range", length=2, minimum=0),
        classes=fields.integers("data.classes", minimum=0),
        train_rows=fields.integer("data.train_rows", minimum=1),
        test_rows=fields.integer("data.test_rows", minimum=1),
        test_id_column=fields.text("data.test_id_column", default=""),
        id_column=fields.text("submission.id_column"),
        id_start=fields.integer("submission.id_start", minimum=0),
        submission_label_column=fields.text("submission.label_column"),
        priors=read_priors(spec.get("augment", {}), path),
    )
    check_consistent(competition, path)
    return competition


def read_priors(section: object, path: Path) -> Priors:
    """The spec's [augment] section: each field checked, unknown and contradictory ones named;
    a sub-table ([augment.quick]) holds one preset's own fields."""
    if not isinstance(section, dict):
        raise UserError(f"{path}: 'augment' must be a section ([augment]), not {section!r}")
    stated = {name: value for name, value in section.items() if not isinstance(value, dict)}
    own = {name: value for name, value in section.items() if isinstance(value, dict)}
    values = read_prior_fields(stated, "augment", path)
    presets = {
        preset: read_prior_fields(table, f"augment.{preset}", path) for preset, table in own.items()
    }
    priors = Priors(**values, stated=frozenset(values), presets=presets, path=str(path))
    for preset in ("", *presets):
        check_priors(priors.for_preset(preset), f"augment.{preset}" if preset else "augment", path)
    return priors


def read_prior_fields(section: dict, where: str, path: Path) -> dict:
    """One table of priors, each field of the type and range Priors takes."""
    defaults = {item.name: item.default for item in fields(Priors) if item.name in PRIOR_NAMES}
    unknown = sorted(set(section) - set(PRIOR_NAMES))
    if unknown:
        raise UserError(
            f"{path}: unknown field '{where}.{unknown[0]}' (known: {', '.join(PRIOR_NAMES)})"
        )
    read = {}
    for name, value in section.items():
        wanted = type(defaults[name])
        if wanted is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, wanted):
            raise UserError(
                f"{path}: field '{where}.{name}' is {value!r}, expected {PRIOR_TYPES[wanted]}"
            )
        read[name] = value
    return read


PRIOR_TYPES = {bool: "true or false", float: "a number", str: "a string"}
PRIOR_RANGES = {"rotation": (0.0, 180.0), "zoom": (0.0, 0.9), "shift": (0.0, 0.9)}


def check_priors(values: dict, where: str, path: Path) -> None:
    """Ranges, and views that the training's flips allow."""
    for name, (low, high) in PRIOR_RANGES.items():
        if not low <= values[name] <= high:
            raise UserError(
                f"{path}: field '{where}.{name}' is {values[name]!r}, expected a number from "
                f"{low:g} to {high:g}"
            )
    flips = values["flip_horizontal"], values["flip_vertical"]
    problem = view_problem(values["views"], *flips, "set flip_horizontal = true, or drop flips")
    if problem:
        raise UserError(f"{path}: field '{where}.views': {problem}")


class SpecFields:
    """Typed reads of dotted fields (`data.classes`), each error naming the field."""

    def __init__(self, spec: dict, path: Path) -> None:
        self.spec, self.path = spec, path

    def _get(self, name: str, default=None):
        value = self.spec
        for part in name.split("."):
            if not isinstance(value, dict) or part not in value:
                if default is not None:
                    return default
                raise UserError(f"{self.path}: competition spec is missing the field '{name}'")
            value = value[part]
        return value

    def _wrong(self, name: str, value, wanted: str) -> UserError:
        return UserError(f"{self.path}: field '{name}' is {value!r}, expected {wanted}")

    def text(self, name: str, default: str | None = None) -> str:
        value = self._get(name, default)
        if not isinstance(value, str) or (default is None and not value.strip()):
            raise self._wrong(name, value, "a non-empty string")
        return value

    def integer(self, name: str, minimum: int) -> int:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._wrong(name, value, f"an integer ≥ {minimum}")
        return value

    def integers(self, name: str, minimum: int, length: int | None = None) -> tuple[int, ...]:
        value = self._get(name)
        wanted = f"a list of {length or 'one or more'} integers ≥ {minimum}"
        if not isinstance(value, list) or not value or (length and len(value) != length):
            raise self._wrong(name, value, wanted)
        if any(
            isinstance(item, bool) or not isinstance(item, int) or item < minimum for item in value
        ):
            raise self._wrong(name, value, wanted)
        return tuple(value)


def check_consistent(competition: Competition, path: Path) -> None:
    """Fields that contradict each other, named."""
    low, high = competition.pixel_range
    problems = {
        "data.pixel_range": (low >= high, f"{[low, high]}: the low end must be below the high end"),
        "data.classes": (
            len(set(competition.classes)) != len(competition.classes)
            or len(competition.classes) < 2,
            f"{list(competition.classes)}: needs two or more distinct classes",
        ),
        "submission.label_column": (
            competition.submission_label_column == competition.id_column,
            f"'{competition.id_column}' is also submission.id_column",
        ),
        "data.test_id_column": (
            competition.test_id_column.startswith(competition.pixel_prefix)
            and competition.test_id_column[len(competition.pixel_prefix) :].isdigit(),
            f"'{competition.test_id_column}' is the name of a pixel column",
        ),
        "files": (
            len(set(competition.data_files)) != 3,
            f"train, test and sample_submission must be three different files, not "
            f"{list(competition.data_files)}",
        ),
    }
    for name, (wrong, why) in problems.items():
        if wrong:
            raise UserError(f"{path}: field '{name}' contradicts the spec: {why}")
