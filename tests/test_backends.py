"""The other Keras backends: JAX and PyTorch, each in processes of its own (a process keeps the
first backend it imports), so that the rest of the suite stays on TensorFlow.

Tolerances, as docs/backends.md states them: on a CPU the same saved model predicts the same
probabilities on every backend to 1e-5, and a short training from the same weights with the
same rows ends within 1e-4 of the same probabilities; a model trained in mixed_bfloat16
predicts within 1e-3. Each backend is compared with the
reference, TensorFlow where it is installed (on a GPU machine without it, the first other).
KAGGLE_DIGITS_TEST_ATOL loosens both for a GPU, whose TF32 convolutions round more coarsely.
"""

import json
import os
import shutil
import tempfile
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from helpers import TENSORFLOW_CHATTER, BackgroundScripts

from kaggle_digits.base.files import read_json
from kaggle_digits.data.competition import load_competition
from kaggle_digits.data.dataset import load_dataset
from kaggle_digits.jobs.predict import ensemble_probs

TESTS = Path(__file__).parent
INSTALLED = [name for name in ("tensorflow", "jax", "torch") if find_spec(name)]
REFERENCE = INSTALLED[0]
OTHER_BACKENDS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            name not in INSTALLED[1:], reason=f"{name} is not installed, or is the reference"
        ),
    )
    for name in ("jax", "torch")
]
# the end-to-end path under PyTorch too, where asked (make test asks: CI has the time)
E2E_BACKENDS = ("jax", "torch") if os.environ.get("KAGGLE_DIGITS_ALL_BACKENDS") else ("jax",)
NON_TENSORFLOW = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            name not in INSTALLED or name not in E2E_BACKENDS,
            reason=f"no {name}, or KAGGLE_DIGITS_ALL_BACKENDS unset",
        ),
    )
    for name in ("jax", "torch")
]
PREDICT_TOLERANCE = float(os.environ.get("KAGGLE_DIGITS_TEST_ATOL", 1e-5))
TRAINING_TOLERANCE = max(1e-4, PREDICT_TOLERANCE)
# a model built in mixed_bfloat16 computes with 8 bits of mantissa on every backend, rounding
# in each backend's own order
BFLOAT16_TOLERANCE = 1e-3


SCRIPTS: BackgroundScripts | None = None


def start_scripts() -> None:
    """Start, at the session's start (conftest.py), the probe under every installed backend
    and the end-to-end path under JAX and PyTorch; the tests below wait for them."""
    global SCRIPTS
    SCRIPTS = BackgroundScripts(Path(tempfile.mkdtemp(prefix="kaggle-digits-backends-")))
    for backend in INSTALLED if len(INSTALLED) > 1 else ():  # nothing to compare with
        SCRIPTS.start(f"probe-{backend}", backend, "backend_probe.py", probe_file(backend))
    for backend in INSTALLED:
        if backend in E2E_BACKENDS:
            # PyTorch settles the precision by a trial of both; JAX, whose XLA compiles each
            # net for ~30 s on this CPU, skips it for CI's time. Neither starts a Ray beside
            # the one test_ray.py may be running
            auto = ["--precision", "auto"] if backend == "torch" else []
            SCRIPTS.start(f"e2e-{backend}", backend, "backend_run.py", e2e_folder(backend), *auto)


def scripts() -> BackgroundScripts:
    """The scripts, started at the session's start, or now (a pytest-xdist worker: conftest.py
    leaves them to the worker that runs these tests)."""
    if SCRIPTS is None:
        start_scripts()
    return SCRIPTS


def stop_scripts() -> None:
    if SCRIPTS is not None:
        SCRIPTS.stop()
        shutil.rmtree(SCRIPTS.folder, ignore_errors=True)


def probe_file(backend: str) -> Path:
    return SCRIPTS.folder / f"probe-{backend}.npz"


def e2e_folder(backend: str) -> Path:
    return SCRIPTS.folder / f"e2e-{backend}"


@pytest.fixture(scope="module")
def probes():
    """backend -> what tests/backend_probe.py computed under it, for every installed one."""
    found = {}
    for backend in INSTALLED:
        scripts().output(f"probe-{backend}")
        found[backend] = np.load(probe_file(backend))
    return found


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_deskew_straightens_alike_on_backend(probes, backend):
    assert str(probes[backend]["backend"]) == backend
    reference, other = probes[REFERENCE], probes[backend]
    uint8_steps = np.abs(reference["deskew_uint8"].astype(int) - other["deskew_uint8"])
    assert uint8_steps.max() <= 1  # rounding to whole grey levels may differ at .5
    assert (uint8_steps > 0).mean() < 0.001
    np.testing.assert_allclose(other["deskew_float"], reference["deskew_float"], atol=1e-5)
    # and it did straighten something
    assert np.abs(reference["deskew_float"]).sum() > 0


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_locally_connected_layer_computes_alike_on_backend(probes, backend):
    reference, other = probes[REFERENCE], probes[backend]
    assert reference["locally_connected"].shape == (64, 13, 13, 8)
    np.testing.assert_allclose(
        other["locally_connected"], reference["locally_connected"], atol=PREDICT_TOLERANCE
    )


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_test_time_views_predict_alike_on_backend(probes, backend):
    reference, other = probes[REFERENCE], probes[backend]
    for views in ("tta_shifts", "tta_rotations", "tta_flips+shifts", "no_tta"):
        np.testing.assert_allclose(other[views], reference[views], atol=PREDICT_TOLERANCE)
    # the views change the predictions by far more than the backends differ
    for views in ("tta_rotations", "tta_flips+shifts"):
        assert np.abs(reference[views] - reference["no_tta"]).max() > 100 * PREDICT_TOLERANCE


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_hard_rows_and_ema_train_alike_on_backend(probes, backend):
    reference, other = probes[REFERENCE], probes[backend]
    for trained in ("hard_rows_ema", "hard_rows"):
        np.testing.assert_allclose(other[trained], reference[trained], atol=TRAINING_TOLERANCE)
    # the moving average changes the model by far more than the backends differ
    ema_effect = np.abs(reference["hard_rows_ema"] - reference["hard_rows"]).max()
    assert ema_effect > 100 * TRAINING_TOLERANCE


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_a_forked_tail_trains_alike_on_backend(probes, backend):
    reference, other = probes[REFERENCE], probes[backend]
    for branch in ("forked_branch0", "forked_branch1"):
        np.testing.assert_allclose(other[branch], reference[branch], atol=TRAINING_TOLERANCE)
    # the branches' own rows part them by far more than the backends differ
    apart = np.abs(reference["forked_branch0"] - reference["forked_branch1"]).max()
    assert apart > 10 * TRAINING_TOLERANCE


@pytest.mark.parametrize("backend", NON_TENSORFLOW)
def test_end_to_end_on_backend_and_its_models_predict_on_another(backend):
    summary = json.loads(scripts().output(f"e2e-{backend}"))
    work = e2e_folder(backend)
    # TensorFlow's C++ start-up lines, which its worker processes wrote before its log level
    # applied (its CUDA probe, oneDNN, absl), reach no one
    errors = (scripts().folder / f"e2e-{backend}.err").read_text()
    assert [word for word in TENSORFLOW_CHATTER if word in errors] == []
    auto = backend == "torch"
    assert summary["backend"] == backend
    config = summary["run_config"]
    assert config["keras_backend"] == backend
    assert config["packages"][backend]
    if auto:
        assert set(config["precision_trial"]) == {"float32", "mixed_bfloat16"}
    assert config["execution"]["pairs_at_once"] == 2
    assert config["execution"]["engine"] == "processes"
    assert config["select_hard"] == 1 and config["ema"] == 0.9 and config["tta"] == 4
    assert len(summary["metrics"]["pairs"]) == 2  # one of them trained again by --resume
    first, second, blended = summary["runs"]
    assert summary["submission"] == [f"{blended}.csv"]
    assert all(name in summary["runs_listed"] for name in summary["runs"])
    assert summary["csv_lines"] == 50
    assert summary["photo_line"].startswith(str(work / "photo.jpg") + ": ")

    # the run's saved models, loaded in this process (TensorFlow, where installed), predict
    # what they predicted there
    runs_dir = work / "runs"
    competition = load_competition(work / "competition.toml")
    dataset = load_dataset(competition, work / "data")
    saved = np.load(runs_dir / first / "test_probs.npy")
    tolerance = PREDICT_TOLERANCE if config["precision"] == "float32" else BFLOAT16_TOLERANCE
    np.testing.assert_allclose(
        ensemble_probs(runs_dir / first, dataset.test_images), saved, atol=tolerance
    )
    assert read_json(runs_dir / blended / "config.json")["sources"] == [first, second]
