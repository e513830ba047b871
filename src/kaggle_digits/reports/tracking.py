"""Runs tracked in MLflow, when asked for (`--track` or KAGGLE_DIGITS_TRACK=1): a `cv` run's
options as parameters, each pair's per-epoch loss and accuracy as metrics (step = epoch), the
OOF score, log loss and wall time, and the run folder's figures as artifacts; a blend's
sources and weights; a submission's public score, added to the run it came from.

MLflow is an optional extra (`pip install 'kaggle-digits[mlflow]'`), imported only here and
only when tracking is on. It uses MLflow's own default store (a SQLite file, mlflow.db, in the
working directory, unless MLFLOW_TRACKING_URI says otherwise): `mlflow ui` shows the runs. A
store that fails (locked, read-only, unreachable) costs one warning line and stops the
tracking; the run itself goes on and loses nothing.
"""

import logging
import time
from collections.abc import Callable
from pathlib import Path

from kaggle_digits.base.errors import UserError
from kaggle_digits.store.run_files import TRACKING, read_tracking, tracked_files, write_tracking

INSTALL_HINT = "pip install 'kaggle-digits[mlflow]'"

Log = Callable[[str], None]


def mlflow_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("mlflow") is not None


class Tracker:
    """One run folder's MLflow run. Off (`enabled` False), every call does nothing."""

    def __init__(self, enabled: bool, log: Log) -> None:
        if enabled and not mlflow_installed():
            raise UserError(f"--track needs MLflow, which is not installed: {INSTALL_HINT}")
        self.enabled = enabled
        self.log = log
        self.run_id: str | None = None
        self._client = None

    def start(self, run_dir: Path, experiment: str, params: dict) -> None:
        """The MLflow run of `run_dir`: the one it was tracked in before (a resumed run),
        else a new one in `experiment`, with `params`."""
        self._guarded("starting the run", self._start, Path(run_dir), experiment, params)

    def epoch(self, series: str, epoch: int, logs: dict) -> None:
        """A finished epoch's metrics, as `series`/<metric> at step `epoch`."""
        from_logs = {f"{series}/{name}": value for name, value in logs.items()}
        self._guarded("logging an epoch", self._log_metrics, from_logs, epoch)

    def metrics(self, values: dict) -> None:
        self._guarded("logging metrics", self._log_metrics, values, None)

    def finish(self, run_dir: Path, values: dict) -> None:
        """The run's own metrics and its folder's files as artifacts; the MLflow run ends."""
        self._guarded("finishing the run", self._finish, Path(run_dir), values)

    def attach(self, run_dir: Path) -> bool:
        """Continue the MLflow run `run_dir` was tracked in; False (and a line) if it was not."""
        if not self.enabled:
            return False
        saved = read_tracking(run_dir)
        if saved is None:
            self.log(f"warning: {Path(run_dir).name} was not tracked (no {TRACKING})")
            return False
        self._guarded("opening the run", self._attach, saved)
        return self.run_id is not None

    # --- MLflow itself ----------------------------------------------------------------

    def _guarded(self, what: str, call: Callable, *args) -> None:
        if not self.enabled:
            return
        try:
            call(*args)
        except Exception as error:  # any failure of the store: the run goes on without it
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            self.log(f"warning: MLflow tracking stopped ({what}: {reason[:200]})")
            self.enabled = False

    def _open(self, tracking_uri: str | None = None):
        import mlflow

        for name in ("mlflow", "alembic"):  # their start-up chatter on a new store
            logging.getLogger(name).setLevel(logging.WARNING)
        self._client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        return self._client

    def _start(self, run_dir: Path, experiment: str, params: dict) -> None:
        saved = read_tracking(run_dir)
        if saved is not None:  # resumed: the same MLflow run
            self._attach(saved)
            return
        client = self._open()
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        run = client.create_run(experiment_id, run_name=run_dir.name)
        self.run_id = run.info.run_id
        write_tracking(run_dir, {"run_id": self.run_id, "tracking_uri": client.tracking_uri})
        from mlflow.entities import Param

        client.log_batch(
            self.run_id, params=[Param(key, _param(value)) for key, value in params.items()]
        )
        self.log(f"tracking in MLflow: run {self.run_id} at {client.tracking_uri}")

    def _attach(self, saved: dict) -> None:
        self._open(saved["tracking_uri"])
        self.run_id = saved["run_id"]
        self._client.get_run(self.run_id)  # still there

    def _log_metrics(self, values: dict, step: int | None) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, step or 0)
            for key, value in values.items()
            if isinstance(value, int | float)
        ]
        self._client.log_batch(self.run_id, metrics=metrics)

    def _finish(self, run_dir: Path, values: dict) -> None:
        if self.run_id is None:
            return
        self._log_metrics(values, None)
        for path in tracked_files(run_dir):
            self._client.log_artifact(self.run_id, str(path))
        self._client.set_terminated(self.run_id)


def run_metrics(metrics: dict) -> dict:
    """What MLflow keeps of a run's metrics.json: its scores and times."""
    keys = ("oof_accuracy", "oof_log_loss", "fold_accuracy_mean", "wall_minutes", "pair_minutes")
    folds = {
        f"fold{fold + 1}_accuracy": value
        for fold, value in enumerate(metrics.get("fold_accuracies", []))
    }
    return {key: metrics[key] for key in keys if key in metrics} | folds


def flat_params(values: dict, prefix: str = "") -> dict:
    """A config.json's entries as MLflow parameters: nested tables as `table.key`."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat |= flat_params(value, f"{prefix}{key}.")
        elif value is not None:
            flat[f"{prefix}{key}"] = value
    return flat


def _param(value) -> str:
    """A parameter's value as MLflow keeps it: text, lists joined with commas."""
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)[:6000]  # MLflow's limit for a parameter's value
