import io
import os
import sys
import zipfile
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))

from kaggle_stub import StubKaggle  # noqa: E402
from kernel_helpers import cli  # noqa: E402
from stub_kernels import KaggleImage, StubKernels, can_run_kernels  # noqa: E402
from synthetic import SLUG, competition_zip, write_competition, write_spec  # noqa: E402

TRAIN_ROWS, TEST_ROWS = 200, 50


@pytest.fixture
def small(tmp_path):
    """A small competition on disk: spec + data/<slug>/ CSVs."""
    return write_competition(tmp_path, TRAIN_ROWS, TEST_ROWS)


@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    """No credentials from the developer's machine leak into a test."""
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith("KAGGLE_"):
            monkeypatch.delenv(name)
    from kaggle.api.kaggle_api_extended import KaggleApi

    monkeypatch.setattr(KaggleApi, "config_dir", str(home / ".kaggle"))
    monkeypatch.setattr(KaggleApi, "config", str(home / ".kaggle" / "kaggle.json"))
    return home


@pytest.fixture
def kaggle_server(tmp_path, monkeypatch, isolated_home):
    """The stand-in Kaggle server, with the real client pointed at it and credentials set."""
    zip_bytes, test_labels = competition_zip(TRAIN_ROWS, TEST_ROWS)
    stub = StubKaggle(slug=SLUG, zip_bytes=zip_bytes, hidden_labels=list(test_labels)).start()
    point_client_at(stub, monkeypatch)
    stub.spec_path = write_spec(tmp_path, TRAIN_ROWS, TEST_ROWS)
    stub.data_dir = tmp_path / "data"
    yield stub
    stub.stop()


def point_client_at(stub: StubKaggle, monkeypatch) -> None:
    """The real `kaggle` client, talking to the stand-in server with its credentials."""
    from kaggle.api.kaggle_api_extended import KaggleApi
    from kagglesdk import kaggle_env

    monkeypatch.setitem(kaggle_env._env_to_endpoint, kaggle_env.KaggleEnv.LOCAL, stub.url)
    monkeypatch.setattr(KaggleApi, "args", ["--local"])
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    monkeypatch.setenv("KAGGLE_USERNAME", stub.username)
    monkeypatch.setenv("KAGGLE_KEY", stub.key)


def pytest_configure(config):
    # Keep the import of `kaggle` (which authenticates at import) from seeing real credentials.
    os.environ.pop("KAGGLE_API_TOKEN", None)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A small competition (the same data the stand-in server holds) and a complete run
    trained on it, shared read-only by the submit and predict tests."""
    from kaggle_digits.data.competition import load_competition
    from kaggle_digits.jobs.cv import run_cv
    from kaggle_digits.options.config import CVConfig

    root = tmp_path_factory.mktemp("trained")
    small = write_competition(root, TRAIN_ROWS, TEST_ROWS)
    config = CVConfig(preset="test", folds=2, members=("tiny-cnn",), epochs=12, batch_size=16)
    result = run_cv(
        config, load_competition(small.spec_path), small.data_dir, root / "runs", log=lambda _: None
    )
    small.runs_dir = root / "runs"
    small.run_dir = result.run_dir
    small.oof_accuracy = result.metrics["oof_accuracy"]
    return small


def pytest_collection_modifyitems(config, items):
    # the other backends' tests wait for scripts that run alongside the rest of the suite
    # (test_backends.start_scripts): last, so that the wait falls at the end
    items.sort(key=lambda item: item.path.name == "test_backends.py")


def pytest_collection_finish(session):
    # under pytest-xdist every worker collects every test: the one that runs test_backends.py
    # starts its scripts when it gets there (test_backends.scripts)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if any(item.path.name == "test_backends.py" for item in session.items):
        import test_backends

        test_backends.start_scripts()


def pytest_sessionfinish(session, exitstatus):
    test_backends = sys.modules.get("test_backends")
    if test_backends is not None:
        test_backends.stop_scripts()


@pytest.fixture(scope="session")
def kaggle_image(tmp_path_factory):
    """A Python environment like Kaggle's image, for the stand-in to run pushed kernels in
    (KAGGLE_DIGITS_TEST_IMAGE=<python>: that interpreter's, Kaggle's own versions say)."""
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
