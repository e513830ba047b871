"""`cv --on kaggle`: the run trained in a Kaggle kernel and brought home, against the
stand-in Kaggle, which behaves as Kaggle does in 2026 (stub_kernels.py: no kernel as its own
source, the log as one JSON line) and runs each pushed script as Kaggle does: in an
environment with TensorFlow and Keras but without this package, no network, the inputs
read-only where Kaggle mounts them under /kaggle/input, in /kaggle/working.

KAGGLE_DIGITS_TEST_IMAGE=<python> runs the kernels with that interpreter instead (one with
Kaggle's own TensorFlow and Keras versions, say)."""

import io
import json
import os
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import TENSORFLOW_CHATTER, assert_user_error, run_cli
from stub_kernels import KaggleImage, StubKernels, can_run_kernels

from kaggle_digits.base.errors import UserError
from kaggle_digits.kaggle.remote_run import KERNEL, KERNEL_LOG, kernel_slug

# the fastest real run in a kernel: no trial, no worker processes
SHORT = ("--epochs", "1", "--precision", "float32", "--engine", "in-process", "--tta", "0")


@pytest.fixture(scope="session")
def kaggle_image(tmp_path_factory):
    why = can_run_kernels()
    if why:
        pytest.skip(why)
    python = os.environ.get("KAGGLE_DIGITS_TEST_IMAGE")
    image = KaggleImage(tmp_path_factory.mktemp("kaggle-image") / "venv", python and Path(python))
    assert image.imports("tensorflow") and image.imports("keras")
    assert not image.imports("kaggle_digits")  # the kernel brings its own
    return image


@pytest.fixture
def kaggle(kaggle_server, tmp_path, monkeypatch, request):
    """The stand-in Kaggle with its kernels service, and the data downloaded through it;
    kernels are run only for the tests that ask for the `kaggle_image` fixture."""
    files = tmp_path / "competition-files"
    zipfile.ZipFile(io.BytesIO(kaggle_server.zip_bytes)).extractall(files)
    image = request.getfixturevalue("kaggle_image") if "image" in request.keywords else None
    kaggle_server.kernels = StubKernels(
        kaggle_server.slug,
        files,
        tmp_path / "kernels",
        image,
        url=kaggle_server.url,
        uploads=kaggle_server.uploads,
    )
    monkeypatch.setenv("KAGGLE_DIGITS_POLL_SECONDS", "0.05")
    kaggle_server.runs_dir = tmp_path / "runs"
    assert cli(kaggle_server, "download").exit_code == 0
    return kaggle_server


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
    from kaggle_digits.kaggle import remote_run

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
    "mount",
    [
        "competitions/digit-recognizer",  # 2026
        "digit-recognizer",  # older kernels
        "datasets/someone/digit-recognizer",
        "datasets/someone/mnist-csv-copy/files",  # a copy under another name, deeper
    ],
)
def test_the_kernel_finds_the_competition_by_its_files_at_any_depth(small, tmp_path, mount):
    from kaggle_digits.data.competition import load_competition
    from kaggle_digits.data.dataset import load_dataset
    from kaggle_digits.kaggle.in_kernel import find_competition_files

    inputs = tmp_path / "input"
    (inputs / "datasets/other/unrelated").mkdir(parents=True)
    (inputs / mount).parent.mkdir(parents=True, exist_ok=True)
    (small.data_dir / "digit-recognizer").rename(inputs / mount)
    competition = load_competition(small.spec_path)
    data_root = find_competition_files(competition, inputs)
    assert (data_root / competition.slug).resolve() == (inputs / mount).resolve()
    assert len(load_dataset(competition, data_root).train_labels) > 0


@pytest.mark.parametrize(
    "mount", ["datasets/tester/kaggle-digits-r-pairs/r", "notebooks/tester/other-kernel/r", "r"]
)
def test_the_kernel_finds_an_earlier_run_by_its_request_at_any_depth(tmp_path, mount):
    from kaggle_digits.kaggle.in_kernel import take_earlier_pairs

    request = {"run": "r", "request": {"folds": 2}, "earlier": {"dataset": "d", "pairs": 1}}
    inputs = tmp_path / "input"
    decoy = inputs / "datasets/tester/another-run/r"  # same name, another run's request
    (decoy / "fold0/member0-a").mkdir(parents=True)
    (decoy / "request.json").write_text(json.dumps({"folds": 5}))
    (inputs / mount / "fold0/member0-a").mkdir(parents=True)
    (inputs / mount / "request.json").write_text(json.dumps({"folds": 2}))
    (inputs / mount / "fold0/member0-a/result.json").write_text("{}")
    take_earlier_pairs(request, inputs, tmp_path / "working" / "r")
    assert (tmp_path / "working/r/fold0/member0-a/result.json").read_text() == "{}"


def test_a_kernel_missing_the_pairs_it_was_given_stops_in_one_line(small, tmp_path, capsys):
    from kaggle_digits.kaggle import in_kernel

    request = {"run": "r", "request": {}, "earlier": {"dataset": "tester/d", "pairs": 3}}
    with pytest.raises(UserError, match=r"the 3 finished pair\(s\) of run r \(dataset tester/d\)"):
        in_kernel.take_earlier_pairs(request, tmp_path / "input", tmp_path / "working" / "r")


def test_the_kernel_says_in_one_line_what_it_lacks_and_ends_cleanly(
    small, tmp_path, monkeypatch, capsys
):
    import keras

    from kaggle_digits.kaggle import in_kernel

    request = {"run": "r", "request": {}, "spec": small.spec_path.read_text()}
    inputs, working = tmp_path / "input", tmp_path / "working"
    inputs.mkdir(), working.mkdir()
    # exit 0 all the same: Kaggle keeps a completed version's output
    assert in_kernel.main(request, inputs, working) == 0  # nothing attached under /kaggle/input
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(in_kernel.ERROR_PREFIX + "the competition's files")
    outcome = json.loads((working / in_kernel.OUTCOME).read_text())
    assert outcome["status"] == "failed" and outcome["error"] == last.removeprefix(
        in_kernel.ERROR_PREFIX
    )
    monkeypatch.setattr(keras, "__version__", "2.15.0")
    assert in_kernel.main(request, inputs, working) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        in_kernel.ERROR_PREFIX + "Kaggle's image has Keras 2.15.0; kaggle-digits needs 3.3 or newer"
    )


def test_a_kernel_log_is_read_from_kaggles_records():
    from kaggle_digits.kaggle.kernels import log_text

    records = [{"stream_name": "stdout", "time": 0.5, "data": "fold 1\n"},
               {"stream_name": "stderr", "time": 0.7, "data": "done\n"}]  # fmt: skip
    lines = "\n".join(json.dumps(record) for record in records)
    assert log_text(lines) == "fold 1\ndone\n"
    as_list = "[" + ",\n".join(json.dumps(record) for record in records) + "]"
    assert log_text(as_list) == "fold 1\ndone\n"
    assert log_text(json.dumps(records)) == "fold 1\ndone\n"  # the array on one line
    assert log_text(lines.replace("\n", ",\n")) == "fold 1\ndone\n"  # commas, no brackets
    assert log_text("plain text") == "plain text\n"
    assert log_text("[not json] fold 2") == "[not json] fold 2\n"


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
    from kaggle_digits.kaggle import kernels

    with pytest.raises(UserError) as refused:
        kernels.push_kernel("tester/k", "print(1)", kaggle.slug, None, ("tester/no-such-data",))
    assert "invalid dataset source tester/no-such-data" in str(refused.value)
    assert "started version 1" in str(refused.value)
    # the stand-in refuses a kernel as its own source, as Kaggle does (users' reports, 2026)
    own = {"slug": "tester/k", "competitionDataSources": [kaggle.slug],
           "kernelDataSources": ["tester/k"]}  # fmt: skip
    assert kaggle.kernels.answer("SaveKernel", own)[1]["invalidKernelSources"] == ["tester/k"]


def test_a_kernel_written_for_a_push_by_hand_is_waited_for_once_pushed(kaggle, tmp_path):
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
    assert_user_error(early, "is not on Kaggle yet", f"kaggle kernels push -p {folder}")
    again = cli(kaggle, "cv", "--on", "kaggle", *SHORT, "--write-kernel", folder)
    assert_user_error(again, "the folder is not empty")

    from kaggle_digits.kaggle.api import authenticated_api

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
