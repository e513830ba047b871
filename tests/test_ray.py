"""Pairs as Ray tasks: a real local Ray with two CPUs, and a head started on its own.

The runs go through the `kaggle-digits` command in a process of its own, as a user's would:
so each starts its own Ray and can be killed like one."""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, assert_user_error, cv_cli, modules_imported, training_data

from kaggle_digits.base.errors import UserError
from kaggle_digits.jobs.cv import make_runner
from kaggle_digits.options.config import CVConfig
from kaggle_digits.options.presets import preset_config
from kaggle_digits.training.local_pairs import InProcess, LocalWorkers
from kaggle_digits.training.pairs import EpochReport, Pair
from kaggle_digits.training.progress import Progress
from kaggle_digits.training.ray_pairs import RayPairs, pair_resources

pytest.importorskip("ray")

BIN = Path(sys.executable).parent
# one precision: with the preset's "auto", two runs' trials could choose differently
TWO_PAIRS = ["--folds", "2", "--members", "lc-cnn", "--seed", "3", "--precision", "float32"]
RAY_TWO = ("--workers", "2", "--engine", "ray")  # two pairs at once as Ray tasks


def command(small, tmp_path, *args) -> list[str]:
    return [
        str(BIN / "kaggle-digits"),
        "--competition",
        str(small.spec_path),
        "--data-dir",
        str(small.data_dir),
        "cv",
        "--runs-dir",
        str(tmp_path / "runs"),
        *map(str, args),
    ]


def cv(small, tmp_path, *args, threads: int | None = None) -> subprocess.CompletedProcess:
    env = os.environ | ({"TF_NUM_INTRAOP_THREADS": str(threads)} if threads else {})
    if threads:
        env |= {"TF_NUM_INTEROP_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(
        command(small, tmp_path, *args), capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def start_cv(small, tmp_path, *args) -> subprocess.Popen:
    """A `cv` running on, its output (both streams) line by line in `.stdout`."""
    return subprocess.Popen(
        command(small, tmp_path, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )


def run_dirs(tmp_path) -> list[Path]:
    return sorted(path for path in (tmp_path / "runs").iterdir() if path.name != "latest")


def files_of(run_dir: Path) -> list[str]:
    return sorted(str(path.relative_to(run_dir)) for path in run_dir.rglob("*"))


def pair_processes() -> list[int]:
    """Ray workers training a pair now (Ray names a worker's process after its task)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"_fit_pair_task" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def read_until(process: subprocess.Popen, fragment: str, lines: list[str]) -> None:
    """Read the run's output into `lines` up to a line holding `fragment`."""
    for line in process.stdout:
        lines.append(line)
        if fragment in line:
            return
    raise AssertionError(f"the run ended before {fragment!r}:\n{''.join(lines)}")


def test_resources_a_pair_asks_for():
    one_machine = [{"CPU": 2.0}]
    assert pair_resources(one_machine, requested=2, pairs=4, threads=1) == (0, 1, 2)
    # a cluster of 8 and 4 cores, 5 pairs: two threads each (12 // 5), five at once
    assert pair_resources([{"CPU": 8}, {"CPU": 4}], requested=0, pairs=5) == (0, 2, 5)
    # asked for two at a time: a share of 6 cores, but never more than the smaller node has
    assert pair_resources([{"CPU": 8}, {"CPU": 4}], requested=2, pairs=5) == (0, 4, 2)
    # GPUs: one each, as many at once as there are GPUs
    assert pair_resources([{"CPU": 8, "GPU": 2}], requested=0, pairs=5) == (1, 4, 2)
    assert pair_resources([{"CPU": 8, "GPU": 2}], requested=1, pairs=5) == (1, 4, 1)


def test_the_engine_is_the_one_asked_for_and_ray_only_when_asked(monkeypatch):
    """auto: one worker in this process, more in worker processes, Ray only for --ray; each
    engine by name; --ray beside another engine, or without Ray installed: one line."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # as it was: no token to find
    assert isinstance(make_runner(CVConfig(workers=1)), InProcess)
    assert isinstance(make_runner(CVConfig(workers=2)), LocalWorkers)
    assert isinstance(make_runner(CVConfig(workers=2), "127.0.0.1:6379"), RayPairs)
    assert isinstance(make_runner(CVConfig(workers=2, engine="ray")), RayPairs)
    assert isinstance(make_runner(CVConfig(workers=1, engine="processes")), LocalWorkers)
    assert isinstance(make_runner(CVConfig(workers=0, engine="in-process")), InProcess)
    with pytest.raises(UserError, match="--ray trains the pairs as Ray tasks: drop --engine"):
        make_runner(CVConfig(engine="processes"), "127.0.0.1:6379")
    with pytest.raises(UserError, match="--engine in-process trains one pair at a time"):
        preset_config("quick", engine="in-process", workers=2)
    monkeypatch.setattr("kaggle_digits.training.ray_pairs.ray_installed", lambda: False)
    with pytest.raises(
        Exception, match=r"Ray is not installed: pip install 'kaggle-digits\[ray\]'"
    ):
        make_runner(CVConfig(), "127.0.0.1:6379").__enter__()
    runners_without_ray = (
        "from kaggle_digits.options.config import CVConfig\n"
        "from kaggle_digits.jobs.cv import make_runner\n"
        "make_runner(CVConfig(workers=1)); make_runner(CVConfig(workers=0, folds=2));"
        "make_runner(CVConfig(workers=2))"
    )
    assert modules_imported(runners_without_ray, "ray") == [False]


def test_a_retried_pair_is_shown_training_again():
    lines = []
    pair = Pair(0, 0, "mlp", 1)
    progress = Progress([pair], [], 3, 1, workers=1, log=lines.append)
    progress.epoch_done(EpochReport(pair, 1, {"loss": 1.0}, 2.0))
    progress.epoch_done(EpochReport(pair, 2, {"loss": 0.5}, 2.0))
    progress.epoch_done(EpochReport(pair, 1, {}, 0.5, step=1, steps=4, finished=False))
    assert "fold 1/1 member 1/1 mlp: its worker was lost; training it again" in lines
    progress.epoch_done(EpochReport(pair, 1, {"loss": 0.9}, 2.0))
    assert lines[-1].startswith("fold 1/1 member 1/1 mlp epoch 1/3")


def test_ray_workers_leave_the_files_of_a_sequential_run(small, tmp_path):
    """Two Ray tasks of one thread each against one process with one thread: the same folds,
    files and configuration, and the same probabilities to 1e-5."""
    cv(small, tmp_path / "one", *TWO_PAIRS, "--epochs", "2", "--workers", "1", threads=1)
    with_ray = cv(
        small, tmp_path / "two", *TWO_PAIRS, "--epochs", "2", "--workers", "2", "--engine", "ray"
    )
    assert "training 2 pairs at a time as Ray tasks on a Ray on this machine, 1 thread(s) each" in (
        with_ray.stdout
    )
    assert "fold 2/2 member 1/1 lc-cnn epoch 2/2" in with_ray.stdout and "ETA" in with_ray.stdout
    [one], [two] = run_dirs(tmp_path / "one"), run_dirs(tmp_path / "two")
    assert files_of(one) == files_of(two)
    configs = [json.loads((run / "config.json").read_text()) for run in (one, two)]
    assert configs[1]["execution"] == {
        "engine": "ray",
        "address": "local",
        "pairs_at_once": 2,
        "threads_per_pair": 1,
        "gpus_per_pair": 0,
    }
    assert configs[0]["execution"]["engine"] == "in-process"
    different = {key for key in configs[0] if configs[0][key] != configs[1][key]}
    assert different <= {"workers", "engine", "execution", "chosen_by"}, different
    chosen = [config["chosen_by"] for config in configs]  # --engine given to one of them
    assert {key for key in chosen[0] if chosen[0][key] != chosen[1][key]} <= {"engine"}
    for name in ("folds.npy", "oof_probs.npy", "test_probs.npy"):
        np.testing.assert_allclose(np.load(one / name), np.load(two / name), atol=1e-5)


def test_the_pairs_start_in_fresh_ray_workers_after_a_trial(small):
    """A process keeps what a trial's nets held: the trial's workers exit after it, so a task
    sent after the trial gets a worker that has not even imported Keras."""
    import ray

    def keras_imported() -> bool:
        return "keras" in sys.modules

    data = training_data(small)
    config = replace(TINY, members=("mlp",), workers=2)
    with RayPairs(2, pairs=2) as runner:
        runner.time_steps(data, config, "mlp")
        probe = ray.remote(keras_imported).options(**runner._task_options())
        assert ray.get([probe.remote() for _ in range(2)]) == [False, False]
    assert runner.restart_seconds > 0  # measured as the trial's tasks began


def test_a_worker_killed_mid_pair_is_retried(small, tmp_path):
    process = start_cv(small, tmp_path, *TWO_PAIRS, "--epochs", "40", *RAY_TWO)
    lines: list[str] = []
    try:
        read_until(process, "fold 1/2 member 1/1 lc-cnn epoch 1/40", lines)
        if "fold 2/2 member 1/1 lc-cnn epoch 1/40" not in "".join(lines):
            read_until(process, "fold 2/2 member 1/1 lc-cnn epoch 1/40", lines)
        workers = pair_processes()  # both are training now
        assert workers, "no Ray worker training a pair"
        os.kill(workers[0], signal.SIGKILL)
        lines += process.stdout.readlines()
    finally:
        process.kill() if process.poll() is None else None
    output = "".join(lines)
    assert process.wait() == 0, output
    assert "its worker was lost; training it again" in output
    [run] = run_dirs(tmp_path)
    assert (run / "metrics.json").is_file()
    for fold in (0, 1):
        result = json.loads((run / f"fold{fold}" / "member0-lc-cnn" / "result.json").read_text())
        assert result["epochs_trained"] == 40


def test_a_killed_driver_leaves_finished_pairs_and_resume_finishes_with_ray(small, tmp_path):
    args = ["--folds", "3", "--members", "mlp", "--epochs", "30"]
    process = start_cv(small, tmp_path, *args, *RAY_TWO)
    lines: list[str] = []
    try:
        read_until(process, "held-out accuracy", lines)  # a pair is finished and written
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    [run] = run_dirs(tmp_path)
    finished = sorted(run.glob("fold*/*/result.json"))
    assert 1 <= len(finished) < 3 and not (run / "metrics.json").exists()
    # what was being written when the driver died is not left half-written
    assert not [path for path in run.rglob("*") if path.name.startswith(".")]
    deadline = time.monotonic() + 60
    while pair_processes() and time.monotonic() < deadline:
        time.sleep(1)  # Ray ends the dead driver's tasks
    assert not pair_processes()

    resumed = cv(small, tmp_path, "--resume", run.name, *RAY_TWO)
    assert resumed.stdout.count(": done") == len(finished)
    assert "as Ray tasks" in resumed.stdout
    assert (run / "metrics.json").is_file()
    assert len(list(run.glob("fold*/*/result.json"))) == 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_head(port: int, env: dict) -> subprocess.Popen:
    head = subprocess.Popen(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",  # the head's processes live as long as this one
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return head
        except OSError:
            assert time.monotonic() < deadline and head.poll() is None, "no Ray head"
            time.sleep(1)


def test_a_run_on_a_separately_started_head(small, tmp_path):
    """A head with token authentication, as `ray start --head` runs where a token exists: a
    driver without the token is told so in one line; with it, the run spreads over the head."""
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = start_head(
        port, os.environ | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    )
    try:
        without = os.environ | {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "none")}
        without.pop("RAY_AUTH_MODE", None)
        refused = subprocess.run(
            command(small, tmp_path, "--ray", address), capture_output=True, text=True, env=without
        )
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.strip().splitlines() == [
            f"error: the Ray cluster at {address} wants its token: copy the head's "
            "~/.ray/auth_token to this machine (or set RAY_AUTH_TOKEN)"
        ]
        with_token = without | {"RAY_AUTH_TOKEN_PATH": str(token)}
        done = subprocess.run(
            command(small, tmp_path, *TWO_PAIRS, "--epochs", "1", "--ray", address),
            capture_output=True,
            text=True,
            env=with_token,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"as Ray tasks on the Ray cluster at {address}, 1 thread(s) each" in done.stdout
        [run] = run_dirs(tmp_path)
        config = json.loads((run / "config.json").read_text())
        assert config["execution"]["address"] == address
        assert config["workers"] == 2 and (run / "metrics.json").is_file()
    finally:
        head.terminate()
        head.wait(timeout=60)


def test_an_unreachable_ray_address_is_one_line(small, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    port = free_port()  # nothing listens there
    result = cv_cli(small, tmp_path, "--ray", f"127.0.0.1:{port}")
    assert_user_error(result, f"cannot reach a Ray cluster at 127.0.0.1:{port}")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
