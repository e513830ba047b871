"""The Keras backend's process-wide settings: how many CPU threads it may use, and a quiet
import. Both must happen before the backend is first imported in a process."""

import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

MAX_AUTO_WORKERS = 8  # each worker holds a copy of the data and a backend: ~1 GB

# TensorFlow's, and OpenMP's (PyTorch's CPU kernels)
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
ACCELERATOR_VARIABLES = ("XLA_FLAGS", "XLA_PYTHON_CLIENT_MEM_FRACTION", "TF_FORCE_GPU_ALLOW_GROWTH")
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
GPU_MEMORY_IN_USE = 0.9  # of a GPU's memory, shared among the pairs training on it
# Pairs trained at once on one GPU: one small net's steps leave it mostly idle (its kernels
# take less time than their launch), so several processes take turns on it; see docs/gpu.md
GPU_PAIRS_AT_ONCE = 4


def cpu_count() -> int:
    """The cores this process may run on (a container's or taskset's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def thread_limit(threads: int, share_of_accelerator: int = 1) -> Iterator[None]:
    """Processes started inside the block run their backend with `threads` CPU threads and,
    where `share_of_accelerator` processes share one GPU, each with its share of its memory."""
    saved = {name: os.environ.get(name) for name in (*THREAD_VARIABLES, *ACCELERATOR_VARIABLES)}
    os.environ.update(worker_variables(threads, share_of_accelerator))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def worker_variables(threads: int, share_of_accelerator: int = 1) -> dict[str, str]:
    """The environment that thread_limit gives a worker process."""
    variables = {name: str(threads) for name in THREAD_VARIABLES}
    if threads == 1:
        # XLA's CPU client (JAX) reads no thread variable: one thread is asked for by flags
        flags = os.environ.get("XLA_FLAGS", "")
        variables["XLA_FLAGS"] = f"{flags} {XLA_ONE_THREAD}".strip()
    if share_of_accelerator > 1:
        # JAX takes 75% of a GPU's memory up front and TensorFlow all of it, so that a second
        # process on the same GPU would fail; PyTorch's allocator takes only what it uses
        fraction = GPU_MEMORY_IN_USE / share_of_accelerator
        variables["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{fraction:.3f}"
        variables["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    return variables


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
    """Import Keras (and its backend) without the backend's start-up chatter. TensorFlow,
    where installed, is imported here too under JAX and PyTorch: Keras and the data pipeline
    import it later anyway (saving a model, tf.data), and its C++ start-up lines, written
    before its log level applies, would then reach the user."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_stderr_hidden():
        import keras

        if keras.backend.backend() != "tensorflow" and find_spec("tensorflow") is not None:
            import tensorflow  # noqa: F401


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


@functools.cache  # a process's backend and devices do not change
def accelerator_count() -> int:
    """How many GPUs (or other accelerators) the Keras backend sees. Asked in a short-lived
    process unless Keras is loaded here already, so that a driver stays without it."""
    if "keras" not in sys.modules:
        ask = (
            "import keras; from kaggle_digits.machine.backend import accelerator_count; "
            "print(accelerator_count())"
        )
        answer = subprocess.run(
            [sys.executable, "-c", ask],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        count = answer.stdout.strip()
        return int(count) if count.isdigit() else 0
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with native_stderr_hidden():  # the CUDA probe's complaints on a machine without one
            return len(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return 0 if jax.default_backend() == "cpu" else jax.device_count()
    if backend == "torch":
        import torch

        return torch.cuda.device_count()
    return 0


def visible_gpus(count: int) -> list[str]:
    """The ids of the GPUs this process may use, as CUDA_VISIBLE_DEVICES names them."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    ids = [gpu.strip() for gpu in given.split(",") if gpu.strip()] if given else []
    return ids[:count] if len(ids) >= count else [str(index) for index in range(count)]


def gpu_name() -> str:
    """The (first) GPU's name as nvidia-smi gives it, or "gpu" where it cannot say."""
    names = gpu_names()
    return names[0] if names else "gpu"


def gpu_names() -> list[str]:
    """The name of each GPU nvidia-smi lists (none where there is no nvidia-smi)."""
    try:
        answer = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line.strip() for line in answer.stdout.splitlines() if line.strip()]


def auto_workers(config, accelerators: int) -> int:
    """Pairs to train at once when --workers is not given: on GPUs, GPU_PAIRS_AT_ONCE
    processes taking turns on each; on a CPU single-threaded processes, one per core and more
    where that ends the run sooner (5 pairs on 2 cores: 3, see schedule.py)."""
    from kaggle_digits.machine.schedule import shortest_run_workers

    pairs = config.folds * len(config.members)
    if accelerators:
        return min(pairs, GPU_PAIRS_AT_ONCE * int(accelerators))
    return shortest_run_workers(pairs, cpu_count(), MAX_AUTO_WORKERS)
