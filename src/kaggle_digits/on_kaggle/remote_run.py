"""`cv --on kaggle`: a whole `cv` run trained in a Kaggle kernel, on Kaggle's free GPU, and
brought home as an ordinary run folder.

The options are checked here first; the run folder is made here (request.json, as for a
local run) with kernel.json beside it, naming the kernel and its versions. The pushed script
carries this checkout's package (zipped, in the script itself) and runs in_kernel.main, which
trains into /kaggle/working. Waiting shows the kernel's state and its log as it comes; once
it is complete, the run comes home (run_home.py). A version that failed or stopped leaves
its finished pairs in its output: they come home, and `cv --resume` carries them to a new
version as a private dataset (pairs_dataset.py), which trains only the rest. With
`--write-kernel DIR` the kernel is written as files for `kaggle kernels push -p DIR`, and
`cv --resume` waits for the version pushed so.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kaggle_digits.base.errors import UserError
from kaggle_digits.data.competition import Competition
from kaggle_digits.data.dataset import load_dataset
from kaggle_digits.jobs.cv import check_fits_the_data, removed_if_refused, start_run
from kaggle_digits.kaggle_api import kernels as kaggle_kernels
from kaggle_digits.kaggle_api.client import KaggleUnreachable
from kaggle_digits.kaggle_api.kernel_log import KernelLog, Log
from kaggle_digits.kaggle_api.kernels import QUEUED_MINUTES, KernelStatus
from kaggle_digits.on_kaggle.in_kernel import ERROR_PREFIX
from kaggle_digits.on_kaggle.kernel_script import kernel_script, write_kernel_files
from kaggle_digits.on_kaggle.pairs_dataset import upload_pairs
from kaggle_digits.on_kaggle.run_home import (
    has_complete_run,
    move_home,
    outcome_of,
    run_outputs,
    take_finished_pairs,
)
from kaggle_digits.options.config import CVConfig, git_commit, validate
from kaggle_digits.reports.tracking import Tracker
from kaggle_digits.store import run_files
from kaggle_digits.store.run_files import KERNEL, KERNEL_LOG, current_version, read_kernel
from kaggle_digits.store.run_folder import finished_pair_names, finished_pairs

POLL_SECONDS = 15.0  # between two questions to Kaggle while a kernel runs
RETRIES = 5  # questions that fail for want of network before waiting is given up
LOG_TAIL = 12  # lines of a failed kernel's log printed


@dataclass(frozen=True)
class Waiting:
    """How a command waits for a kernel: `log` for events, `status` (a terminal's) for one
    line redrawn in place, `poll_seconds` between questions, `queued_minutes` in QUEUED
    before saying what the user can do."""

    log: Log
    status: Log | None = None
    poll_seconds: float = POLL_SECONDS
    track: bool = False
    queued_minutes: float = QUEUED_MINUTES


def run_on_kaggle(
    config: CVConfig,
    competition: Competition,
    data_root: Path,
    runs_dir: Path,
    spec_path: Path,
    accelerator: str | None,
    waiting: Waiting,
    detach: bool = False,
    write_kernel: Path | None = None,
) -> Path:
    """Check the options, push the run's kernel (the competition as `spec_path` describes
    it; `write_kernel`: write it there for `kaggle kernels push -p` instead), and (unless
    `detach` or written) wait for it and bring its run home; the run folder."""
    validate(config)
    if config.engine == "ray":
        raise UserError("--on kaggle trains in the kernel's own processes: drop --engine ray")
    dataset = load_dataset(competition, data_root)
    check_fits_the_data(config, dataset.train_labels, None)
    Tracker(waiting.track, waiting.log)  # --track without MLflow: said now, not after the run
    owner = kaggle_kernels.kaggle_username()  # the credentials, before anything is made
    if (
        write_kernel is not None
        and Path(write_kernel).exists()
        and any(Path(write_kernel).iterdir())
    ):
        raise UserError(f"--write-kernel {write_kernel}: the folder is not empty; name a new one")
    if accelerator is not None and write_kernel is None:
        check_gpu_quota(waiting.log)
    run_dir = start_run(Path(runs_dir), config, competition, dataset)
    with removed_if_refused(run_dir, new=True):
        record = {
            "ref": f"{owner}/{kernel_slug(run_dir.name)}",
            "accelerator": accelerator,
            "competition": competition.slug,
            "spec": Path(spec_path).read_text(),
            "git_commit": git_commit(),  # the kernel has no checkout
            "versions": [],
        }
        if write_kernel is not None:
            return written_by_hand(run_dir, record, Path(write_kernel), waiting.log)
        push_version(run_dir, record, waiting)
    if detach:
        waiting.log(
            f"detached: `kaggle-digits cv --resume {run_dir}` waits for it and brings it home"
        )
        return run_dir
    return bring_home(run_dir, waiting)


def written_by_hand(run_dir: Path, record: dict, folder: Path, log: Log) -> Path:
    """The kernel as files in `folder`, for the official client to push; kernel.json names
    the kernel with no version yet: `cv --resume` finds the version pushed."""
    script = kernel_script(run_dir.name, run_files.read_request(run_dir), record["spec"], None)
    written = write_kernel_files(
        folder, record["ref"], script, record["competition"], record["accelerator"]
    )
    run_files.write_kernel(run_dir, record | {"by_hand": str(folder)})
    log(f"wrote {', '.join(str(path) for path in written)}")
    log(
        f"push it: `kaggle kernels push -p {folder}`; then `kaggle-digits cv --resume "
        f"{run_dir}` waits for it and brings the run home"
    )
    return run_dir


def resume_on_kaggle(run_dir: Path, waiting: Waiting) -> Path:
    """A run trained on Kaggle and not yet home: wait for its kernel and bring it home; where
    the kernel failed or stopped, take its finished pairs home and push a new version that
    trains the rest."""
    record = read_kernel(run_dir)
    if not record["versions"]:
        adopt_version_pushed_by_hand(run_dir, record, waiting.log)
    else:
        adopt_version_saved_on_kaggle(run_dir, record, waiting)
    state = ask(lambda: kaggle_kernels.kernel_status(*current_version(record)), run_dir, waiting)
    if state.finished:
        files, _ = finished_output(run_dir, record, state, waiting)
        if state.status == "COMPLETE" and has_complete_run(run_outputs(files, run_dir.name)):
            return bring_home(run_dir, waiting)
        pairs = take_finished_pairs(run_dir, run_outputs(files, run_dir.name))
        waiting.log(
            f"version {current_version(record)[1]} ended {state.word}: pushing a new version that "
            f"takes the {pairs} finished pair(s) and trains the rest"
        )
        push_version(run_dir, record, waiting)
    return bring_home(run_dir, waiting)


def adopt_version_pushed_by_hand(run_dir: Path, record: dict, log: Log) -> None:
    version = kaggle_kernels.latest_version(record["ref"])
    if version is None:
        owner = record["ref"].split("/", 1)[0]
        raise UserError(
            f"Kaggle shows no kernel {record['ref']}: most likely it is not pushed yet, or it "
            f"was pushed under another slug or account; push it with `kaggle kernels push -p "
            f"{record.get('by_hand', 'DIR')}` with {owner}'s credentials, then run this again"
        )
    url = f"https://www.kaggle.com/code/{record['ref']}"
    record["versions"].append({"version": version, "url": url, "pushed": "by hand"})
    run_files.write_kernel(run_dir, record)
    log(f"the kernel pushed by hand: {record['ref']} version {version}")


def adopt_version_saved_on_kaggle(run_dir: Path, record: dict, waiting: Waiting) -> None:
    """A newer version than the last one pushed from here ("Save Version" on the kernel's
    page, say, after cancelling one that stayed queued) becomes the run's current one."""
    ref, version = current_version(record)
    latest = ask(lambda: kaggle_kernels.latest_version(ref), run_dir, waiting)
    if latest is None or latest <= version:
        return
    url = f"https://www.kaggle.com/code/{ref}"
    record["versions"].append({"version": latest, "url": url, "pushed": "on Kaggle"})
    run_files.write_kernel(run_dir, record)
    waiting.log(f"version {latest} of {ref} was saved on Kaggle after version {version}: its run")


def kernel_slug(run_name: str) -> str:
    return f"kaggle-digits-{run_name}".lower()


def check_gpu_quota(log: Log) -> None:
    quota = kaggle_kernels.gpu_quota()
    if quota.allowed_hours and quota.left_hours <= 0:
        raise UserError(f"your Kaggle GPU quota is spent: {quota.describe()}")
    log(f"Kaggle GPU quota: {quota.describe()}")


def push_version(run_dir: Path, record: dict, waiting: Waiting) -> None:
    """Push the run's script as a new version of its kernel; the pairs finished so far (in
    the run folder here) go with it as a private dataset, which the new version takes up."""
    request = run_files.read_request(run_dir)
    pairs, sources, earlier = finished_pairs(run_dir), (), None
    if pairs:
        leave_out = (KERNEL, KERNEL_LOG)
        dataset = upload_pairs(run_dir, record, leave_out, waiting.log, waiting.poll_seconds)
        run_files.write_kernel(run_dir, record)
        promised = {"pairs": pairs, "pair_names": finished_pair_names(run_dir)}
        sources, earlier = (dataset,), {"dataset": dataset, **promised}
    script = kernel_script(run_dir.name, request, record["spec"], earlier)
    kernel = kaggle_kernels.push_kernel(
        record["ref"],
        script,
        record["competition"],
        record["accelerator"],
        sources,
        first=not record["versions"],
    )
    pushed_at = datetime.now(UTC).isoformat(timespec="seconds")
    record["versions"].append({"version": kernel.version, "url": kernel.url, "pushed": pushed_at})
    run_files.write_kernel(run_dir, record)
    on = record["accelerator"] or "no GPU"
    waiting.log(
        f"pushed {kernel.ref} version {kernel.version} ({on}, private, internet off): {kernel.url}"
    )


# --- waiting ---------------------------------------------------------------------------


def bring_home(run_dir: Path, waiting: Waiting) -> Path:
    """Wait for the kernel's current version; bring its run home, or its finished pairs and
    the one line that says what happened."""
    record = read_kernel(run_dir)
    ref, version = current_version(record)
    live_log = KernelLog(ref, version, waiting.log)
    try:
        state = wait_for(run_dir, record, waiting, live_log)
    except KeyboardInterrupt:
        waiting.log(
            f"stopped waiting; the kernel runs on at {record['versions'][-1]['url']}: "
            f"`kaggle-digits cv --resume {run_dir}` brings it home"
        )
        raise
    files, log = finished_output(run_dir, record, state, waiting)
    run_files.write_kernel_log(run_dir, log)
    live_log.show_rest(log, tail=None if state.status == "COMPLETE" else LOG_TAIL)
    waiting.log(f"kernel {ref} v{version}: {state.word}")
    ours = run_outputs(files, run_dir.name)
    if state.status == "COMPLETE" and has_complete_run(ours):
        move_home(run_dir, ours, record, waiting.log, waiting.track)
        return run_dir
    outcome = outcome_of(files, run_dir.parent / f".{run_dir.name}.outcome")
    pairs = take_finished_pairs(run_dir, ours)
    if state.status == "COMPLETE" and not outcome:  # not ended by in_kernel.main
        raise UserError(
            f"the kernel completed, but its output holds no complete run ({pairs} finished "
            f"pair(s)); `kaggle-digits cv --resume {run_dir}` trains the rest in a new version"
        )
    raise UserError(failed_kernel(run_dir, record, state, outcome, pairs, log))


def finished_output(run_dir: Path, record: dict, state: KernelStatus, waiting: Waiting):
    """A finished version's output files and log; none where Kaggle keeps no output of a
    failed or cancelled version."""
    question = lambda: kaggle_kernels.kernel_output(*current_version(record))  # noqa: E731
    if state.status == "COMPLETE":
        return ask(question, run_dir, waiting)
    try:
        return ask(question, run_dir, waiting)
    except UserError as error:
        waiting.log(f"its output could not be listed ({error})")
        return [], ""


def wait_for(run_dir: Path, record: dict, waiting: Waiting, log: KernelLog) -> KernelStatus:
    """Poll the kernel until it stops: a line at each change of state, the new lines of its
    log as they come (streamed, or where Kaggle shows a running kernel's log), and a live
    status line: the state, the time since, the kernel's address, the log's last line (the
    run's own progress)."""
    ref, version = current_version(record)
    url = record["versions"][-1]["url"]
    started, seen, queued_since = time.monotonic(), None, None
    while True:
        state = ask(lambda: kaggle_kernels.kernel_status(ref, version), run_dir, waiting)
        if state.finished:
            return state  # said by bring_home, after the rest of its log
        if state.status != seen:
            waiting.log(f"kernel {ref} v{version}: {state.word}")
            seen = state.status
        if state.status == "QUEUED":
            queued_since = queued_since or time.monotonic()
            if time.monotonic() - queued_since >= waiting.queued_minutes * 60 > 0:
                waiting.log(still_queued(run_dir, ref, version, url, waiting.queued_minutes))
                queued_since = float("inf")  # said once
        if state.status in ("RUNNING", "CANCEL_REQUESTED"):
            log.show_new_lines()
        if waiting.status is not None:
            minutes = (time.monotonic() - started) / 60
            waiting.status(f"kernel {state.word} {minutes:.1f} min  {url}  {log.last}")
        time.sleep(waiting.poll_seconds)


def still_queued(run_dir: Path, ref: str, version: int, url: str, minutes: float) -> str:
    """What a user can do about a version that stays queued."""
    return (
        f"kernel {ref} v{version} has been queued for {minutes:g} min with no word from "
        "Kaggle (kernels pushed through the API can wait for hours); you can wait, or stop "
        f"waiting with Ctrl-C (`kaggle-digits cv --resume {run_dir}` brings it home later), "
        f'or cancel the version on its page ({url}) and press "Save Version" there: '
        f"`kaggle-digits cv --resume {run_dir}` then brings that version home"
    )


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
    run_dir: Path,
    record: dict,
    state: KernelStatus,
    outcome: dict,
    pairs: int,
    log: str,
) -> str:
    """The one line that says what happened to a kernel that failed, and what is home."""
    lines = log.splitlines()
    ours = [line.removeprefix(ERROR_PREFIX) for line in lines if line.startswith(ERROR_PREFIX)]
    why = outcome.get("error") or (ours[-1] if ours else state.failure)
    ref, version = current_version(record)
    ended = "failed"
    if state.status.startswith("CANCEL"):
        ended = "was cancelled"
    elif outcome.get("status") == "stopped":
        ended = "was stopped"
    home = f"{pairs} finished pair(s) home in {run_dir}" if pairs else "no finished pair"
    log_path = run_files.kernel_log_path(run_dir)
    return (
        f"the kernel {ref} v{version} {ended}" + (f": {why}" if why else "")
        + f"; {home}; its log: {log_path}; `kaggle-digits cv --resume {run_dir}` "
        "trains what is left in a new version"
    )  # fmt: skip
