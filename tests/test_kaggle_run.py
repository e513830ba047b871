"""`cv --on kaggle`: the run trained in a Kaggle kernel and brought home, against the
stand-in Kaggle, which behaves as Kaggle does in 2026 (stub_kernels.py: no kernel as its own
source, the log as one JSON line) and runs each pushed script as Kaggle does: in an
environment with TensorFlow and Keras but without this package, no network, the inputs
read-only where Kaggle mounts them under /kaggle/input, in /kaggle/working.

KAGGLE_DIGITS_TEST_IMAGE=<python> runs the kernels with that interpreter instead (one with
Kaggle's own TensorFlow and Keras versions, say)."""

import json

import numpy as np
import pytest
from helpers import TENSORFLOW_CHATTER, assert_user_error
from kernel_helpers import SHORT, cli, finish_later, only_run, pushes

from kaggle_digits.base.errors import UserError
from kaggle_digits.on_kaggle.remote_run import kernel_slug
from kaggle_digits.store.run_files import KERNEL, KERNEL_LOG


@pytest.mark.image
def test_a_run_trained_in_a_kernel_comes_home_as_a_run_of_its_own(kaggle):
    result = cli(kaggle, "cv", "--on", "kaggle", "--preset", "quick", "--epochs", "1")
    assert result.exit_code == 0, result.output
    (push,) = pushes(kaggle)
    assert push["isPrivate"] and push["enableGpu"] and not push["enableInternet"]
    assert push["machineShape"] == "NvidiaTeslaT4"
    assert push["competitionDataSources"] == [kaggle.slug]
    assert (push["language"], push["kernelType"]) == ("python", "script")
    run_dir = only_run(kaggle)
    assert push["slug"] == f"{kaggle.username}/{kernel_slug(run_dir.name)}"
    assert "brought the run home" in result.stdout and "CV accuracy" in result.stdout
    config = json.loads((run_dir / "config.json").read_text())
    where = config["kaggle"]
    assert (where["kernel"], where["version"]) == (push["slug"], 1)
    assert where["gpus"] == [] and where["keras"] and where["tensorflow"]
    assert config["precision"] in ("float32", "mixed_bfloat16")  # the kernel's trial chose
    assert "took" not in (run_dir / KERNEL_LOG).read_text()  # nothing earlier to take up
    # its log followed live, as `kaggle kernels logs -f` does, and shown as text
    assert any(call.startswith("GET /api/v1/kernels/logs/stream/") for call in kaggle.calls)
    assert "  | kaggle-digits in a Kaggle kernel" in result.stdout
    kernel_log = (run_dir / KERNEL_LOG).read_text()
    assert "kaggle-digits in a Kaggle kernel" in kernel_log
    assert [word for word in TENSORFLOW_CHATTER if word in kernel_log] == []
    # every command takes it as a local run
    listed = cli(kaggle, "runs")
    assert run_dir.name in listed.stdout and "complete" in listed.stdout
    submitted = cli(kaggle, "submit", "--submissions-dir", kaggle.data_dir.parent / "subs")
    assert submitted.exit_code == 0, submitted.output
    assert "public score" in submitted.stdout
    oof = np.load(run_dir / "oof_probs.npy")
    assert oof.shape == (len(np.load(run_dir / "folds.npy")), 10)


@pytest.mark.image
def test_a_kernel_killed_after_its_first_pair_resumes_from_a_private_dataset(kaggle):
    # the kernel dies (SIGKILL) as its second pair ends its first epoch: one pair is saved
    kaggle.kernels.environment = {"KAGGLE_DIGITS_KILL_AT": "epoch:2"}
    failed = cli(kaggle, "cv", "--on", "kaggle", "--preset", "quick", *SHORT)
    run_dir = only_run(kaggle)
    assert_user_error(
        failed, "v1 failed", "The script exited with code", f"1 finished pair(s) home in {run_dir}"
    )
    # the log's lines as text (Kaggle sends one JSON array), each shown once
    assert failed.stdout.count("| fold 1/2 member 1/1 tiny-cnn: held-out accuracy") == 1
    assert "stream_name" not in failed.stdout + (run_dir / KERNEL_LOG).read_text()
    assert "fold 1/2" in (run_dir / KERNEL_LOG).read_text()
    assert not (run_dir / "metrics.json").exists()
    ref = pushes(kaggle)[0]["slug"]
    first = kaggle.kernels.versions[ref][0].working / run_dir.name
    pair = "fold0/member0-tiny-cnn/result.json"
    assert (run_dir / pair).read_bytes() == (first / pair).read_bytes()  # home already

    kaggle.kernels.environment = {}
    resumed = cli(kaggle, "cv", "--resume", run_dir.name)
    assert resumed.exit_code == 0, resumed.output
    second = pushes(kaggle)[1]
    dataset = f"{kaggle.username}/kaggle-digits-{run_dir.name}-pairs".lower()
    assert second["datasetDataSources"] == [dataset] and not second.get("kernelDataSources")
    assert kaggle.kernels.versions[ref][1].mounted == [kaggle.slug, dataset]
    assert "uploaded the finished pairs" in resumed.stdout
    assert f"took 1 finished pair(s) from /kaggle/input/datasets/{dataset}/" in resumed.stdout
    assert json.loads((run_dir / KERNEL).read_text())["versions"][1]["version"] == 2
    # the first pair came from version 1, untouched; only the second was trained again
    assert (run_dir / pair).read_bytes() == (first / pair).read_bytes()
    assert (run_dir / "metrics.json").is_file()
    assert json.loads((run_dir / "config.json").read_text())["kaggle"]["version"] == 2


@pytest.mark.image
def test_a_kernel_stopped_by_kaggle_ends_cleanly_and_its_pairs_come_home(kaggle):
    # Kaggle stops the session (SIGTERM) as the second pair ends its first epoch; no stream
    kaggle.kernels.environment = {
        "KAGGLE_DIGITS_KILL_AT": "epoch:2",
        "KAGGLE_DIGITS_KILL_WITH": "TERM",
    }
    kaggle.kernels.log_stream = False
    stopped = cli(kaggle, "cv", "--on", "kaggle", "--preset", "quick", *SHORT)
    run_dir = only_run(kaggle)
    assert_user_error(stopped, "v1 was stopped: Kaggle stopped the session", "1 finished pair(s)")
    ref = pushes(kaggle)[0]["slug"]
    assert kaggle.kernels.versions[ref][0].status == "COMPLETE"  # its output kept by Kaggle
    assert (run_dir / "fold0/member0-tiny-cnn/result.json").is_file()
    assert not (run_dir / "fold1").exists()  # the pair cut short stays behind
    assert "| fold 1/2 member 1/1 tiny-cnn" in stopped.stdout  # polled, not streamed


@pytest.mark.image
def test_a_detached_run_shows_on_kaggle_and_resume_brings_it_home(kaggle, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    pushed = cli(kaggle, "cv", "--on", "kaggle", "--preset", "quick", *SHORT, "--detach")
    assert pushed.exit_code == 0, pushed.output
    run_dir = only_run(kaggle)
    assert f"cv --resume {run_dir}" in pushed.stdout
    listed = cli(kaggle, "runs")
    assert "on Kaggle: queued" in listed.stdout or "on Kaggle: running" in listed.stdout
    brought = cli(kaggle, "cv", "--resume", run_dir.name, "--track")
    assert brought.exit_code == 0, brought.output
    assert len(pushes(kaggle)) == 1  # waited for the same version
    assert "complete" in cli(kaggle, "runs").stdout.splitlines()[1]
    # tracked in MLflow as a local run is: its pairs' epochs, its scores
    tracked = json.loads((run_dir / "mlflow.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=tracked["tracking_uri"])
    history = client.get_metric_history(tracked["run_id"], "fold2/member1-tiny-cnn/loss")
    assert [point.step for point in history] == [1]
    metrics = client.get_run(tracked["run_id"]).data.metrics
    assert metrics["oof_accuracy"] == pytest.approx(json.loads(
        (run_dir / "metrics.json").read_text())["oof_accuracy"])  # fmt: skip
    # its models predict here
    test_csv = kaggle.data_dir / kaggle.slug / "test.csv"
    predicted = cli(kaggle, "predict", "--csv", test_csv, "--run", run_dir.name)
    assert predicted.exit_code == 0, predicted.output
    assert len(predicted.stdout.splitlines()) == 50
    # blended with a run trained here on the same folds
    local = cli(kaggle, "cv", "--preset", "quick", *SHORT)
    assert local.exit_code == 0, local.output
    here = next(
        path
        for path in kaggle.runs_dir.iterdir()
        if not path.is_symlink() and path.name > run_dir.name
    )
    blended = cli(kaggle, "blend", run_dir.name, here.name, "--method", "mean")
    assert blended.exit_code == 0, blended.output


def test_ctrl_c_while_waiting_leaves_the_kernel_running(kaggle, monkeypatch):
    from kaggle_digits.on_kaggle import remote_run

    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(remote_run.time, "sleep", interrupted)
    result = cli(kaggle, "cv", "--on", "kaggle", *SHORT)
    assert result.exit_code != 0
    run_dir = only_run(kaggle)
    assert "the kernel runs on at https://www.kaggle.com/code/" in result.stdout
    assert f"cv --resume {run_dir}" in result.stdout
    assert (run_dir / KERNEL).is_file()


def test_without_credentials_nothing_is_pushed(kaggle, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    assert_user_error(cli(kaggle, "cv", "--on", "kaggle", *SHORT), "no Kaggle credentials")
    assert pushes(kaggle) == [] and not kaggle.runs_dir.exists()


def test_a_bad_option_never_reaches_kaggle(kaggle):
    assert_user_error(cli(kaggle, "cv", "--on", "kaggle", "--folds", "1"), "--folds")
    assert_user_error(cli(kaggle, "cv", "--on", "kaggle", "--folds", "500"), "rarest class")
    assert_user_error(cli(kaggle, "cv", "--on", "somewhere"), "--on must be here or kaggle")
    assert kaggle.requests == []


def test_kaggle_options_without_on_kaggle_are_refused_before_anything_is_made(kaggle):
    for given in (["--detach"], ["--accelerator", "NvidiaTeslaT4"], ["--write-kernel", "k"]):
        result = cli(kaggle, "cv", "--preset", "quick", *given)
        assert_user_error(result, f"{given[0]} works with --on kaggle only")
    assert kaggle.requests == [] and not kaggle.runs_dir.exists()


@pytest.mark.parametrize(
    "refusal, message",
    [
        ("error", ("Kaggle refused the kernel", "Notebook slug is already in use")),
        ("gpu", ("Kaggle refused access (403)", "Phone verification")),
        ("quota", ("your Kaggle GPU quota is spent", "0.0 h of 30 h left")),
        ("reserved", ("quota is spent", "28.0 h used, 2.0 h held by running sessions")),
        ("sessions", ("GPU session count of 2 reached", "at most 2 GPU kernels", "wait for one")),
        ("source", ("refused the kernel's sources", "invalid competition source digit-recognizer",
                    "started version 1", "stops at once")),
    ],
)  # fmt: skip
def test_a_refused_push_is_one_line_and_leaves_no_run(kaggle, refusal, message):
    if refusal == "error":
        kaggle.kernels.refuse_with = "Notebook slug is already in use"
    elif refusal == "gpu":
        kaggle.kernels.gpu_allowed = False
    elif refusal == "quota":
        kaggle.kernels.gpu_hours = (30.0, 30.0)
    elif refusal == "reserved":  # the time running sessions hold counts as used
        kaggle.kernels.gpu_hours, kaggle.kernels.gpu_reserved_hours = (28.0, 30.0), 2.0
    elif refusal == "sessions":
        kaggle.kernels.refuse_with = "Maximum batch GPU session count of 2 reached."
    else:  # a competition Kaggle does not know by that name: started all the same
        kaggle.kernels.slug = "another-competition"
    assert_user_error(cli(kaggle, "cv", "--on", "kaggle", *SHORT), *message)
    assert not kaggle.runs_dir.exists() or list(kaggle.runs_dir.iterdir()) == []


def test_each_status_of_kaggle_is_said_and_a_cancelled_kernel_is_one_line(kaggle):
    statuses = ("NEW_SCRIPT", "QUEUED", "RUNNING", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED")
    finish_later(kaggle, *statuses)
    result = cli(kaggle, "cv", "--on", "kaggle", *SHORT)
    assert_user_error(result, "v1 was cancelled", "no finished pair", "cv --resume")
    said = [line.rsplit(": ", 1)[-1] for line in result.stdout.splitlines() if " v1: " in line]
    assert said == ["queued", "saved, not started", "queued", "running", "being cancelled",
                    "cancelled"]  # fmt: skip
    assert (only_run(kaggle) / KERNEL).is_file() and (only_run(kaggle) / KERNEL_LOG).is_file()


def test_an_output_without_a_complete_run_is_one_line(kaggle):
    finish_later(kaggle, "COMPLETE")
    result = cli(kaggle, "cv", "--on", "kaggle", *SHORT)
    assert_user_error(result, "holds no complete run (0 finished pair(s))", "cv --resume")
    assert not (only_run(kaggle) / "metrics.json").exists()
    assert not list(kaggle.runs_dir.glob(".*"))  # no download left half-done


def test_lost_network_while_waiting_says_how_to_come_back(kaggle):
    pushed = cli(kaggle, "cv", "--on", "kaggle", *SHORT, "--detach")
    assert pushed.exit_code == 0, pushed.output
    kaggle.stop()
    result = cli(kaggle, "cv", "--resume", only_run(kaggle).name)
    assert_user_error(result, "cannot reach Kaggle", "the kernel goes on", "cv --resume")


@pytest.mark.parametrize(
    "given, shape",
    [("NvidiaL4", "NvidiaL4"), ("nvidiah100", "NvidiaH100"), ("none", None), ("P100", "")],
)
def test_the_accelerator_is_one_of_kaggles_machine_shapes(kaggle, given, shape):
    result = cli(kaggle, "cv", "--on", "kaggle", *SHORT, "--accelerator", given, "--detach")
    if shape == "":
        assert_user_error(result, "--accelerator 'P100' is not one of Kaggle's machine shapes")
        assert kaggle.requests == []
        return
    assert result.exit_code == 0, result.output
    (push,) = pushes(kaggle)
    assert push.get("machineShape") == shape and push["enableGpu"] == (shape is not None)
    asked_quota = "GetAcceleratorQuotaStatistics" in kaggle.calls
    assert asked_quota == (shape is not None)


def test_a_tpu_is_refused_and_a_retired_p100_warned_about(kaggle):
    tpu = cli(kaggle, "cv", "--on", "kaggle", *SHORT, "--accelerator", "TpuV5E8")
    assert_user_error(tpu, "TpuV5E8 is a TPU machine")
    assert kaggle.requests == []
    p100 = cli(
        kaggle, "cv", "--on", "kaggle", *SHORT, "--accelerator", "NvidiaTeslaP100", "--detach"
    )
    assert p100.exit_code == 0, p100.output
    assert "warning: NvidiaTeslaP100" in p100.stderr and "sm_60" in p100.stderr
    assert pushes(kaggle)[0]["machineShape"] == "NvidiaTeslaP100"


def test_a_push_naming_invalid_sources_is_one_line(kaggle):
    from kaggle_digits.kaggle_api import kernels

    with pytest.raises(UserError) as refused:
        kernels.push_kernel("tester/k", "print(1)", kaggle.slug, None, ("tester/no-such-data",))
    assert "invalid dataset source tester/no-such-data" in str(refused.value)
    assert "started version 1" in str(refused.value)
    # the stand-in refuses a kernel as its own source, as Kaggle does (users' reports, 2026)
    own = {"slug": "tester/k", "competitionDataSources": [kaggle.slug],
           "kernelDataSources": ["tester/k"]}  # fmt: skip
    assert kaggle.kernels.answer("SaveKernel", own)[1]["invalidKernelSources"] == ["tester/k"]


@pytest.mark.parametrize("unknown", [403, 404])
def test_a_kernel_written_for_a_push_by_hand_is_waited_for_once_pushed(kaggle, tmp_path, unknown):
    kaggle.kernels.unknown_kernel_status = unknown  # Kaggle often answers 403 for no kernel
    folder = tmp_path / "kernel"
    written = cli(kaggle, "cv", "--on", "kaggle", *SHORT, "--write-kernel", folder)
    assert written.exit_code == 0, written.output
    run_dir = only_run(kaggle)
    assert f"kaggle kernels push -p {folder}" in written.stdout and pushes(kaggle) == []
    metadata = json.loads((folder / "kernel-metadata.json").read_text())
    assert metadata["id"] == f"{kaggle.username}/{kernel_slug(run_dir.name)}"
    assert metadata["machine_shape"] == "NvidiaTeslaT4" and not metadata["enable_internet"]
    assert (folder / metadata["code_file"]).is_file()
    assert "written for `kaggle kernels push" in cli(kaggle, "runs").stdout
    early = cli(kaggle, "cv", "--resume", run_dir.name)
    assert_user_error(
        early,
        "most likely it is not pushed yet, or it was pushed under another slug or account",
        f"kaggle kernels push -p {folder}",
    )
    again = cli(kaggle, "cv", "--on", "kaggle", *SHORT, "--write-kernel", folder)
    assert_user_error(again, "the folder is not empty")

    from kaggle_digits.kaggle_api.client import authenticated_api

    pushed = authenticated_api().kernels_push(str(folder))  # what `kaggle kernels push` does
    assert pushed.version_number == 1 and not pushed.error
    (push,) = pushes(kaggle)
    assert push["competitionDataSources"] == [kaggle.slug] and push["isPrivate"]
    finish_later(kaggle, "COMPLETE")
    brought = cli(kaggle, "cv", "--resume", run_dir.name)
    assert_user_error(brought, "holds no complete run")  # nothing ran here: no image
    assert "the kernel pushed by hand" in brought.stdout
    assert json.loads((run_dir / KERNEL).read_text())["versions"][0]["version"] == 1


def test_a_failed_version_whose_output_kaggle_drops_is_resumed_from_what_is_home(kaggle):
    kaggle.kernels.failed_output_listed = False  # as Kaggle may do for an ERROR version
    finish_later(kaggle, "RUNNING", "ERROR")
    failed = cli(kaggle, "cv", "--on", "kaggle", *SHORT)
    assert_user_error(failed, "v1 failed", "no finished pair", "cv --resume")
    run_dir = only_run(kaggle)
    finish_later(kaggle, "COMPLETE", version=2)
    resumed = cli(kaggle, "cv", "--resume", run_dir.name)
    assert "version 1 ended failed: pushing a new version that takes the 0" in resumed.stdout
    second = pushes(kaggle)[1]
    assert not second.get("datasetDataSources") and not second.get("kernelDataSources")
    assert "StartBlobUpload" not in kaggle.calls and kaggle.kernels.datasets == {}
    assert_user_error(resumed, "holds no complete run")  # nothing ran here: no image
