"""What the benchmark scripts share: their common options and the check of the data zip."""

import argparse
import os
import sys
import threading
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported


def cv_arguments(description: str, runs_dir: Path = Path("runs")) -> argparse.ArgumentParser:
    """--data (the competition zip), --preset, --folds and --runs-dir."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, required=True, help="the competition zip")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--folds", type=int, default=None, help="default: the preset's")
    parser.add_argument("--runs-dir", type=Path, default=runs_dir)
    return parser


def check_data(path: Path) -> None:
    if not path.is_file():
        sys.exit(f"error: {path}: benchmark data not found")


class TreeMemory:
    """The peak of the summed resident memory of this process and all its descendants (the
    worker processes of `cv --workers`), sampled every half second (Linux /proc)."""

    def __init__(self) -> None:
        self.peak_bytes = 0
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

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self.peak_bytes = max(self.peak_bytes, sum(map(_rss, _tree(os.getpid()))))


def _tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid] + [grandchild for child in children for grandchild in _tree(int(child))]


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
