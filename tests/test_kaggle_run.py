"""`cv --on kaggle`: the run trained in a Kaggle kernel and brought home, against the
stand-in Kaggle, which runs each pushed script as Kaggle does (stub_kernels.py): in an
environment with TensorFlow and Keras but without this package, no network, the competition
read-only under /kaggle/input/competitions/<slug>/, in /kaggle/working."""

import io
import json
import threading
import time
import zipfile

import numpy as np
import pytest
from helpers import TENSORFLOW_CHATTER, assert_user_error, run_cli
from stub_kernels import KaggleImage, StubKernels, can_run_kernels

from kaggle_digits.kaggle.remote_run import KERNEL, KERNEL_LOG, kernel_slug

# the fastest real run in a kernel: no trial, no worker processes
SHORT = ("--epochs", "1", "--precision", "float32", "--engine", "in-process", "--tta", "0")


@pytest.fixture(scope="session")
def kaggle_image(tmp_path_factory):
    why = can_run_kernels()
    if why:
        pytest.skip(why)
    image = KaggleImage(tmp_path_factory.mktemp("kaggle-image") / "venv")
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
        kaggle_server.slug, files, tmp_path / "kernels", image, url=kaggle_server.url
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
def test_a_kernel_that_fails_is_one_line_and_resume_trains_only_the_pairs_it_lacks(kaggle):
    # the kernel dies (SIGKILL) as its second pair ends its first epoch: one pair is saved
    kaggle.kernels.environment = {"KAGGLE_DIGITS_KILL_AT": "epoch:2"}
    failed = cli(kaggle, "cv", "--on", "kaggle", "--preset", "quick", *SHORT)
    assert_user_error(failed, "v1 failed", "The script exited with code", "cv --resume")
    run_dir = only_run(kaggle)
    # the log's lines as text (Kaggle sends one JSON array), each shown once
    assert failed.stdout.count("| fold 1/2 member 1/1 tiny-cnn: held-out accuracy") == 1
    assert "stream_name" not in failed.stdout + (run_dir / KERNEL_LOG).read_text()
    assert "fold 1/2" in (run_dir / KERNEL_LOG).read_text()
    assert not (run_dir / "metrics.json").exists()
    first = kaggle.kernels.versions[pushes(kaggle)[0]["slug"]][0].working / run_dir.name
    assert (first / "fold0/member0-tiny-cnn/result.json").is_file()

    kaggle.kernels.environment = {}
    resumed = cli(kaggle, "cv", "--resume", run_dir.name)
    assert resumed.exit_code == 0, resumed.output
    second = pushes(kaggle)[1]
    assert second["kernelDataSources"] == [second["slug"]]  # the first version's output
    assert "took 1 finished pair(s)" in resumed.stdout
    assert json.loads((run_dir / KERNEL).read_text())["versions"][1]["version"] == 2
    # the first pair came from version 1, untouched; only the second was trained again
    kept = run_dir / "fold0/member0-tiny-cnn/result.json"
    assert kept.read_bytes() == (first / "fold0/member0-tiny-cnn/result.json").read_bytes()
    assert (run_dir / "metrics.json").is_file()
    assert json.loads((run_dir / "config.json").read_text())["kaggle"]["version"] == 2


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
    for given in (["--detach"], ["--accelerator", "NvidiaTeslaT4"]):
        result = cli(kaggle, "cv", "--preset", "quick", *given)
        assert_user_error(result, f"{given[0]} works with --on kaggle only")
    assert kaggle.requests == [] and not kaggle.runs_dir.exists()


@pytest.mark.parametrize(
    "refusal, message",
    [
        ("error", ("Kaggle refused the kernel", "Notebook slug is already in use")),
        ("gpu", ("Kaggle refused access (403)", "Phone verification")),
        ("quota", ("your Kaggle GPU quota is spent", "0.0 h of 30 h left")),
        ("source", ("Kaggle refused the kernel", "invalid competition source digit-recognizer")),
    ],
)
def test_a_refused_push_is_one_line_and_leaves_no_run(kaggle, refusal, message):
    if refusal == "error":
        kaggle.kernels.refuse_with = "Notebook slug is already in use"
    elif refusal == "gpu":
        kaggle.kernels.gpu_allowed = False
    elif refusal == "quota":
        kaggle.kernels.gpu_hours = (30.0, 30.0)
    else:  # a competition Kaggle does not know by that name
        kaggle.kernels.slug = "another-competition"
    assert_user_error(cli(kaggle, "cv", "--on", "kaggle", *SHORT), *message)
    assert not kaggle.runs_dir.exists() or list(kaggle.runs_dir.iterdir()) == []


def finish_later(kaggle, status: str, seconds: float = 0.3) -> None:
    """The kernel version pushed next ends in `status` a moment after its push, without
    having run anything (the stand-in runs no script here)."""

    def end() -> None:
        deadline = time.monotonic() + 120
        while not kaggle.kernels.versions:  # the push may come later than the timer
            assert time.monotonic() < deadline, "nothing was pushed"
            time.sleep(0.05)
        time.sleep(seconds)
        (ref,) = kaggle.kernels.versions
        kaggle.kernels.versions[ref][-1].status = status

    threading.Thread(target=end, daemon=True).start()


def test_a_cancelled_kernel_is_one_line_and_its_run_kept(kaggle):
    finish_later(kaggle, "CANCEL_ACKNOWLEDGED")
    result = cli(kaggle, "cv", "--on", "kaggle", *SHORT)
    assert_user_error(result, "v1 was cancelled", "cv --resume")
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


@pytest.mark.parametrize("mount", ["competitions/digit-recognizer", "digit-recognizer"])
def test_the_kernel_finds_the_competition_where_kaggle_mounts_it(small, tmp_path, mount):
    from kaggle_digits.data.competition import load_competition
    from kaggle_digits.kaggle.in_kernel import find_competition_files

    inputs = tmp_path / "input"
    (inputs / mount).parent.mkdir(parents=True)
    (small.data_dir / "digit-recognizer").rename(inputs / mount)
    competition = load_competition(small.spec_path)
    assert find_competition_files(competition, inputs) / competition.slug == inputs / mount


def test_the_kernel_says_in_one_line_what_it_lacks(small, tmp_path, monkeypatch, capsys):
    import keras

    from kaggle_digits.kaggle import in_kernel

    request = {"run": "r", "request": {}, "spec": small.spec_path.read_text()}
    code = in_kernel.run_in_kernel
    monkeypatch.setattr(in_kernel, "run_in_kernel", lambda *args: code(request, tmp_path, tmp_path))
    assert in_kernel.main(request) == 2  # nothing attached under /kaggle/input
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .startswith(in_kernel.ERROR_PREFIX + "the competition's files")
    )
    monkeypatch.setattr(keras, "__version__", "2.15.0")
    assert in_kernel.main(request) == 2
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
