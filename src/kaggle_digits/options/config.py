"""One CVConfig carries every option of a cross-validation run. Presets are instances of it;
the CLI only overrides fields. It is saved as config.json beside the run's outputs."""

import dataclasses
import math
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from kaggle_digits.base.errors import UserError
from kaggle_digits.data.competition import PRIOR_RANGES
from kaggle_digits.data.views import view_problem, views_of

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# what --precision auto tries: float16 only on a GPU (a T4 has fast float16 and no fast
# bfloat16; CPUs emulate float16 slowly)
AUTO_PRECISIONS = {False: ("float32", "mixed_bfloat16"), True: PRECISIONS}
# the shortest --budget taken: below it, not even a fast machine fits the trial that plans
# the run, the workers' fresh start, one epoch and the finish (see docs/budget.md)
MIN_BUDGET_MINUTES = 1.0
MAX_SEED = 4_000_000  # a pair's seed, seed * 1000 + fold * 10 + member, stays below 2**32


@dataclass(frozen=True)
class CVConfig:
    preset: str = "default"
    folds: int = 5
    members: tuple[str, ...] = ("strided-cnn",)  # architectures, see architectures.ARCHITECTURES
    epochs: float = 8  # passes over a fold's training rows; a budget's plan chooses tenths
    # small batches: on a CPU the same time an image, four times the steps
    # (see docs/measurements.md#batch-size)
    batch_size: int = 32
    seed: int = 42
    learning_rate: float = 3e-3  # peak of the one-cycle schedule (warm-up, cosine decay)
    warmup_fraction: float = 0.15
    label_smoothing: float = 0.0
    # The images' priors: what the competition's spec says of them ([augment];
    # PRIOR_FIELDS), unless an option says otherwise. Random turns, zooms, shifts (and
    # flips where a mirrored image keeps its class) while training:
    augment: bool = True
    rotation_degrees: float = 10.0
    zoom: float = 0.10
    shift: float = 0.10
    flip_horizontal: bool = False
    flip_vertical: bool = False
    # straighten slanted handwriting in front of the net (layers.Deskew; see
    # docs/measurements.md#deskewing). False here, as in runs saved before it existed, whose
    # models have no such layer.
    deskew: bool = False
    tta: int = 0  # copies of each image averaged with it at prediction time (views.py)
    tta_views: str = "shifts"  # their kinds: shifts, rotations, flips, joined by "+"
    early_stopping: int = 0  # patience on the held-out fold; > 0 makes the CV score optimistic
    ema: float = 0.0  # momentum of an exponential moving average of the weights; 0: off
    # Train each epoch after the first on the rows the model finds hardest ("selective
    # backprop", Jiang et al., 2019): the fold's training rows are scored as the epoch before
    # ends, and a row whose loss is at percentile p of them is kept with probability
    # p ** select_hard, on average 1 / (1 + select_hard) of the rows; an epoch is then that
    # many rows. 0: every row, every epoch.
    select_hard: float = 0.0
    # the Keras dtype policy the nets are built with (PRECISIONS): "mixed_bfloat16" keeps the
    # weights in float32 and computes in bfloat16, faster where the hardware does bfloat16
    # (CPUs with AMX or AVX-512 BF16, recent GPUs) and slower where it is emulated;
    # "mixed_float16" likewise in float16, its loss scaled (Keras's LossScaleOptimizer) so
    # that small gradients survive: the fast path of GPUs without bfloat16 (a T4); "auto":
    # whichever a short trial finds faster here (trials.choose_precision; see
    # docs/measurements.md#precision)
    precision: str = "float32"
    budget_minutes: float = 0.0  # > 0: epochs (and members) chosen to finish in this time
    workers: int = 1  # pairs trained at once; 0: as the machine suits
    engine: str = "auto"  # how the pairs run (ENGINES)
    # where each field's value came from: option, spec, spec default, preset, trial
    chosen_by: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def whole_epochs(self) -> int:
        """Keras epochs that train `epochs` passes: a fraction of a pass adds an epoch, and the
        steps are spread evenly over them (epoch_steps)."""
        return math.ceil(round(self.epochs, 6))  # 12.000000001 passes are 12 epochs, not 13

    def epoch_steps(self, rows: int) -> tuple[int, int]:
        """How `epochs` passes over `rows` rows are trained: as whole Keras epochs of equal
        steps. Whole passes are epochs of one pass each; a fractional number of passes (a
        budget's plan chooses tenths) is spread over the next whole number of slightly
        shorter epochs. With select_hard, a pass is over the rows an epoch keeps."""
        steps_per_pass = math.ceil(self.epoch_rows(rows) / self.batch_size)
        total_steps = max(1, round(self.epochs * steps_per_pass))
        return self.whole_epochs, math.ceil(total_steps / self.whole_epochs)

    def epoch_rows(self, rows: int) -> int:
        """How many of a fold's `rows` training rows an epoch trains on (on average)."""
        return math.ceil(rows / (1 + self.select_hard))

    @property
    def views(self) -> tuple:
        """The test-time views this run may take, in order (the first `tta` are taken)."""
        return views_of(self.tta_views, self.flip_horizontal, self.flip_vertical)

    @property
    def optimistic(self) -> bool:
        """Whether anything is chosen on a fold's own held-out rows."""
        return self.early_stopping > 0

    @property
    def pair_names(self) -> list[tuple[int, int, str]]:
        """(fold, member, architecture) of each of the run's pairs, fold by fold."""
        return [
            (fold, member, architecture)
            for fold in range(self.folds)
            for member, architecture in enumerate(self.members)
        ]

    def given_as_option(self, name: str) -> bool:
        """Whether the field `name` was given as an option (so chosen_by says), which the
        trials and the budget then keep."""
        return self.chosen_by.get(name) == "option"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "CVConfig":
        known = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in values.items() if key in known}
        values["members"] = tuple(values.get("members", cls.members))
        values["chosen_by"] = dict(values.get("chosen_by") or {})
        return cls(**values)


# a spec's [augment] field -> the CVConfig field it sets
PRIOR_FIELDS = {
    "deskew": "deskew",
    "rotation": "rotation_degrees",
    "zoom": "zoom",
    "shift": "shift",
    "flip_horizontal": "flip_horizontal",
    "flip_vertical": "flip_vertical",
    "views": "tta_views",
}


ENGINES = ("auto", "in-process", "processes", "ray")


@dataclass(frozen=True)
class Option:
    """A `cv` option: the CVConfig field it sets. `execution`: how the pairs run, not what
    they learn, so a resumed run takes it from the resuming command. `rerun`: part of the
    printed command that trains the same run again."""

    field: str
    help: str
    flag: str = ""  # default: the field's name, --like-this
    metavar: str | None = None
    execution: bool = False
    rerun: bool = True

    @property
    def name(self) -> str:
        return self.flag or "--" + self.field.replace("_", "-")

    @property
    def negative_name(self) -> str:
        """A switch's off form: --no-like-this."""
        return self.name.replace("--", "--no-", 1)

    @property
    def type(self) -> type:
        """int, float, str, bool, or tuple (a comma-separated list on the command line)."""
        kind = CVConfig.__dataclass_fields__[self.field].type
        return tuple if getattr(kind, "__origin__", None) is tuple else kind

    def parse(self, value):
        """The field's value from the command line's."""
        if value is None or self.type is not tuple:
            return value
        return tuple(name.strip() for name in value.split(",") if name.strip())

    def format(self, value) -> str:
        """The option as a command line gives it."""
        if isinstance(value, bool):
            return self.name if value else self.negative_name
        if isinstance(value, tuple):
            return f"{self.name} {','.join(value)}"
        if isinstance(value, float):
            return f"{self.name} {value:g}"
        return f"{self.name} {value}"


# Every option of `cv` that sets a CVConfig field, in --help's order: the CLI, --resume and
# rerun_command read them from here
CV_OPTIONS = (
    Option(
        "folds",
        "Number of stratified folds (default: the preset's; a short --budget may take fewer "
        "unless you give it).",
    ),
    Option(
        "members",
        "Comma-separated architectures, e.g. fast-cnn,resnet (see --list-models).",
        metavar="A,B",
    ),
    Option("epochs", "Epochs per member; fractions too, e.g. 12.5. Replaces a preset's budget."),
    Option("batch_size", "Training batch size."),
    Option("seed", "Seed for folds, weights and augmentation."),
    Option(
        "tta",
        "Copies of each image averaged with it at prediction time (0: off; at most 12 shifts, "
        "6 rotations, and each mirrored where flips are allowed).",
    ),
    Option(
        "tta_views",
        "The copies' kinds: shifts (moved by 1-2 pixels), rotations (turned by 4, 8, 12 "
        "degrees either way), flips (mirrored; needs flips in training), or kinds joined by "
        "+, e.g. flips+shifts. Default: the spec's augment views.",
        metavar="KINDS",
    ),
    Option("label_smoothing", "Label smoothing, e.g. 0.05."),
    Option("augment", "Random turns, zooms, shifts (and flips) while training."),
    Option(
        "rotation_degrees",
        "Largest random turn while training, in degrees. Default: the spec's augment rotation.",
        flag="--rotation",
    ),
    Option("zoom", "Largest random zoom, e.g. 0.1 for 10%. Default: the spec's.", metavar="SHARE"),
    Option("shift", "Largest random move, e.g. 0.1 for 10%. Default: the spec's.", metavar="SHARE"),
    Option(
        "flip_horizontal",
        "Mirror left-right at random while training (a mirrored sneaker is a sneaker; a "
        "mirrored 2 is no 2). Default: the spec's.",
    ),
    Option("flip_vertical", "Turn upside down at random while training. Default: the spec's."),
    Option(
        "deskew",
        "Straighten slanted handwriting before the net. Default: the spec's augment deskew.",
    ),
    Option(
        "early_stopping",
        "Patience on each fold's held-out rows (makes the CV score optimistic).",
    ),
    Option(
        "budget_minutes",
        "Minutes for the whole run: times a few steps, then picks the epochs (and members) "
        "that fit. 0: off.",
        flag="--budget",
        rerun=False,  # the printed command gives the epochs the budget chose
    ),
    Option("ema", "Momentum of a moving average of the weights, e.g. 0.999 (0: off)."),
    Option(
        "select_hard",
        "Train each epoch after the first on the rows the model finds hardest: a row at loss "
        "percentile p is kept with probability p**X, 1/(1+X) of the rows (0: all rows; the "
        "default preset: 2).",
    ),
    Option(
        "precision",
        "The nets' Keras dtype policy: float32, mixed_bfloat16 (float32 weights, bfloat16 "
        "arithmetic: fast on CPUs with AMX or AVX-512 BF16 and on recent GPUs), "
        "mixed_float16 (float16 arithmetic with loss scaling: a T4's fast path) or auto "
        "(whichever a short trial finds fastest, float16 tried on a GPU only; the presets' "
        "choice).",
    ),
    Option(
        "workers",
        "Pairs trained at once, each with a share of the cores (0: one per core on a CPU, "
        "4 sharing a GPU).",
        execution=True,
    ),
    Option(
        "engine",
        "How the pairs run: in-process (one after another), processes (each in a worker "
        "process of its own), ray (Ray tasks, on this machine or the --ray cluster), or auto "
        "(ray with --ray; else processes for more than one worker, in-process for one).",
        execution=True,
    ),
)
OPTIONS_BY_FIELD = {option.field: option for option in CV_OPTIONS}


def execution_of(config: CVConfig) -> dict:
    """The fields of `config` that say how its pairs run (the execution options)."""
    return {
        option.field: getattr(config, option.field) for option in CV_OPTIONS if option.execution
    }


def validate(config: CVConfig) -> None:
    from kaggle_digits.models.architectures import ARCHITECTURES

    unknown = [name for name in config.members if name not in ARCHITECTURES]
    if unknown:
        raise UserError(
            f"unknown architecture {', '.join(unknown)} (known: {', '.join(sorted(ARCHITECTURES))})"
        )
    for option in CV_OPTIONS:
        value = getattr(config, option.field)
        if option.type is float and not math.isfinite(value):
            raise UserError(f"{option.name} must be a finite number, not {value}")
    hint = "give --flip-horizontal, or drop flips"
    problem = view_problem(config.tta_views, config.flip_horizontal, config.flip_vertical, hint)
    if problem:
        raise UserError(f"--tta-views: {problem}")
    for key, (low, high) in PRIOR_RANGES.items():  # as a spec's [augment] allows them
        option = OPTIONS_BY_FIELD[PRIOR_FIELDS[key]]
        if not low <= getattr(config, option.field) <= high:
            raise UserError(f"{option.name} must be from {low:g} to {high:g}")
    checks = {
        "--folds must be at least 2": config.folds >= 2,
        "--members needs at least one architecture": len(config.members) >= 1,
        "--epochs must be at least 1": config.epochs >= 1,
        "--batch-size must be at least 1": config.batch_size >= 1,
        f"--tta must be between 0 and {len(config.views)} for the views {config.tta_views}": 0
        <= config.tta
        <= len(config.views),
        "--ema must be 0 (off) or between 0 and 1": 0 <= config.ema < 1,
        "--label-smoothing must be at least 0 and below 1": 0 <= config.label_smoothing < 1,
        "--early-stopping must be 0 (off) or more": config.early_stopping >= 0,
        f"--seed must be between 0 and {MAX_SEED:,}": 0 <= config.seed <= MAX_SEED,
        "--select-hard must be 0 (off) or more": config.select_hard >= 0,
        f"--precision must be auto or one of {', '.join(PRECISIONS)}": config.precision
        in ("auto", *PRECISIONS),
        f"--budget must be 0 (off) or at least {MIN_BUDGET_MINUTES:g} minute: the trial that "
        "plans a run, a fresh start of its workers, an epoch and the finish take that long "
        "on a fast machine": config.budget_minutes == 0
        or config.budget_minutes >= MIN_BUDGET_MINUTES,
        "--workers must be 0 (automatic) or more": config.workers >= 0,
        f"--engine must be one of {', '.join(ENGINES)}": config.engine in ENGINES,
        "--engine in-process trains one pair at a time: drop --workers": config.engine
        != "in-process"
        or config.workers <= 1,
    }
    for message, ok in checks.items():
        if not ok:
            raise UserError(message)


def provenance(data_fingerprint: str) -> dict:
    """What else a result depends on: data, code version, packages, backend."""
    from kaggle_digits.machine.backend import backend_name

    packages = ["kaggle-digits", "keras", "tensorflow", "jax", "jaxlib", "torch", "numpy"]
    packages += ["scikit-learn", "pandas"]
    versions = {package: package_version(package) for package in packages}
    backend = backend_name()
    kernels = {}
    if backend == "tensorflow":
        # oneDNN's kernels round differently from Eigen's (see kaggle_digits/__init__.py)
        kernels["tf_onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    return {
        "data_fingerprint": data_fingerprint,
        "git_commit": git_commit(),
        "keras_backend": backend,
        **kernels,
        "python": platform.python_version(),
        "packages": versions,
    }


def package_version(package: str) -> str | None:
    """An installed package's version; None where it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """This checkout's commit (-dirty with uncommitted changes); None outside a git checkout."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}-dirty" if dirty else commit
