"""The Keras backend's process-wide settings: how many CPU threads it may use, and a quiet
import. Both must happen before the backend is first imported in a process."""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

MAX_AUTO_WORKERS = 8  # each worker holds a copy of the data and a backend: ~1 GB

THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


def cpu_count() -> int:
    """The cores this process may run on (a container's or taskset's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def thread_limit(threads: int) -> Iterator[None]:
    """Processes started inside the block run TensorFlow (and OpenMP) with `threads` threads."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def native_stderr_hidden(replay: bool = True) -> Iterator[None]:
    """Hide what native libraries write straight to file descriptor 2 (TensorFlow's CUDA probe
    logs at import, before its log level applies); replay it if the block fails and `replay`
    is set."""
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved_stderr, 2)
            if replay:
                captured.seek(0)
                sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)


def import_keras() -> None:
    """Import Keras (and its backend) without the backend's start-up chatter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_stderr_hidden():
        import keras  # noqa: F401


def backend_name() -> str:
    """The Keras backend this process uses or will use, without importing Keras: as Keras
    decides, KERAS_BACKEND, else keras.json's "backend", else TensorFlow."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    try:
        return json.loads((keras_home / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def has_accelerator() -> bool:
    """Whether the Keras backend sees a GPU (or another accelerator). Asked in a short-lived
    process unless Keras is loaded here already, so that a driver stays without it."""
    if "keras" not in sys.modules:
        ask = (
            "import keras; from kaggle_digits.backend import has_accelerator; "
            "print(int(has_accelerator()))"
        )
        answer = subprocess.run(
            [sys.executable, "-c", ask],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        return answer.stdout.strip() == "1"
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with native_stderr_hidden():  # the CUDA probe's complaints on a machine without one
            return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def auto_workers(config) -> int:
    """Pairs to train at once when --workers is not given: one on an accelerator (the pairs
    would fight over its memory); on a CPU single-threaded processes, one per core and more
    where that ends the run sooner (5 pairs on 2 cores: 3, see schedule.py)."""
    from kaggle_digits.schedule import shortest_run_workers

    if has_accelerator():
        return 1
    pairs = config.folds * len(config.members)
    return shortest_run_workers(pairs, cpu_count(), MAX_AUTO_WORKERS)
