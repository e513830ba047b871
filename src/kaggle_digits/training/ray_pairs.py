"""The (fold, member) pairs of a run as Ray tasks: on a Ray started for the run on this
machine (`cv --workers N`), or on a running cluster (`cv --ray ADDRESS`).

The driver puts the data into Ray's object store once; each task trains one pair where Ray
places it and returns a PairOutput (model file, probabilities, history), which cv_pairs.py writes
into the run folder as it does for every engine. No shared filesystem is needed. A task asks
for one GPU where the cluster has GPUs, otherwise for CPU cores, and its backend uses only
the threads it was given. A task whose worker dies is run again, at most RETRIES times.

Ray is an optional extra (`pip install 'kaggle-digits[ray]'`): it is imported only here, and
this module only when a run asks for Ray.
"""

import logging
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from kaggle_digits.base.errors import UserError
from kaggle_digits.machine.backend import (
    THREAD_VARIABLES,
    backend_name,
    cpu_count,
    import_keras,
    native_stderr_hidden,
)
from kaggle_digits.options.config import CVConfig
from kaggle_digits.training.pairs import (
    Done,
    Pair,
    PairOutput,
    Report,
    StepTiming,
    TrainingData,
    fit_pair,
    mean_timing,
    time_steps,
)

RETRIES = 2  # runs of a pair after its worker died, before the run gives up
CONNECT_SECONDS = 10
POLL_SECONDS = 1.0  # how often the driver passes on the tasks' progress
INSTALL_HINT = "pip install 'kaggle-digits[ray]'"


def ray_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("ray") is not None


class RayPairs:
    """Pairs as Ray tasks, `workers` at a time (0: as many as the cluster's resources fit).

    `address` None starts a Ray on this machine with `workers` CPU slots (or its GPUs);
    otherwise it is a running cluster's address (host:port, ray://host:port, or auto)."""

    def __init__(self, workers: int = 0, address: str | None = None, pairs: int = 1) -> None:
        self.address = address
        self.requested = workers
        self.pairs = pairs
        self.workers = workers or 1
        self.threads = 1
        self.gpus = 0
        self.restart_seconds = 0.0  # the pairs' wait for fresh workers after a trial (measured)
        self._data_refs: dict[int, object] = {}

    def __enter__(self) -> "RayPairs":
        if self.address is not None and "RAY_AUTH_MODE" not in os.environ and _has_auth_token():
            # Ray sends a token only when told to before its import; a cluster without token
            # authentication ignores it
            os.environ["RAY_AUTH_MODE"] = "token"
        ray = _import_ray()
        if self.address is None:
            workers = self.requested or min(cpu_count(), self.pairs)
            self.threads = max(1, cpu_count() // workers)
            _start(ray, num_cpus=workers * self.threads)
        else:
            _connect(ray, self.address)
        self.gpus, self.threads, self.workers = pair_resources(
            [node["Resources"] for node in ray.nodes() if node["Alive"]],
            self.requested,
            self.pairs,
            threads=self.threads if self.address is None else 0,
        )
        return self

    @property
    def cores(self) -> int:
        """Pairs that run at full speed at once: on this machine, never more than its cores."""
        return min(self.workers, cpu_count()) if self.address is None else self.workers

    def __exit__(self, *exc) -> None:
        import ray

        self._data_refs.clear()
        ray.shutdown()

    def describe(self) -> dict:
        return {
            "engine": "ray",
            "address": self.address or "local",
            "pairs_at_once": self.workers,
            "threads_per_pair": self.threads,
            "gpus_per_pair": self.gpus,
        }

    def started_line(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a Ray on this machine"
        each = f"1 GPU and {self.threads} thread(s)" if self.gpus else f"{self.threads} thread(s)"
        return f"training {self.workers} pairs at a time as Ray tasks on {where}, {each} each"

    def run(
        self,
        data: TrainingData,
        config: CVConfig,
        pairs: Sequence[Pair],
        report: Report,
        done: Done,
    ) -> None:
        import ray
        from ray.util.queue import Queue

        data_ref = self._data_ref(data)
        reports = Queue(actor_options={"num_cpus": 0})
        task = ray.remote(_fit_pair_task).options(**self._task_options(), max_retries=RETRIES)
        waiting = list(pairs)
        running: dict = {}
        try:
            while waiting or running:
                # no more than `workers` at once, in the order given
                while waiting and len(running) < self.workers:
                    pair = waiting.pop(0)
                    running[task.remote(data_ref, config, pair, reports)] = pair
                finished, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
                _forward(reports, report)
                for ref in finished:
                    pair = running.pop(ref)
                    done(_result(ray, ref, pair))
            _forward(reports, report)
        finally:
            for ref in running:
                ray.cancel(ref, force=True)
            ray.kill(reports.actor)

    def time_steps(self, data: TrainingData, config: CVConfig, architecture: str) -> StepTiming:
        """`workers` tasks time the same steps at once: the cluster is then as busy as in the
        run.

        Each in a worker process that exits after it (`max_calls=1`): a process never gives
        back what a net held, and the trial builds each member in both precisions, so the
        pairs start in fresh workers, as with local worker processes. How long a fresh task
        waited before it could begin (the worker's start, fetching the data, importing Keras)
        is kept as restart_seconds, which the budget leaves for the pairs' first round."""
        import ray

        task = ray.remote(max_calls=1)(_time_steps_task).options(**self._task_options())
        data_ref = self._data_ref(data)
        submitted = time.time()
        trials = ray.get(
            [task.remote(data_ref, config, architecture, submitted) for _ in range(self.workers)]
        )
        self.restart_seconds = max(waited for _, waited in trials)
        return mean_timing([timing for timing, _ in trials])

    def _data_ref(self, data: TrainingData):
        """The data in the object store, put there once per run."""
        import ray

        if id(data) not in self._data_refs:
            self._data_refs = {id(data): ray.put(data)}
        return self._data_refs[id(data)]

    def _task_options(self) -> dict:
        # the thread limits must be in the environment before the backend starts: Ray keeps
        # a pool of worker processes for each distinct environment
        env_vars = {name: str(self.threads) for name in THREAD_VARIABLES}
        env_vars |= {"KERAS_BACKEND": backend_name(), "TF_CPP_MIN_LOG_LEVEL": "3"}
        return {
            "num_cpus": self.threads,
            "num_gpus": self.gpus,
            "runtime_env": {"env_vars": env_vars},
        }


def pair_resources(
    nodes: Sequence[dict], requested: int, pairs: int, threads: int = 0
) -> tuple[int, int, int]:
    """(GPUs, threads, pairs at once) for each pair on a cluster of these nodes' resources.

    One GPU a pair where there are GPUs. Otherwise `threads` CPU cores a pair if given, or an
    equal share of the cores among the pairs that run at once, never more than the smallest
    node has (a pair runs on one node)."""
    cpus = [int(node.get("CPU", 0)) for node in nodes]
    gpus = [int(node.get("GPU", 0)) for node in nodes]
    if not any(cpus):
        raise UserError("the Ray cluster has no CPUs to train on")
    if sum(gpus):
        per_gpu = max(1, min(c // g for c, g in zip(cpus, gpus, strict=True) if g))
        at_once = min(requested or pairs, sum(gpus))
        return 1, per_gpu, at_once
    if not threads:
        at_once = requested or min(sum(cpus), pairs)
        threads = max(1, min(min(c for c in cpus if c), sum(cpus) // at_once))
    slots = sum(c // threads for c in cpus)
    return 0, threads, max(1, min(requested or pairs, slots))


# --- connecting --------------------------------------------------------------------------


def _import_ray():
    if not ray_installed():
        raise UserError(f"Ray is not installed: {INSTALL_HINT}")
    import ray

    return ray


def _start(ray, num_cpus: int) -> None:
    # Ray runs its workers at niceness 15, where a busy machine's other processes take their
    # cores away (see docs/measurements.md#ray-niceness); pairs are the run's work
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(
        address="local",  # a new Ray, even where `ray start` runs one on this machine
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )


def _connect(ray, address: str) -> None:
    """Attach to a running cluster; an address nobody answers at is one line, not minutes of
    Ray retrying."""
    if address != "auto":
        host, port = _host_port(address)
        try:
            socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
        except OSError as error:
            reason = error.strerror or str(error) or type(error).__name__
            raise UserError(f"cannot reach a Ray cluster at {address}: {reason}") from None
    try:
        with native_stderr_hidden(replay=False):  # Ray's retries, logged by its C++ core
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as error:
        if "InvalidAuthToken" in _causes(error):
            raise UserError(
                f"the Ray cluster at {address} wants its token: copy the head's "
                "~/.ray/auth_token to this machine (or set RAY_AUTH_TOKEN)"
            ) from None
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise UserError(f"cannot attach to a Ray cluster at {address}: {first_line}") from None


def _has_auth_token() -> bool:
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or Path(token_file).is_file()


def _causes(error: BaseException) -> str:
    """The messages of an exception and of everything that caused it."""
    messages = []
    while error is not None:
        messages.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(messages)


def _host_port(address: str) -> tuple[str, int]:
    parts = urlsplit(address if "://" in address else f"ray-gcs://{address}")
    try:
        port = parts.port or (10001 if parts.scheme == "ray" else 6379)
    except ValueError:
        raise UserError(f"--ray {address}: not an address (host:port)") from None
    if not parts.hostname:
        raise UserError(f"--ray {address}: not an address (host:port)")
    return parts.hostname, port


# --- the driver's side of a task ---------------------------------------------------------


def _forward(reports, report: Report) -> None:
    """Every report the tasks have sent since the last call, in two calls to the queue: each
    call costs the driver a round trip (see docs/measurements.md#ray-niceness)."""
    waiting = reports.size()
    if waiting:
        for epoch_report in reports.get_nowait_batch(waiting):
            report(epoch_report)


def _result(ray, ref, pair: Pair) -> PairOutput:
    try:
        return ray.get(ref)
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as error:
        raise UserError(
            f"fold {pair.fold + 1} member {pair.member + 1}: its worker died "
            f"{RETRIES + 1} times ({type(error).__name__}); the finished pairs are saved"
        ) from None


# --- inside a Ray worker -----------------------------------------------------------------


def _fit_pair_task(data: TrainingData, config: CVConfig, pair: Pair, reports) -> PairOutput:
    import_keras()
    return fit_pair(data, config, pair, reports.put)


def _time_steps_task(
    data: TrainingData, config: CVConfig, architecture: str, submitted: float
) -> tuple[StepTiming, float]:
    """The trial's timing, and the seconds from the driver's call until the task could begin
    (wall clocks: on a cluster the nodes' clocks agree to milliseconds)."""
    import_keras()
    waited = max(0.0, time.time() - submitted)
    return time_steps(data, config, architecture), waited
