"""The files of a run folder and of its pairs, each named once and read and written here;
every other module asks for them by what they hold (run_folder.py draws the layout).

Writes are whole or not at all (base.files); a reader of a file that may be missing or
cut short says so in one line (read_json), or, where a caller must tell damage from
content, returns {} (read_object)."""

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kaggle_digits.base.files import atomic_path, read_json, save_array, write_json, write_text

# a run's own files
REQUEST = "request.json"  # the options as asked, written first
LOCK = "run.lock"
FOLDS = "folds.npy"
SETTLED = "config.json"  # the options as the trials settled them
OOF_PROBS = "oof_probs.npy"
TEST_PROBS = "test_probs.npy"
SUMMARY = "summary.txt"
RUN_COMPLETE = "metrics.json"  # written last
FIGURES = {  # what each figure shows -> its file
    "learning_curves": "learning_curves.png",
    "confusion_matrix": "confusion_matrix.png",
    "mistakes": "mistakes.png",
}
TRACKING = "mlflow.json"  # a tracked run's MLflow run and store
TRACKED = (SETTLED, RUN_COMPLETE, SUMMARY, "*.png")  # what MLflow keeps of a run
KERNEL = "kernel.json"  # a run trained on Kaggle: its kernel and versions
KERNEL_LOG = "kernel.log"
KERNEL_ENVIRONMENT = "kernel_environment.json"  # what the kernel saw: GPUs, versions

# a pair's files, in fold<k>/member<m>-<architecture>/
MODEL = "model.keras"
HOLDOUT_PROBS = "holdout_probs.npy"
PAIR_TEST_PROBS = "test_probs.npy"
HISTORY = "history.json"
PAIR_FINISHED = "result.json"  # written last
RUN_ARRAYS = (FOLDS, OOF_PROBS, TEST_PROBS)


def read_object(path: Path) -> dict:
    """A JSON object file's content; {} for one missing, cut short or garbled."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


# --- the options: as asked, as settled -----------------------------------------------


def write_request(run_dir: Path, request: dict) -> None:
    write_json(Path(run_dir) / REQUEST, request)


def read_request(run_dir: Path) -> dict:
    return read_json(Path(run_dir) / REQUEST)


def has_request(run_dir: Path) -> bool:
    return (Path(run_dir) / REQUEST).is_file()


def holds_request(run_dir: Path, request: dict) -> bool:
    """Whether the folder's options as asked are exactly `request` (False where there are
    none, or they cannot be read)."""
    try:
        return json.loads((Path(run_dir) / REQUEST).read_text()) == request
    except (OSError, ValueError):
        return False


def has_settled(run_dir: Path) -> bool:
    return (Path(run_dir) / SETTLED).is_file()


def read_settled(run_dir: Path) -> dict:
    """A run's settled options (a blend's: its sources and weights); one line if unreadable."""
    return read_json(Path(run_dir) / SETTLED)


def write_settled(run_dir: Path, settled: dict) -> None:
    write_json(Path(run_dir) / SETTLED, settled)


def options_file(run_dir: Path) -> Path:
    """Where a run's options are: settled by its trials, else as asked."""
    return Path(run_dir) / (SETTLED if has_settled(run_dir) else REQUEST)


def read_options(run_dir: Path) -> dict:
    """The options, settled or else as asked; {} where neither can be read."""
    return read_object(options_file(run_dir))


# --- the run's arrays and results ------------------------------------------------------


def folds_path(run_dir: Path) -> Path:
    return Path(run_dir) / FOLDS


def save_folds(run_dir: Path, fold_of_row: np.ndarray) -> None:
    save_array(folds_path(run_dir), fold_of_row)


def read_folds(run_dir: Path) -> np.ndarray:
    return np.load(folds_path(run_dir))


def save_probs(run_dir: Path, oof_probs: np.ndarray, test_probs: np.ndarray) -> None:
    save_array(Path(run_dir) / OOF_PROBS, oof_probs)
    save_array(Path(run_dir) / TEST_PROBS, test_probs)


def read_oof_probs(run_dir: Path) -> np.ndarray:
    return np.load(Path(run_dir) / OOF_PROBS)


def read_test_probs(run_dir: Path) -> np.ndarray:
    return np.load(Path(run_dir) / TEST_PROBS)


def figure_path(run_dir: Path, figure: str) -> Path:
    """Where a run's figure ("learning_curves", "confusion_matrix", "mistakes") is kept."""
    return Path(run_dir) / FIGURES[figure]


def figure_files(run_dir: Path) -> list[str]:
    """The file names of the figures the run folder holds, in FIGURES' order."""
    return [name for name in FIGURES.values() if (Path(run_dir) / name).is_file()]


def figure_file(run_dir: Path, file_name: str) -> Path | None:
    """A figure of the run by its file name (as figure_files gives it); None for a name that
    is not a figure's, or a figure the run does not hold."""
    return Path(run_dir) / file_name if file_name in figure_files(run_dir) else None


def write_summary(run_dir: Path, summary: str) -> None:
    write_text(Path(run_dir) / SUMMARY, summary + "\n")


def write_metrics(run_dir: Path, metrics: dict) -> None:
    """The run's metrics, written last: the run is complete from here on."""
    write_json(Path(run_dir) / RUN_COMPLETE, metrics)


def read_metrics(run_dir: Path) -> dict:
    return read_json(Path(run_dir) / RUN_COMPLETE)


def metrics_if_any(run_dir: Path) -> dict:
    """The run's metrics; {} where it is not complete or they cannot be read."""
    return read_object(Path(run_dir) / RUN_COMPLETE)


def started_at(run_dir: Path) -> float:
    """When the run was started (its options first written), as a file time."""
    written = (Path(run_dir) / name for name in (SETTLED, REQUEST))
    return min(path.stat().st_mtime for path in written if path.exists())


def completed_at(run_dir: Path) -> float:
    """When the run was completed (its metrics written), as a file time."""
    return (Path(run_dir) / RUN_COMPLETE).stat().st_mtime


# --- a pair's files ----------------------------------------------------------------------


def pair_dir(run_dir: Path, fold: int, member: int, architecture: str) -> Path:
    return Path(run_dir) / f"fold{fold}" / f"member{member}-{architecture}"


def model_path(pair_folder: Path) -> Path:
    return Path(pair_folder) / MODEL


def save_pair(
    pair_folder: Path,
    model_file: bytes,
    holdout_probs: np.ndarray,
    test_probs: np.ndarray,
    history: dict,
    result: dict,
) -> None:
    """A finished pair's model (a .keras file's bytes) and predictions; result.json last."""
    with atomic_path(model_path(pair_folder)) as tmp:
        tmp.write_bytes(model_file)
    save_array(pair_folder / HOLDOUT_PROBS, holdout_probs)
    save_array(pair_folder / PAIR_TEST_PROBS, test_probs)
    write_json(pair_folder / HISTORY, history)
    write_json(pair_folder / PAIR_FINISHED, result)


def is_finished(pair_folder: Path) -> bool:
    return (Path(pair_folder) / PAIR_FINISHED).exists()


def unfinish(pair_folder: Path) -> None:
    """The pair trains again: its result.json goes, its other files are written anew."""
    (Path(pair_folder) / PAIR_FINISHED).unlink()


def read_pair_result(pair_folder: Path) -> dict:
    return read_json(Path(pair_folder) / PAIR_FINISHED)


def read_pair_probs(pair_folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """A finished pair's probabilities: its held-out rows', the test rows'."""
    return np.load(pair_folder / HOLDOUT_PROBS), np.load(pair_folder / PAIR_TEST_PROBS)


def read_history(pair_folder: Path) -> dict:
    return read_json(Path(pair_folder) / HISTORY)


def histories(run_dir: Path) -> Iterator[tuple[Path, dict]]:
    """Each pair's learning curve that the run folder holds, by its pair folder, in order;
    {} for one that cannot be read."""
    for path in sorted(Path(run_dir).glob(f"fold*/member*/{HISTORY}")):
        yield path.parent, read_object(path)


# --- a run trained on Kaggle -----------------------------------------------------------


def has_kernel(run_dir: Path) -> bool:
    return (Path(run_dir) / KERNEL).is_file()


def read_kernel(run_dir: Path) -> dict:
    """The kernel a run trains in: its ref, the versions pushed, how it was pushed."""
    return read_json(Path(run_dir) / KERNEL)


def write_kernel(run_dir: Path, record: dict) -> None:
    write_json(Path(run_dir) / KERNEL, record)


def current_version(record: dict) -> tuple[str, int]:
    """The kernel's ref and the version of it the run waits for (the last one pushed)."""
    return record["ref"], record["versions"][-1]["version"]


def kernel_log_path(run_dir: Path) -> Path:
    return Path(run_dir) / KERNEL_LOG


def write_kernel_log(run_dir: Path, log: str) -> None:
    write_text(kernel_log_path(run_dir), log)


def write_kernel_environment(run_dir: Path, environment: dict) -> None:
    write_json(Path(run_dir) / KERNEL_ENVIRONMENT, environment)


def read_kernel_environment(run_dir: Path) -> dict:
    """What the kernel saw (GPUs, versions); {} where it wrote nothing."""
    path = Path(run_dir) / KERNEL_ENVIRONMENT
    return read_json(path) if path.is_file() else {}


# --- MLflow's record of a run -------------------------------------------------------------


def read_tracking(run_dir: Path) -> dict | None:
    """The MLflow run a run folder is tracked in (None: it was not tracked)."""
    path = Path(run_dir) / TRACKING
    return read_json(path) if path.is_file() else None


def write_tracking(run_dir: Path, record: dict) -> None:
    write_json(Path(run_dir) / TRACKING, record)


def tracked_files(run_dir: Path) -> list[Path]:
    """The files MLflow keeps of a finished run, in order."""
    found = (sorted(Path(run_dir).glob(pattern)) for pattern in TRACKED)
    return [path for paths in found for path in paths if path.is_file()]
