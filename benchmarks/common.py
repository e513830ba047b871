"""What the benchmark scripts share: their common options and the check of the data zip."""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported


def cv_arguments(description: str, runs_dir: Path = Path("runs")) -> argparse.ArgumentParser:
    """--data (the competition zip), --preset, --folds and --runs-dir."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, required=True, help="the competition zip")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--runs-dir", type=Path, default=runs_dir)
    return parser


def check_data(path: Path) -> None:
    if not path.is_file():
        sys.exit(f"error: {path}: benchmark data not found")
