"""What the tests of `cv --on kaggle` share: the CLI on the stand-in's competition, the
kernels pushed to it, and kernel versions moved through Kaggle's statuses by hand."""

import threading
import time

from helpers import run_cli

# the fastest real run in a kernel: no trial, no worker processes
SHORT = ("--epochs", "1", "--precision", "float32", "--engine", "in-process", "--tta", "0")


def cli(kaggle, *args):
    """`kaggle-digits ARGS` on the stand-in's competition; runs into kaggle.runs_dir."""
    commands = ("cv", "runs", "submit", "blend", "predict")
    where = ("--runs-dir", kaggle.runs_dir) if args[0] in commands else ()
    return run_cli("--competition", kaggle.spec_path, "--data-dir", kaggle.data_dir, *args, *where)


def pushes(kaggle) -> list[dict]:
    return [request for method, request in kaggle.requests if method == "SaveKernel"]


def only_run(kaggle):
    (run_dir,) = [path for path in kaggle.runs_dir.iterdir() if not path.is_symlink()]
    return run_dir


def finish_later(kaggle, *statuses: str, seconds: float = 0.3, version: int = 1) -> None:
    """Version `version` of the kernel, once pushed, goes through `statuses`, one every
    `seconds`, without having run anything (the stand-in runs no script here)."""

    def end() -> None:
        deadline = time.monotonic() + 120
        while sum(len(pushed) for pushed in kaggle.kernels.versions.values()) < version:
            assert time.monotonic() < deadline, f"version {version} was not pushed"
            time.sleep(0.05)
        (ref,) = kaggle.kernels.versions
        for status in statuses:
            time.sleep(seconds)
            kaggle.kernels.versions[ref][version - 1].status = status

    threading.Thread(target=end, daemon=True).start()
