"""One CVConfig carries every option of a cross-validation run. Presets are instances of it;
the CLI only overrides fields. It is saved as config.json beside the run's outputs."""

import dataclasses
import math
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from kaggle_digits.errors import UserError

# Test-time views: the image moved by whole pixels (down, right), nearest first; small,
# short-trained nets gain the most (see docs/measurements.md#test-time-views)
TTA_SHIFTS = (
    (1, 0), (-1, 0), (0, 1), (0, -1),
    (2, 0), (-2, 0), (0, 2), (0, -2),
    (1, 1), (1, -1), (-1, 1), (-1, -1),
)  # fmt: skip

# Or the image turned by a few degrees (anticlockwise, clockwise), nearest first, and
# resampled (bilinear) as every training image is by the augmentation, where the test images
# are not (see docs/measurements.md#turned-test-time-views)
TTA_ROTATIONS = (4.0, -4.0, 8.0, -8.0, 12.0, -12.0)  # degrees
TTA_VIEWS = {"shifts": TTA_SHIFTS, "rotations": TTA_ROTATIONS}

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
    members: tuple[str, ...] = ("strided-cnn",)  # architectures, see models.ARCHITECTURES
    epochs: float = 8  # passes over a fold's training rows; a budget's plan chooses tenths
    # small batches: on a CPU the same time an image, four times the steps
    # (see docs/measurements.md#batch-size)
    batch_size: int = 32
    seed: int = 42
    learning_rate: float = 3e-3  # peak of the one-cycle schedule (warm-up, cosine decay)
    warmup_fraction: float = 0.15
    label_smoothing: float = 0.0
    augment: bool = True  # random rotation, zoom and shift while training; never flips
    rotation_degrees: float = 10.0
    zoom: float = 0.10
    shift: float = 0.10
    # straighten slanted handwriting in front of the net (layers.Deskew; see
    # docs/measurements.md#deskewing). The presets turn it on; False here, as in runs saved
    # before it existed, whose models have no such layer.
    deskew: bool = False
    tta: int = 0  # copies of each image averaged with it at prediction time (TTA_VIEWS)
    tta_views: str = "shifts"  # which copies: moved by whole pixels, or turned a few degrees
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
    def optimistic(self) -> bool:
        """Whether anything is chosen on a fold's own held-out rows."""
        return self.early_stopping > 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "CVConfig":
        known = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in values.items() if key in known}
        values["members"] = tuple(values.get("members", cls.members))
        return cls(**values)


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
        "6 rotations).",
    ),
    Option(
        "tta_views",
        "The copies: shifts (moved by 1-2 pixels) or rotations (turned by 4, 8, 12 degrees "
        "either way; the default preset's).",
    ),
    Option("label_smoothing", "Label smoothing, e.g. 0.05."),
    Option("augment", "Rotations, zooms, shifts."),
    Option("deskew", "Straighten slanted handwriting before the net."),
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


def scaled_learning_rate(learning_rate: float, batch_size: int, new_batch_size: int) -> float:
    """The learning rate for `new_batch_size` that matches `learning_rate` at `batch_size`:
    scaled by the square root of their ratio, as suits Adam (the gradient's noise falls with
    the square root of the batch)."""
    return learning_rate * math.sqrt(new_batch_size / batch_size)


# Each preset is a choice of fields; why each choice, with the runs that measured it:
# docs/presets.md and docs/measurements.md#the-presets-recipe
PRESETS = {
    # the whole cross-validation in under 5 minutes on a 2-core CPU: a small net, and 2 folds
    # that buy it three times the epochs of 4 (docs/measurements.md#two-folds-for-quick)
    "quick": CVConfig(
        preset="quick",
        folds=2,
        members=("tiny-cnn",),
        batch_size=256,
        learning_rate=6e-3,
        tta=4,  # shifted views (docs/measurements.md#test-time-views)
        deskew=True,
        budget_minutes=4.5,
        workers=0,
        precision="auto",
    ),
    # the best ensemble that fits an hour on a 2-core CPU: the plan leaves room for the
    # machine slowing down during the run; hard rows (docs/measurements.md#hard-rows) and
    # turned views (docs/measurements.md#turned-test-time-views)
    "default": CVConfig(
        deskew=True,
        tta=4,
        tta_views="rotations",
        budget_minutes=58,
        workers=0,
        select_hard=2.0,
        precision="auto",
    ),
    # one GPU: the best public recipe's 15 strided-cnns (3 a fold), batches four times the
    # default's at a square-root-scaled learning rate, pairs taking turns on the GPU
    # (docs/gpu.md)
    "gpu": CVConfig(
        preset="gpu",
        members=("strided-cnn",) * 3,
        batch_size=128,
        learning_rate=scaled_learning_rate(3e-3, 32, 128),
        deskew=True,
        tta=4,
        tta_views="rotations",
        budget_minutes=13,
        workers=0,
        precision="auto",
    ),
}


def preset_config(name: str, **overrides) -> CVConfig:
    """A preset with the given fields replaced; None means 'keep the preset's value'.

    Epochs given explicitly replace a preset's time budget: they are the run's length."""
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}' (choose from {', '.join(PRESETS)})")
    given = {key: value for key, value in overrides.items() if value is not None}
    if "epochs" in given and given.get("budget_minutes"):
        raise UserError("give --epochs or --budget, not both")
    if "epochs" in given:
        given.setdefault("budget_minutes", 0.0)
    config = dataclasses.replace(PRESETS[name], **given)
    validate(config)
    return config


def resume_overrides(overrides: dict) -> dict:
    """Of the options given with --resume, the execution ones (workers, engine), which apply
    to the resumed run; the run's saved options hold the others, so none may be given."""
    given = [OPTIONS_BY_FIELD[key] for key, value in overrides.items() if value is not None]
    refused = [option.name for option in given if not option.execution]
    if refused:
        raise UserError(f"--resume uses the run's saved options; drop {', '.join(refused)}")
    return {option.field: overrides[option.field] for option in given}


def rerun_command(config: CVConfig) -> str:
    """The cv command that trains exactly this configuration again, with no budget."""
    options = [f"--preset {config.preset}"] if config.preset in PRESETS else []
    base = PRESETS.get(config.preset, CVConfig())
    for option in CV_OPTIONS:
        value = getattr(config, option.field)
        if option.rerun and (value != getattr(base, option.field) or option.field == "epochs"):
            options.append(option.format(value))
    return "kaggle-digits cv " + " ".join(options)


def validate(config: CVConfig) -> None:
    from kaggle_digits.models import ARCHITECTURES

    unknown = [name for name in config.members if name not in ARCHITECTURES]
    if unknown:
        raise UserError(
            f"unknown architecture {', '.join(unknown)} (known: {', '.join(sorted(ARCHITECTURES))})"
        )
    for option in CV_OPTIONS:
        value = getattr(config, option.field)
        if option.type is float and not math.isfinite(value):
            raise UserError(f"{option.name} must be a finite number, not {value}")
    views = TTA_VIEWS.get(config.tta_views, TTA_SHIFTS)
    checks = {
        "--folds must be at least 2": config.folds >= 2,
        "--members needs at least one architecture": len(config.members) >= 1,
        "--epochs must be at least 1": config.epochs >= 1,
        "--batch-size must be at least 1": config.batch_size >= 1,
        f"--tta-views must be one of {', '.join(TTA_VIEWS)}": config.tta_views in TTA_VIEWS,
        f"--tta must be between 0 and {len(views)}": 0 <= config.tta <= len(views),
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
    from kaggle_digits.backend import backend_name

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
