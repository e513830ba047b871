"""Faults, tried the way crash-safe tools test themselves: a run killed by SIGKILL at many
moments and resumed each time, SIGTERM, two commands at once, damaged files (a full disk is
test_full_disk.py's). The kills come from the process itself at named points (faults.py,
KAGGLE_DIGITS_KILL_AT), so that each lands where it is meant to, not where a timer happens to."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fault_helpers import TINY_CV, assert_nothing_half_done, temporary_files
from helpers import assert_user_error, fake_run, run_cli, run_tiny, small_dataset

from kaggle_digits.base.faults import KILL_AT
from kaggle_digits.jobs.ledger import Ledger
from kaggle_digits.jobs.runs import list_runs, run_state
from kaggle_digits.machine.backend import worker_variables
from kaggle_digits.options.config import CVConfig
from kaggle_digits.store.run_folder import find_run, new_run_dir, writing

SCRIPT = Path(__file__).parent / "kaggle_cli.py"
KILLED = -signal.SIGKILL


def kaggle_digits(
    *args,
    url: str = "-",
    kill_at: str | None = None,
    wait: bool = True,
    threads: int | None = None,
):
    """`kaggle-digits ARGS` in a process of its own, killed at `kill_at` (faults.py), its
    backend given `threads` CPU threads where set."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if threads is not None:
        environment |= worker_variables(threads)
    environment.pop(KILL_AT, None)
    if kill_at is not None:
        environment[KILL_AT] = kill_at
    command = [sys.executable, str(SCRIPT), url, *map(str, args)]
    if not wait:
        return subprocess.Popen(
            command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)


def test_a_run_killed_at_any_moment_resumes_to_the_oof_of_an_uninterrupted_run(small, tmp_path):
    runs_dir = tmp_path / "runs"
    test_rows = len(small_dataset(small).test_images)

    # one thread a pair in every process, the uninterrupted run's too: a pair then trains
    # to the same numbers whichever process trains it (in-process or a worker of two)
    def cv(*args, kill_at=None, wait=True, runs=runs_dir):
        return kaggle_digits(
            "--competition", small.spec_path, "--data-dir", small.data_dir,
            "cv", "--runs-dir", runs, *args, kill_at=kill_at, wait=wait, threads=1,
        )  # fmt: skip

    killed = cv(*TINY_CV, "--precision", "auto", "--workers", "1", kill_at="trial")
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    [run_dir] = runs_dir.iterdir()
    assert not (run_dir / "config.json").exists()  # killed before its options were settled
    progress = [assert_nothing_half_done(run_dir, test_rows)]
    moments = [
        "write result.json:1",  # the trial again; the first pair's files written but the last
        "epoch:2",  # the second pair training
        "sigterm",  # the pairs side by side in worker processes, stopped by SIGTERM
        "write oof_probs.npy",  # every pair done, the run's summary begun
        "write metrics.json",  # the summary written but the file that completes it
    ]
    for moment in moments:
        if moment == "sigterm":
            stop_by_sigterm(cv("--resume", run_dir, "--workers", "2", wait=False), run_dir)
        else:
            killed = cv("--resume", run_dir, "--workers", "1", kill_at=moment)
            assert killed.returncode == KILLED, (moment, killed.stderr[-3000:])
        if moment.startswith("write "):  # killed with the file under its temporary name
            stem = moment.split()[1].split(".")[0]
            assert any(name.startswith(f".{stem}-") for name in temporary_files(run_dir))
        progress.append(assert_nothing_half_done(run_dir, test_rows))
    assert progress[:3] == [0, 0, 1] and progress[3] in (2, 3) and progress[4:] == [4, 4]

    resumed = run_cli(
        "--competition", small.spec_path, "--data-dir", small.data_dir,
        "cv", "--resume", run_dir, "--runs-dir", runs_dir, "--workers", "1",
    )  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    assert temporary_files(run_dir) == []  # what the killed processes were writing, gone
    assert run_state(run_dir)[0] == "complete"
    assert find_run(runs_dir) == run_dir.resolve()
    settled = CVConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    uninterrupted_dir = tmp_path / "uninterrupted"
    uninterrupted = cv(
        *TINY_CV, "--precision", settled.precision, "--workers", "1", runs=uninterrupted_dir
    )
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    np.testing.assert_allclose(
        np.load(run_dir / "oof_probs.npy"),
        np.load(find_run(uninterrupted_dir) / "oof_probs.npy"),
        atol=1e-5,
    )  # the tolerance docs/runs.md states


def stop_by_sigterm(process: subprocess.Popen, run_dir: Path) -> None:
    """SIGTERM once one more pair has finished: it stops as Ctrl-C does, with one line."""
    pairs = lambda: len(list(run_dir.glob("fold*/member*/result.json")))  # noqa: E731
    before, deadline = pairs(), time.monotonic() + 300
    while pairs() == before:
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, errors = process.communicate(timeout=60)  # the workers killed, not waited for
    assert process.returncode == 130, errors[-3000:]  # as for Ctrl-C
    assert f"stopped: `kaggle-digits cv --resume {run_dir}` finishes this run" in output
    assert "Traceback" not in errors


def test_a_killed_blend_leaves_no_run_and_blending_again_gives_what_it_would_have(small, tmp_path):
    runs_dir = tmp_path / "runs"
    dataset = small_dataset(small)
    fake_run(runs_dir, "a", dataset, good_classes=[0, 1, 2, 3, 4])
    fake_run(runs_dir, "b", dataset, good_classes=[5, 6, 7, 8, 9])

    def blend(kill_at=None):
        return kaggle_digits(
            "--competition", small.spec_path, "--data-dir", small.data_dir,
            "blend", "a", "b", "--runs-dir", runs_dir, kill_at=kill_at,
        )  # fmt: skip

    for moment in ("write oof_probs.npy", "write metrics.json"):
        killed = blend(kill_at=moment)
        assert killed.returncode == KILLED, killed.stderr[-3000:]
        listed = [row.run_id for row in list_runs(runs_dir, tmp_path / "submissions")]
        assert sorted(listed) == ["a", "b"]  # no blend, whole or half
        assert find_run(runs_dir).name in ("a", "b")
    # what the last killed blend was writing (the one before it removed the first's)
    assert len(list(runs_dir.glob(".blend-*"))) == 1
    for _ in range(2):
        assert blend().returncode == 0
    assert list(runs_dir.glob(".blend-*")) == []  # their process gone, removed
    first, second = sorted(path for path in runs_dir.glob("*-blend*") if path.is_dir())
    np.testing.assert_array_equal(
        np.load(first / "oof_probs.npy"), np.load(second / "oof_probs.npy")
    )
    assert run_state(first)[0] == run_state(second)[0] == "complete"


def test_a_submit_killed_before_or_after_its_upload_loses_nothing_and_sends_nothing_twice(
    kaggle_server, trained, tmp_path
):
    submissions_dir = tmp_path / "submissions"
    ledger = Ledger(submissions_dir / "ledger.csv")

    def submit(kill_at=None):
        return kaggle_digits(
            "--competition", trained.spec_path, "--data-dir", trained.data_dir,
            "submit", "--runs-dir", trained.runs_dir, "--submissions-dir", submissions_dir,
            "--poll-every", "0.05", "--wait", "10", url=kaggle_server.url, kill_at=kill_at,
        )  # fmt: skip

    killed = submit(kill_at="ledger")  # before the upload's first row
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    assert kaggle_server.submissions == [] and ledger.rows() == []
    killed = submit(kill_at="upload")  # Kaggle has the file; the ledger not its ref
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    [uploaded] = kaggle_server.submissions
    assert [row["status"] for row in ledger.rows()] == ["uploading"]

    again = submit()
    assert again.returncode == 2, again.stderr[-3000:]
    assert "already submitted" in again.stderr and "Traceback" not in again.stderr
    assert len(kaggle_server.submissions) == 1  # found again, not sent again
    assert f"found on Kaggle as submission {uploaded.ref}" in again.stdout
    [submission] = ledger.submissions()
    assert (submission["kaggle_ref"], submission["status"]) == (str(uploaded.ref), "submitted")


def test_a_ledger_line_cut_short_by_a_crash_is_neither_read_nor_kept(tmp_path):
    ledger = Ledger(tmp_path / "ledger.csv")
    ledger.append({"file": "a.csv", "sha256": "a", "status": "failed", "reason": "one\ntwo"})
    with open(ledger.path, "ab") as file:
        file.write(b"2026-12-03T10:00:00+00:00,b.csv,b,run-b,0.99")  # the crash came here
    assert [row["file"] for row in ledger.rows()] == ["a.csv"]
    ledger.append({"file": "c.csv", "sha256": "c", "status": "failed"})
    assert [row["file"] for row in ledger.rows()] == ["a.csv", "c.csv"]
    lines = ledger.path.read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("time,file,sha256")  # header, a, c
    assert ledger.rows()[0]["reason"] == "one two"  # an event is one line


def test_a_ledger_that_is_not_one_is_refused_with_one_line(kaggle_server, trained, tmp_path):
    ledger = tmp_path / "submissions" / "ledger.csv"
    ledger.parent.mkdir()
    ledger.write_text("ImageId,Label\n1,7\n")  # a submission saved over it
    submitted = run_cli(
        "--competition", trained.spec_path, "--data-dir", trained.data_dir, "submit",
        "--runs-dir", trained.runs_dir, "--submissions-dir", ledger.parent,
    )  # fmt: skip
    assert_user_error(submitted, f"{ledger}: line 1 is not the ledger's header")
    assert kaggle_server.submissions == []  # refused before anything was sent


def copy_with_other_predictions(run_dir: Path, runs_dir: Path, name: str, shift: int) -> Path:
    """A copy of a complete run under another name whose test predictions differ."""
    copy = shutil.copytree(run_dir, runs_dir / name)
    test_probs = np.load(copy / "test_probs.npy")
    np.save(copy / "test_probs.npy", np.roll(test_probs, shift, axis=1))
    return copy


def test_two_submits_at_once_both_land_in_the_ledger_whole(kaggle_server, trained, tmp_path):
    runs_dir = tmp_path / "runs"
    shutil.copytree(trained.run_dir, runs_dir / trained.run_dir.name)
    other = copy_with_other_predictions(trained.run_dir, runs_dir, "20990101-000000-other", 1)
    third = copy_with_other_predictions(trained.run_dir, runs_dir, "20990101-000000-third", 2)
    ledger = Ledger(tmp_path / "submissions" / "ledger.csv")

    def submit(run):
        return kaggle_digits(
            "--competition", trained.spec_path, "--data-dir", trained.data_dir,
            "submit", run, "--runs-dir", runs_dir,
            "--submissions-dir", ledger.path.parent, "--poll-every", "0.05", "--wait", "10",
            url=kaggle_server.url, wait=False,
        )  # fmt: skip

    both = [submit(trained.run_dir.name), submit(other.name)]
    results = [(process.wait(120), process.communicate()[1]) for process in both]
    assert [code for code, _ in results] == [0, 0], results
    assert len(kaggle_server.submissions) == 2
    assert sorted(row["status"] for row in ledger.submissions()) == ["complete", "complete"]
    lines = ledger.path.read_text().splitlines()
    assert sum(line.startswith("time,") for line in lines) == 1 and len(lines) == 1 + 6

    same = [submit(third.name), submit(third.name)]  # the same file twice at once
    results = [(process.wait(120), process.communicate()[1]) for process in same]
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(errors for code, errors in results if code == 2)
    assert "already submitted" in refused or "being uploaded by another" in refused
    assert len(kaggle_server.submissions) == 3  # one upload, not two


def test_two_runs_started_at_once_get_folders_of_their_own(tmp_path):
    start = threading.Barrier(8)
    made = []

    def make():
        start.wait()
        made.append(new_run_dir(tmp_path / "runs", "default"))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 8 and all(folder.is_dir() for folder in made)


def test_a_run_being_written_shows_as_running_and_cannot_be_resumed_twice(small, tmp_path):
    run_dir = fake_run(tmp_path / "runs", "20261203-101500-quick", small_dataset(small), [0])
    (run_dir / "metrics.json").unlink()  # as it is while its pairs train
    with writing(run_dir):  # as a `cv` in another process holds it
        [row] = list_runs(tmp_path / "runs", tmp_path / "submissions")
        assert row.state == "running"
        resumed = run_cli(
            "--competition", small.spec_path, "--data-dir", small.data_dir,
            "cv", "--resume", run_dir, "--runs-dir", tmp_path / "runs",
        )  # fmt: skip
        assert_user_error(resumed, "another `kaggle-digits cv` is writing this run now")
    [row] = list_runs(tmp_path / "runs", tmp_path / "submissions")
    assert row.state.startswith("incomplete: kaggle-digits cv --resume")


def test_damaged_pair_files_are_found_by_runs_refused_by_submit_and_retrained_by_resume(
    small, tmp_path
):
    runs_dir = tmp_path / "runs"
    run_dir = run_tiny(small, tmp_path).run_dir
    oof_before = np.load(run_dir / "oof_probs.npy")
    damaged = [  # each a copy cut short; model.keras: test_predict
        next(run_dir.glob(pattern))
        for pattern in (
            "fold0/member1-*/holdout_probs.npy",
            "fold1/member0-*/test_probs.npy",
            "fold1/member1-*/result.json",
        )
    ]
    for path in damaged:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    untouched = next(run_dir.glob("fold0/member0-*/result.json"))
    stamp = untouched.stat().st_mtime_ns

    [row] = list_runs(runs_dir, tmp_path / "submissions")
    first = damaged[0].relative_to(run_dir)
    assert row.state.startswith(f"damaged: {first} is cut short") and not row.complete
    common = ("--competition", small.spec_path, "--data-dir", small.data_dir)
    submitted = run_cli(
        *common, "submit", "--runs-dir", runs_dir, "--submissions-dir", tmp_path / "submissions",
        "--dry-run",
    )  # fmt: skip
    assert_user_error(submitted, "damaged", str(damaged[0]), "cv --resume")

    resumed = run_cli(*common, "cv", "--resume", run_dir, "--runs-dir", runs_dir)
    assert resumed.exit_code == 0, resumed.output
    for path, (fold, member) in zip(damaged, [(1, 2), (2, 1), (2, 2)], strict=True):
        retrained = (
            f"{path} is cut short or unreadable: training fold {fold}, member {member} again"
        )
        assert retrained in resumed.stdout
    assert untouched.stat().st_mtime_ns == stamp  # the sound pair kept
    assert run_state(run_dir)[0] == "complete"
    np.testing.assert_allclose(np.load(run_dir / "oof_probs.npy"), oof_before, atol=1e-5)


def test_a_run_whose_saved_options_are_garbled_is_one_line_on_resume(small, tmp_path):
    runs_dir = tmp_path / "runs"
    run_dir = fake_run(runs_dir, "20261203-101500-quick", small_dataset(small), [0])
    (run_dir / "metrics.json").unlink()
    common = ("--competition", small.spec_path, "--data-dir", small.data_dir, "cv")
    (run_dir / "folds.npy").write_bytes(b"\x93NUMPY")  # cut short
    resumed = run_cli(*common, "--resume", run_dir, "--runs-dir", runs_dir)
    assert_user_error(resumed, f"{run_dir / 'folds.npy'} is cut short or unreadable")
    (run_dir / "config.json").write_text('{"preset": "quick", "fol')
    resumed = run_cli(*common, "--resume", run_dir, "--runs-dir", runs_dir)
    assert_user_error(resumed, f"{run_dir / 'config.json'} is cut short or unreadable")
    [row] = list_runs(runs_dir, tmp_path / "submissions")
    assert row.state.startswith("incomplete")


def test_a_runs_folder_that_cannot_be_made_is_one_line(small, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    result = run_cli(
        "--competition", small.spec_path, "--data-dir", small.data_dir,
        "cv", *TINY_CV, "--runs-dir", a_file / "runs",
    )  # fmt: skip
    assert_user_error(result, str(a_file), "not a directory")


@pytest.mark.parametrize("option", ["--runs-dir", "--data-dir"])
def test_a_folder_option_naming_a_file_is_one_line(small, tmp_path, option):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    folders = {"--runs-dir": tmp_path / "runs", "--data-dir": small.data_dir, option: a_file}
    result = run_cli(
        "--competition", small.spec_path, "--data-dir", folders["--data-dir"],
        "cv", *TINY_CV, "--runs-dir", folders["--runs-dir"],
    )  # fmt: skip
    assert_user_error(result, str(a_file))
