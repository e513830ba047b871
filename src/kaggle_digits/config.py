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

# Test-time views: the image moved by whole pixels (down, right), nearest first. Measured on
# the saved fold models of holdout runs (OOF, the same models with and without): 2 folds of
# tiny-cnn x 15.2 epochs 0.99179 -> 0.99313 with the first 4 (the training augmentation's random
# views: 0.99277), x 36.4 epochs 0.99229 -> 0.99366; 5 folds of strided-cnn x 14.8 epochs
# 0.99497 -> 0.99524, with the first 8 0.99545. Small, short-trained nets gain the most.
TTA_SHIFTS = (
    (1, 0), (-1, 0), (0, 1), (0, -1),
    (2, 0), (-2, 0), (0, 2), (0, -2),
    (1, 1), (1, -1), (-1, 1), (-1, -1),
)  # fmt: skip

# Or the image turned by a few degrees (anticlockwise, clockwise), nearest first: resampled
# (bilinear), as every training image is by the random augmentation, where the test images
# are not. Measured on the saved fold models of a holdout run of the default preset (strided-cnn
# x 36.3 epochs of a third): OOF 0.99545 without views, 0.99562 with 4 shifts, 0.99604 with
# these 4 (log-loss 0.0161, 0.0156, 0.0146); one view blurred by half a pixel alone 0.99595.
# A full-data run's: 0.99562, 0.99567, 0.99588 (0.0163, 0.0155, 0.0146). Tiny-cnn (quick
# preset): 0.99292, 0.99384, 0.99402, its held-out log-loss no better, so it keeps the shifts.
TTA_ROTATIONS = (4.0, -4.0, 8.0, -8.0, 12.0, -12.0)  # degrees
TTA_VIEWS = {"shifts": TTA_SHIFTS, "rotations": TTA_ROTATIONS}

PRECISIONS = ("float32", "mixed_bfloat16")


@dataclass(frozen=True)
class CVConfig:
    preset: str = "default"
    folds: int = 5
    members: tuple[str, ...] = ("strided-cnn",)  # architectures, see models.ARCHITECTURES
    epochs: float = 8  # passes over a fold's training rows; a budget's plan chooses tenths
    # small batches: the same CPU time per image, four times the steps (measured on two folds,
    # strided-cnn 10 epochs side by side: batch 32 0.99464/0.99494, 128 0.99390/0.99301)
    batch_size: int = 32
    seed: int = 42
    learning_rate: float = 3e-3  # peak of the one-cycle schedule (warm-up, cosine decay)
    warmup_fraction: float = 0.15
    label_smoothing: float = 0.0
    augment: bool = True  # random rotation, zoom and shift while training; never flips
    rotation_degrees: float = 10.0
    zoom: float = 0.10
    shift: float = 0.10
    # straighten slanted handwriting in front of the net (layers.Deskew). Measured side by side
    # (2 folds of the holdout split, fold 0, the same time): tiny-cnn x 10 epochs 0.99137 ->
    # 0.99226-0.99280, strided-cnn x 4 epochs 0.98869 -> 0.99131 (docs/measurements.md). The
    # presets turn it on; False here, as in runs saved before it existed, whose models have no
    # such layer.
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
    # (CPUs with AMX or AVX-512 BF16, recent GPUs; strided-cnn 1.3-1.4x a step on a 2-core
    # Xeon with AMX, at the same accuracy an epoch) and slower where it is emulated; "auto":
    # whichever a short trial finds faster here (cv.choose_precision)
    precision: str = "float32"
    budget_minutes: float = 0.0  # > 0: epochs (and members) chosen to finish in this time
    workers: int = 1  # pairs trained at once, each in its own process; 0: as the machine suits

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


def scaled_learning_rate(learning_rate: float, batch_size: int, new_batch_size: int) -> float:
    """The learning rate for `new_batch_size` that matches `learning_rate` at `batch_size`:
    scaled by the square root of their ratio, as suits Adam (the gradient's noise falls with
    the square root of the batch)."""
    return learning_rate * math.sqrt(new_batch_size / batch_size)


PRESETS = {
    # the whole cross-validation in under 5 minutes on a 2-core CPU. 2 folds: two workers
    # train both pairs in one round, and the run's work is (folds - 1) passes over the data
    # an epoch, so 2 folds buy three times the epochs of 4. Measured, 4.5-minute budget:
    # 2 folds x 15.2 epochs OOF 0.99179, held-out 0.99333; 3 folds x 5.5, 0.98958 / 0.99143;
    # 4 folds x 3.4, 0.98795 / 0.99036 (see docs/measurements.md)
    "quick": CVConfig(
        preset="quick",
        folds=2,
        members=("tiny-cnn",),
        batch_size=256,
        learning_rate=6e-3,
        # same models +0.0013 OOF; at equal time, fewer epochs, +0.0003-0.0008
        # (docs/measurements.md)
        tta=4,
        deskew=True,
        budget_minutes=4.5,
        workers=0,
        precision="auto",
    ),
    # the best ensemble that fits an hour on a 2-core CPU: a plan for 90% of what the trial
    # leaves of 58 minutes leaves room for the machine slowing down by ~15% during the run
    # select_hard=2: each epoch after the first trains on the third of the rows the model finds
    # hardest. Measured side by side (one fold of the full data, the same time): strided-cnn
    # x 10 epochs 0.99333 / 0.99548 (log-loss 0.0205 / 0.0193); x 18 epochs of a third
    # 0.99512 / 0.99571 (0.0165 / 0.0166) (docs/measurements.md)
    # tta=4: measured on the saved fold models of three runs of this preset (mixed_bfloat16),
    # the same models with and without the 4 one-pixel shifts: full data, OOF 0.99574 ->
    # 0.99593 and 0.99533 -> 0.99564 (log-loss -4%, -6%); holdout split, OOF 0.99557 ->
    # 0.99574, held-out 0.99655 -> 0.99679; the views cost about one of ~70 epochs of a third.
    # Turned by 4 and 8 degrees either way in place of shifted: see TTA_ROTATIONS
    "default": CVConfig(
        deskew=True,
        tta=4,
        tta_views="rotations",
        budget_minutes=58,
        workers=0,
        select_hard=2.0,
        precision="auto",
    ),
    # one GPU: the best public recipe's 15 strided-cnns (here 3 a fold), full epochs, batches
    # four times the default's with the learning rate scaled by the square root of that, and
    # the pairs taking turns on the GPU; the reasoning in docs/gpu.md
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


def validate(config: CVConfig) -> None:
    from kaggle_digits.models import ARCHITECTURES

    unknown = [name for name in config.members if name not in ARCHITECTURES]
    if unknown:
        raise UserError(
            f"unknown architecture {', '.join(unknown)} (known: {', '.join(sorted(ARCHITECTURES))})"
        )
    views = TTA_VIEWS.get(config.tta_views, TTA_SHIFTS)
    checks = {
        "--folds must be at least 2": config.folds >= 2,
        "--members needs at least one architecture": len(config.members) >= 1,
        "--epochs must be at least 1": config.epochs >= 1,
        "--batch-size must be at least 1": config.batch_size >= 1,
        f"--tta-views must be one of {', '.join(TTA_VIEWS)}": config.tta_views in TTA_VIEWS,
        f"--tta must be between 0 and {len(views)}": 0 <= config.tta <= len(views),
        "--ema must be 0 (off) or between 0 and 1": 0 <= config.ema < 1,
        "--select-hard must be 0 (off) or more": config.select_hard >= 0,
        f"--precision must be auto or one of {', '.join(PRECISIONS)}": config.precision
        in ("auto", *PRECISIONS),
        "--budget must be 0 (off) or a positive number of minutes": config.budget_minutes >= 0,
        "--workers must be 0 (automatic) or more": config.workers >= 0,
    }
    for message, ok in checks.items():
        if not ok:
            raise UserError(message)


def provenance(data_fingerprint: str) -> dict:
    """What else a result depends on: data, code version, packages, backend."""
    from kaggle_digits.backend import backend_name

    packages = ["kaggle-digits", "keras", "tensorflow", "jax", "jaxlib", "torch", "numpy"]
    packages += ["scikit-learn", "pandas"]
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    backend = backend_name()
    kernels = {}
    if backend == "tensorflow":
        # oneDNN's kernels round differently from Eigen's (see kaggle_digits/__init__.py)
        kernels["tf_onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    return {
        "data_fingerprint": data_fingerprint,
        "git_commit": _git_commit(),
        "keras_backend": backend,
        **kernels,
        "python": platform.python_version(),
        "packages": versions,
    }


def _git_commit() -> str | None:
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
