"""A run trained on Kaggle brought home from its kernel's output: the whole run once a
version completes it (downloaded beside the run folder, checked, moved in, metrics.json
last), or the pairs a stopped version finished, so that they survive the version and go up
again with the next (pairs_dataset.py)."""

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import read_json
from kaggle_digits.kaggle_api import kernels as kaggle_kernels
from kaggle_digits.kaggle_api.kernel_log import Log
from kaggle_digits.kaggle_api.kernels import OutputFile
from kaggle_digits.on_kaggle.in_kernel import OUTCOME
from kaggle_digits.reports.tracking import Tracker, flat_params, run_metrics
from kaggle_digits.store import run_files
from kaggle_digits.store.damage import run_damage
from kaggle_digits.store.run_files import (
    KERNEL_ENVIRONMENT,
    LOCK,
    PAIR_FINISHED,
    REQUEST,
    RUN_COMPLETE,
    current_version,
)
from kaggle_digits.store.run_folder import finished_pairs, is_complete, point_latest_at


def run_outputs(files: list[OutputFile], run_name: str) -> list[OutputFile]:
    """The output files of the run folder, named relative to it."""
    prefix = f"{run_name}/"
    return [
        OutputFile(file.name.removeprefix(prefix), file.url)
        for file in files
        if file.name.startswith(prefix) and file.name.rsplit("/", 1)[-1] != LOCK
    ]


def has_complete_run(files: list[OutputFile]) -> bool:
    return any(file.name == RUN_COMPLETE for file in files)


def outcome_of(files: list[OutputFile], staging: Path) -> dict:
    """How the kernel said it ended (in_kernel.OUTCOME), {} where it could not say (killed)."""
    for file in files:
        if file.name == OUTCOME:
            with staged(staging):
                return read_json(kaggle_kernels.download_output(file, staging))
    return {}


def take_finished_pairs(run_dir: Path, files: list[OutputFile]) -> int:
    """The pairs a stopped version finished (those whose result.json it wrote), with the run's
    own files (settled options, folds), downloaded into the run folder; pairs cut short stay
    behind. The number of finished pairs the run folder holds now."""
    finished = {file.name.rsplit("/", 1)[0] for file in files if _is_result(file.name)}
    wanted = [
        file for file in files if "/" not in file.name or file.name.rsplit("/", 1)[0] in finished
    ]
    wanted = [
        file
        for file in wanted
        if file.name not in (REQUEST, KERNEL_ENVIRONMENT) and not (run_dir / file.name).is_file()
    ]
    staging = run_dir.parent / f".{run_dir.name}.pairs"
    with staged(staging):
        for file in wanted:
            kaggle_kernels.download_output(file, staging)
        move_in(staging, run_dir, last=PAIR_FINISHED)
    return finished_pairs(run_dir)


def _is_result(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 3 and parts[0].startswith("fold") and parts[2] == PAIR_FINISHED


def move_home(run_dir: Path, files: list[OutputFile], record: dict, log: Log, track: bool):
    """Download the run's files beside the run folder, check they make a whole run, then move
    them in, metrics.json last; config.json says where the run was trained."""
    staging = run_dir.parent / f".{run_dir.name}.home"
    with staged(staging):
        for file in files:
            kaggle_kernels.download_output(file, staging)
        check_whole(staging, files, run_dir)
        config = run_files.read_settled(staging) | {"kaggle": where_it_ran(staging, record)}
        config["git_commit"] = record.get("git_commit")
        run_files.write_settled(staging, config)
        move_in(staging, run_dir, last=RUN_COMPLETE)
    point_latest_at(run_dir)
    log(f"brought the run home: {run_dir}")
    track_run(run_dir, record, log, track)


@contextlib.contextmanager
def staged(folder: Path) -> Iterator[Path]:
    """A staging folder, empty on entry and gone on exit, whatever happened."""
    shutil.rmtree(folder, ignore_errors=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def move_in(staging: Path, run_dir: Path, last: str) -> None:
    """Every staged file (but the request) into the run folder, the files named `last` last:
    what marks a pair or a run finished comes after what it vouches for."""
    for path in sorted(staging.rglob("*"), key=lambda path: path.name == last):
        if path.is_file() and path.relative_to(staging).as_posix() != REQUEST:
            target = run_dir / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)


def check_whole(staging: Path, files: list[OutputFile], run_dir: Path) -> None:
    if not is_complete(staging):
        pairs = sum(file.name.endswith(f"/{PAIR_FINISHED}") for file in files)
        raise UserError(
            f"the kernel completed, but its output holds no complete run ({pairs} finished "
            f"pair(s)); `kaggle-digits cv --resume {run_dir}` trains the rest in a new version"
        )
    damage = run_damage(staging)
    if damage is not None:
        where = damage.path.relative_to(staging)
        raise UserError(f"the kernel's output is damaged: {where} {damage.what}")


def where_it_ran(staging: Path, record: dict) -> dict:
    """config.json's record of the kernel: its version, GPU, the image's packages."""
    ref, version = current_version(record)
    environment = run_files.read_kernel_environment(staging)
    return {
        "kernel": ref,
        "version": version,
        "url": record["versions"][-1]["url"],
        "accelerator": record["accelerator"],
        **environment,
    }


def track_run(run_dir: Path, record: dict, log: Log, track: bool) -> None:
    """A run brought home, logged to MLflow as a local run is: its options, each pair's
    epochs, its scores and figures."""
    if not track:
        return
    tracker = Tracker(True, log)
    tracker.start(run_dir, record["competition"], flat_params(run_files.read_settled(run_dir)))
    for pair_folder, history in run_files.histories(run_dir):
        fold, member = pair_folder.parent.name, pair_folder.name
        fold_number = int(fold.removeprefix("fold")) + 1
        member_number, architecture = member.removeprefix("member").split("-", 1)
        series = f"fold{fold_number}/member{int(member_number) + 1}-{architecture}"
        for epoch in range(len(history.get("loss", []))):
            logs = {
                name: values[epoch]
                for name, values in history.items()
                if isinstance(values, list) and len(values) > epoch
            }
            tracker.epoch(series, epoch + 1, logs)
    tracker.finish(run_dir, run_metrics(run_files.read_metrics(run_dir)))
