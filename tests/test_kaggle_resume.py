"""`cv --on kaggle` when Kaggle keeps a user waiting: a version that stays queued, a new
dataset version that becomes the one kernels attach only after a while, a run resumed
twice; against the stand-in Kaggle (stub_kernels.py), which behaves so."""

import json
import time

import pytest
from helpers import assert_user_error
from kernel_helpers import SHORT, cli, finish_later, only_run, pushes

from kaggle_digits.base.errors import UserError
from kaggle_digits.on_kaggle import in_kernel
from kaggle_digits.store.run_files import KERNEL, KERNEL_LOG

STILL_QUEUED = "has been queued for"


SLEEP = time.sleep


def stop_waiting_after(monkeypatch, seconds: float) -> None:
    """Ctrl-C once `seconds` have gone by, at the command's next pause."""
    from kaggle_digits.on_kaggle import remote_run

    sleep, deadline = SLEEP, time.monotonic() + seconds

    def pause(pause_seconds: float) -> None:
        if time.monotonic() > deadline:
            raise KeyboardInterrupt
        sleep(pause_seconds)

    monkeypatch.setattr(remote_run.time, "sleep", pause)


def test_a_queued_kernel_is_said_once_and_a_version_saved_on_its_page_is_taken(kaggle, monkeypatch):
    kaggle.kernels.api_pushes_queued = True  # pushed through the API: queued for hours
    stop_waiting_after(monkeypatch, 1.5)
    waited = cli(kaggle, "cv", "--on", "kaggle", *SHORT, "--queued-minutes", "0.01")
    assert waited.exit_code != 0
    assert waited.stdout.count(STILL_QUEUED) == 1
    (said,) = [line for line in waited.stdout.splitlines() if STILL_QUEUED in line]
    run_dir = only_run(kaggle)
    ref = pushes(kaggle)[0]["slug"]
    assert f"https://www.kaggle.com/code/{ref}" in said and "Save Version" in said
    assert f"kaggle-digits cv --resume {run_dir}" in said
    assert "the kernel runs on at" in waited.stdout  # Ctrl-C left it as it was
    monkeypatch.setattr(time, "sleep", SLEEP)

    # the user cancels it on its page and presses "Save Version" there
    kaggle.kernels.cancel(ref)
    kaggle.kernels.save_from_page(ref)
    finish_later(kaggle, "RUNNING", "COMPLETE", version=2)
    resumed = cli(kaggle, "cv", "--resume", run_dir.name)
    assert_user_error(resumed, "holds no complete run")  # nothing ran: no image here
    assert f"version 2 of {ref} was saved on Kaggle after version 1" in resumed.stdout
    assert len(pushes(kaggle)) == 1  # nothing pushed from here
    versions = json.loads((run_dir / KERNEL).read_text())["versions"]
    assert [version["version"] for version in versions] == [1, 2]


def test_no_word_about_the_queue_before_its_minutes(kaggle, monkeypatch):
    kaggle.kernels.api_pushes_queued = True
    stop_waiting_after(monkeypatch, 1.0)
    waited = cli(kaggle, "cv", "--on", "kaggle", *SHORT)  # 30 minutes by default
    assert waited.exit_code != 0 and STILL_QUEUED not in waited.stdout


def test_queued_minutes_needs_on_kaggle_and_no_less_than_none(kaggle):
    refused = cli(kaggle, "cv", *SHORT, "--queued-minutes", "5")
    assert_user_error(refused, "--queued-minutes works with --on kaggle only")
    negative = cli(kaggle, "cv", "--on", "kaggle", *SHORT, "--queued-minutes", "-1")
    assert_user_error(negative, "--queued-minutes must be 0 (never) or more, not -1")
    assert pushes(kaggle) == []


@pytest.mark.image
def test_a_run_stopped_twice_resumes_twice_and_trains_each_pair_once(kaggle):
    # three pairs; each version dies (SIGKILL) as the second pair it trains ends its epoch
    kaggle.kernels.environment = {"KAGGLE_DIGITS_KILL_AT": "epoch:2"}
    # a new dataset version is ready at once, and the one kernels attach 2 s later
    kaggle.kernels.polls_before_ready = 0
    kaggle.kernels.current_version_after = 2.0
    kaggle.kernels.unknown_after_create = 0.5  # and a new dataset is unknown for a moment
    args = ("--preset", "quick", "--folds", "3", *SHORT)
    first = cli(kaggle, "cv", "--on", "kaggle", *args)
    run_dir = only_run(kaggle)
    assert_user_error(first, "v1 failed", f"1 finished pair(s) home in {run_dir}")

    second = cli(kaggle, "cv", "--resume", run_dir.name)
    assert_user_error(second, "v2 failed", f"2 finished pair(s) home in {run_dir}")
    assert "took 1 finished pair(s)" in second.stdout

    kaggle.kernels.environment = {}
    third = cli(kaggle, "cv", "--resume", run_dir.name)
    assert third.exit_code == 0, third.output
    dataset = pushes(kaggle)[2]["datasetDataSources"][0]
    assert f"waiting for version 2 of {dataset} to become its current one" in third.stdout
    assert "took 2 finished pair(s)" in third.stdout
    log = (run_dir / KERNEL_LOG).read_text()
    trained = [fold for fold in (1, 2, 3) if f"fold {fold}/3 member 1/1 tiny-cnn epoch" in log]
    assert trained == [3]  # the last version trained the third pair alone

    ref = pushes(kaggle)[0]["slug"]
    made_by = {"fold0/member0-tiny-cnn": 0, "fold1/member0-tiny-cnn": 1}
    for pair, version in made_by.items():
        working = kaggle.kernels.versions[ref][version].working / run_dir.name
        result = f"{pair}/result.json"
        assert (run_dir / result).read_bytes() == (working / result).read_bytes()
    assert (run_dir / "metrics.json").is_file()


def test_a_kernel_given_an_older_dataset_than_promised_stops_in_one_line(tmp_path):
    request = {"a": 1}
    earlier_run = tmp_path / "input" / "datasets" / "tester" / "d" / "r"
    (earlier_run / "fold0" / "member0-tiny-cnn").mkdir(parents=True)
    (earlier_run / "fold0" / "member0-tiny-cnn" / "result.json").write_text("{}")
    (earlier_run / "request.json").write_text(json.dumps(request))
    promised = ["fold0/member0-tiny-cnn", "fold1/member0-tiny-cnn"]
    earlier = {"dataset": "tester/d", "pairs": 2, "pair_names": promised}
    given = {"run": "r", "request": request, "earlier": earlier}
    said = r"holds 1 of the 2 finished pair\(s\) promised \(missing fold1/member0-tiny-cnn\)"
    with pytest.raises(UserError, match=said + ": Kaggle attached an older"):
        in_kernel.take_earlier_pairs(given, tmp_path / "input", tmp_path / "working" / "r")
    assert not (tmp_path / "working" / "r").exists()  # nothing taken: nothing trained twice
