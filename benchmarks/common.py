"""What the benchmark scripts share: their common options and the check of the data zip."""

import argparse
import os
import sys
import threading
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported


# the cv options every benchmark takes, declared where cv's are (config.CV_OPTIONS)
PRESET_FIELDS = ("folds", "tta", "tta_views", "deskew", "select_hard", "precision")


def cv_arguments(
    description: str, runs_dir: Path = Path("runs"), fields: tuple[str, ...] = PRESET_FIELDS
) -> argparse.ArgumentParser:
    """--data (the competition zip), --preset, --runs-dir, and cv's own option for each of
    `fields` (default: the preset's value)."""
    from kaggle_digits.options.config import OPTIONS_BY_FIELD

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, required=True, help="the competition zip")
    parser.add_argument("--preset", default="default")
    for field in fields:
        option = OPTIONS_BY_FIELD[field]
        if option.type is bool:
            kind = {"action": argparse.BooleanOptionalAction}
        else:
            kind = {"type": str if option.type is tuple else option.type}
        parser.add_argument(option.name, dest=field, default=None, help=option.help, **kind)
    parser.add_argument("--runs-dir", type=Path, default=runs_dir)
    parser.set_defaults(cv_fields=fields)
    return parser


def preset_options(args: argparse.Namespace) -> dict:
    """The cv options given to cv_arguments, as preset_config takes them."""
    from kaggle_digits.options.config import OPTIONS_BY_FIELD

    return {field: OPTIONS_BY_FIELD[field].parse(getattr(args, field)) for field in args.cv_fields}


def random_training_data(train_rows: int = 4096, test_rows: int = 512):
    """Random images and labels, all in one fold, for timing steps (pairs.TrainingData)."""
    import numpy as np

    from kaggle_digits.training.pairs import TrainingData

    rng = np.random.default_rng(0)
    return TrainingData(
        rng.integers(0, 256, (train_rows, 28, 28, 1), dtype=np.uint8),
        np.arange(train_rows) % 10,
        rng.integers(0, 256, (test_rows, 28, 28, 1), dtype=np.uint8),
        np.zeros(train_rows, dtype=np.int64),
        10,
    )


def check_data(path: Path) -> None:
    if not path.is_file():
        sys.exit(f"error: {path}: benchmark data not found")


class TreeMemory:
    """The peak memory of this process and all its descendants (the worker processes of
    `cv --workers`), sampled every SAMPLE_SECONDS (Linux /proc): summed proportional set
    sizes (PSS: pages shared between processes, such as TensorFlow's libraries, counted once,
    as the machine holds them once) and, beside it, summed resident sizes (RSS: shared pages
    counted in every process, ~0.3 GB a worker too many)."""

    # Reading smaps_rollup walks a process's page tables: every 0.5 s, for three workers, it
    # took ~11% of a core from the run it measured. Workers' memory moves slowly.
    SAMPLE_SECONDS = 3.0

    def __init__(self, root: int | None = None) -> None:
        self.root = root or os.getpid()  # the process whose tree is measured
        self.peak_bytes = 0  # PSS
        self.peak_rss_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / 2**30

    @property
    def peak_rss_gib(self) -> float:
        return self.peak_rss_bytes / 2**30

    def _sample(self) -> None:
        while not self._stop.wait(self.SAMPLE_SECONDS):
            sizes = [_memory(pid) for pid in _tree(self.root)]
            self.peak_bytes = max(self.peak_bytes, sum(pss for pss, _ in sizes))
            self.peak_rss_bytes = max(self.peak_rss_bytes, sum(rss for _, rss in sizes))


def _tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid] + [grandchild for child in children for grandchild in _tree(int(child))]


def _memory(pid: int) -> tuple[int, int]:
    """A process's (PSS, RSS) in bytes; zeros for one that has gone."""
    sizes = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("Pss", "Rss"):
                sizes[name] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return sizes.get("Pss", 0), sizes.get("Rss", 0)
