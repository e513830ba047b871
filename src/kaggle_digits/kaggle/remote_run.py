"""`cv --on kaggle`: a whole `cv` run trained in a Kaggle kernel, on Kaggle's free GPU, and
brought home as an ordinary run folder.

The options are checked here first; the run folder is made here (request.json, as for a
local run) with kernel.json beside it, naming the kernel and its versions. The pushed script
carries this checkout's package (zipped, in the script itself: one call, nothing else left on
the account) and runs in_kernel.main, which trains into /kaggle/working. Waiting shows the
kernel's state and its log as it comes; once it is complete, its output is downloaded beside
the run's request, checked to be a whole run, and moved into place, metrics.json last. A
kernel that failed or stopped leaves its finished pairs in its output: `cv --resume` pushes a
new version that reads them (the kernel itself as a kernel source) and trains the rest.
"""

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import read_json, write_json, write_text
from kaggle_digits.base.tracking import Tracker, flat_params, run_metrics
from kaggle_digits.data.competition import Competition
from kaggle_digits.data.dataset import load_dataset
from kaggle_digits.engine.run_folder import (
    LOCK,
    REQUEST,
    RUN_COMPLETE,
    SETTLED,
    is_complete,
    point_latest_at,
    run_damage,
)
from kaggle_digits.jobs.cv import check_fits_the_data, removed_if_refused, start_run
from kaggle_digits.kaggle import kernels as kaggle_kernels
from kaggle_digits.kaggle.api import KaggleUnreachable
from kaggle_digits.kaggle.in_kernel import ENVIRONMENT, ERROR_PREFIX
from kaggle_digits.kaggle.kernel_script import kernel_script
from kaggle_digits.kaggle.kernels import KernelStatus, OutputFile
from kaggle_digits.options.config import CVConfig, git_commit, validate

Log = Callable[[str], None]

KERNEL = "kernel.json"  # in a run folder trained on Kaggle: its kernel and versions
KERNEL_LOG = "kernel.log"
POLL_SECONDS = 15.0  # between two questions to Kaggle while a kernel runs
RETRIES = 5  # questions that fail for want of network before waiting is given up
LOG_TAIL = 12  # lines of a failed kernel's log printed


@dataclass(frozen=True)
class Waiting:
    """How a command waits for a kernel: `log` for events, `status` (a terminal's) for one
    line redrawn in place, `poll_seconds` between questions."""

    log: Log
    status: Log | None = None
    poll_seconds: float = POLL_SECONDS
    track: bool = False


def run_on_kaggle(
    config: CVConfig,
    competition: Competition,
    data_root: Path,
    runs_dir: Path,
    spec_path: Path,
    accelerator: str | None,
    waiting: Waiting,
    detach: bool = False,
    keep_folds: bool = False,
) -> Path:
    """Check the options, push the run's kernel (the competition as `spec_path` describes
    it), and (unless `detach`) wait for it and bring its run home; the run folder."""
    validate(config)
    if config.engine == "ray":
        raise UserError("--on kaggle trains in the kernel's own processes: drop --engine ray")
    dataset = load_dataset(competition, data_root)
    check_fits_the_data(config, dataset.train_labels, None)
    Tracker(waiting.track, waiting.log)  # --track without MLflow: said now, not after the run
    owner = kaggle_kernels.kaggle_username()  # the credentials, before anything is made
    if accelerator is not None:
        check_gpu_quota(waiting.log)
    run_dir = start_run(Path(runs_dir), config, competition, dataset, keep_folds)
    with removed_if_refused(run_dir, new=True):
        record = {
            "ref": f"{owner}/{kernel_slug(run_dir.name)}",
            "accelerator": accelerator,
            "competition": competition.slug,
            "spec": Path(spec_path).read_text(),
            "git_commit": git_commit(),  # the kernel has no checkout
            "versions": [],
        }
        push_version(run_dir, record, earlier=False, log=waiting.log)
    if detach:
        waiting.log(
            f"detached: `kaggle-digits cv --resume {run_dir}` waits for it and brings it home"
        )
        return run_dir
    return bring_home(run_dir, waiting)


def resume_on_kaggle(run_dir: Path, waiting: Waiting) -> Path:
    """A run trained on Kaggle and not yet home: wait for its kernel and bring it home; where
    the kernel failed or stopped, push a new version that trains the pairs it lacks."""
    record = read_json(run_dir / KERNEL)
    state = ask(lambda: kaggle_kernels.kernel_status(*current(record)), run_dir, waiting)
    if state.finished and not (state.status == "COMPLETE" and has_complete_run(run_dir, record)):
        waiting.log(
            f"version {current(record)[1]} ended {state.status.lower()}: pushing a new version "
            "that takes its finished pairs and trains the rest"
        )
        push_version(run_dir, record, earlier=True, log=waiting.log)
    return bring_home(run_dir, waiting)


def is_on_kaggle(run_dir: Path) -> bool:
    """Whether a run folder belongs to a kernel and is not home yet."""
    return (Path(run_dir) / KERNEL).is_file() and not is_complete(run_dir)


def kaggle_state(run_dir: Path) -> str:
    """What `runs` shows for a run still on Kaggle: its kernel's status, asked now."""
    record = read_json(Path(run_dir) / KERNEL)
    ref, version = current(record)
    try:
        state = kaggle_kernels.kernel_status(ref, version)
    except UserError as error:
        return f"on Kaggle ({ref} v{version}; status unknown: {error})"
    then = "brings it home" if state.finished else "waits for it"
    return (
        f"on Kaggle: {state.status.lower()} ({record['versions'][-1]['url']}); "
        f"kaggle-digits cv --resume {run_dir} {then}"
    )


def kernel_slug(run_name: str) -> str:
    return f"kaggle-digits-{run_name}".lower()


def current(record: dict) -> tuple[str, int]:
    return record["ref"], record["versions"][-1]["version"]


def check_gpu_quota(log: Log) -> None:
    quota = kaggle_kernels.gpu_quota()
    if quota.allowed_hours and quota.left_hours <= 0:
        raise UserError(f"your Kaggle GPU quota is spent: {quota.describe()}")
    log(f"Kaggle GPU quota: {quota.describe()}")


def push_version(run_dir: Path, record: dict, earlier: bool, log: Log) -> None:
    """Push the run's script as a new version of its kernel; `earlier`: with the kernel's
    last version attached, whose finished pairs the new one takes up."""
    request = read_json(run_dir / REQUEST)
    sources = (record["ref"],) if earlier else ()
    script = kernel_script(run_dir.name, request, record["spec"], sources[0] if earlier else None)
    kernel = kaggle_kernels.push_kernel(
        record["ref"], script, record["competition"], record["accelerator"], sources
    )
    pushed_at = datetime.now(UTC).isoformat(timespec="seconds")
    record["versions"].append({"version": kernel.version, "url": kernel.url, "pushed": pushed_at})
    write_json(run_dir / KERNEL, record)
    on = record["accelerator"] or "no GPU"
    log(f"pushed {kernel.ref} version {kernel.version} ({on}, private, internet off): {kernel.url}")


# --- waiting ---------------------------------------------------------------------------


def bring_home(run_dir: Path, waiting: Waiting) -> Path:
    """Wait for the kernel's current version; bring its run home, or say why not."""
    record = read_json(run_dir / KERNEL)
    ref, version = current(record)
    live_log = KernelLog(ref, version, waiting.log)
    try:
        state = wait_for(run_dir, record, waiting, live_log)
    except KeyboardInterrupt:
        waiting.log(
            f"stopped waiting; the kernel runs on at {record['versions'][-1]['url']}: "
            f"`kaggle-digits cv --resume {run_dir}` brings it home"
        )
        raise
    files, log = ask(lambda: kaggle_kernels.kernel_output(ref, version), run_dir, waiting)
    write_text(run_dir / KERNEL_LOG, log)
    if state.status != "COMPLETE":
        raise UserError(failed_kernel(run_dir, record, state, log, live_log))
    move_home(run_dir, run_files(files, run_dir.name), record, waiting)
    return run_dir


def wait_for(run_dir: Path, record: dict, waiting: Waiting, log: "KernelLog") -> KernelStatus:
    """Poll the kernel until it stops: a line at each change of state, the new lines of its
    log as they come (where Kaggle shows a running kernel's log), and a live status line:
    the state, the time since, the kernel's address, the log's last line (the run's own
    progress)."""
    ref, version = current(record)
    url = record["versions"][-1]["url"]
    started, seen = time.monotonic(), None
    while True:
        state = ask(lambda: kaggle_kernels.kernel_status(ref, version), run_dir, waiting)
        if state.status != seen:
            waiting.log(f"kernel {ref} v{version}: {state.status.lower()}")
            seen = state.status
        if state.status == "RUNNING" or state.status == "COMPLETE":
            log.show_new_lines()  # a failed kernel's: its tail, by failed_kernel
        if state.finished:
            return state
        if waiting.status is not None:
            minutes = (time.monotonic() - started) / 60
            waiting.status(f"kernel {state.status.lower()} {minutes:.1f} min  {url}  {log.last}")
        time.sleep(waiting.poll_seconds)


class KernelLog:
    """A running kernel's log, shown line by line as it grows."""

    def __init__(self, ref: str, version: int, log: Log) -> None:
        self.ref, self.version, self.log = ref, version, log
        self.shown = 0  # lines shown so far
        self.last = ""

    def show_new_lines(self) -> None:
        try:
            _, text = kaggle_kernels.kernel_output(self.ref, self.version)
        except UserError:
            return  # Kaggle may not show a running kernel's log: the state line goes on
        lines = text.splitlines()
        for line in lines[self.shown :]:
            self.log(f"  | {line}")
        self.shown = max(self.shown, len(lines))
        self.last = lines[-1].strip() if lines else self.last


def ask(question: Callable, run_dir: Path, waiting: Waiting):
    """Kaggle's answer to `question`, asked again with growing pauses while the network is
    down; past RETRIES, one line saying how to come back."""
    for attempt in range(RETRIES + 1):
        try:
            return question()
        except KaggleUnreachable as error:
            if attempt == RETRIES:
                raise UserError(
                    f"{error}; the kernel goes on: `kaggle-digits cv --resume {run_dir}` "
                    "waits for it again"
                ) from None
            time.sleep(min(60.0, waiting.poll_seconds * 2**attempt))
    raise AssertionError("unreachable")


def failed_kernel(
    run_dir: Path, record: dict, state: KernelStatus, log: str, live_log: KernelLog
) -> str:
    """The tail of a failed kernel's log, less what was shown while it ran; the one line that
    says what happened."""
    lines = log.splitlines()
    for line in lines[max(live_log.shown, len(lines) - LOG_TAIL) :]:
        live_log.log(f"  | {line}")
    ours = [line.removeprefix(ERROR_PREFIX) for line in lines if line.startswith(ERROR_PREFIX)]
    why = ours[-1] if ours else state.failure
    ref, version = current(record)
    ended = "was cancelled" if state.status.startswith("CANCEL") else "failed"
    return (
        f"the kernel {ref} v{version} {ended}" + (f": {why}" if why else "")
        + f"; its log: {run_dir / KERNEL_LOG}; `kaggle-digits cv --resume {run_dir}` "
        "trains what is left in a new version"
    )  # fmt: skip


# --- bringing the run home ---------------------------------------------------------------


def run_files(files: list[OutputFile], run_name: str) -> list[OutputFile]:
    """The output files of the run folder, named relative to it."""
    prefix = f"{run_name}/"
    return [
        OutputFile(file.name.removeprefix(prefix), file.url)
        for file in files
        if file.name.startswith(prefix) and file.name.rsplit("/", 1)[-1] != LOCK
    ]


def has_complete_run(run_dir: Path, record: dict) -> bool:
    files, _ = kaggle_kernels.kernel_output(*current(record))
    return any(file.name == RUN_COMPLETE for file in run_files(files, run_dir.name))


def move_home(run_dir: Path, files: list[OutputFile], record: dict, waiting: Waiting) -> None:
    """Download the run's files beside the run folder, check they make a whole run, then move
    them in, metrics.json last; config.json says where the run was trained."""
    staging = run_dir.parent / f".{run_dir.name}.home"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for file in files:
            kaggle_kernels.download_output(file, staging)
        check_whole(staging, files, run_dir)
        config = read_json(staging / SETTLED) | {"kaggle": where_it_ran(staging, record)}
        config["git_commit"] = record.get("git_commit")
        write_json(staging / SETTLED, config)
        for path in sorted(staging.rglob("*"), key=lambda path: path.name == RUN_COMPLETE):
            if path.is_file() and path.name != REQUEST:
                target = run_dir / path.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    point_latest_at(run_dir)
    waiting.log(f"brought the run home: {run_dir}")
    track(run_dir, record, waiting)


def check_whole(staging: Path, files: list[OutputFile], run_dir: Path) -> None:
    if not (staging / RUN_COMPLETE).is_file():
        pairs = sum(file.name.endswith("/result.json") for file in files)
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
    ref, version = current(record)
    environment = read_json(staging / ENVIRONMENT) if (staging / ENVIRONMENT).is_file() else {}
    return {
        "kernel": ref,
        "version": version,
        "url": record["versions"][-1]["url"],
        "accelerator": record["accelerator"],
        **environment,
    }


def track(run_dir: Path, record: dict, waiting: Waiting) -> None:
    """A run brought home, logged to MLflow as a local run is: its options, each pair's
    epochs, its scores and figures."""
    if not waiting.track:
        return
    tracker = Tracker(True, waiting.log)
    tracker.start(run_dir, record["competition"], flat_params(read_json(run_dir / SETTLED)))
    for history_file in sorted(run_dir.glob("fold*/member*/history.json")):
        fold, member = history_file.parent.parent.name, history_file.parent.name
        fold_number = int(fold.removeprefix("fold")) + 1
        member_number, architecture = member.removeprefix("member").split("-", 1)
        series = f"fold{fold_number}/member{int(member_number) + 1}-{architecture}"
        history = read_json(history_file)
        for epoch in range(len(history.get("loss", []))):
            logs = {
                name: values[epoch]
                for name, values in history.items()
                if isinstance(values, list) and len(values) > epoch
            }
            tracker.epoch(series, epoch + 1, logs)
    tracker.finish(run_dir, run_metrics(read_json(run_dir / RUN_COMPLETE)))
