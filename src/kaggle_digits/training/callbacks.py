"""Keras callbacks that time and report the training: each epoch's report, a hook after a
given step, the end of every step."""

import time
from collections.abc import Callable

import keras


class EpochReporter(keras.callbacks.Callback):
    """Calls report(epoch, logs, seconds, step, steps, finished, warmup_seconds) as each epoch
    ends, and about once a second during an epoch with finished=False (epochs and steps counted
    from 1). warmup_seconds: how much longer the epoch's first step took than its others (the
    first epoch's traces the graph and fills the shuffle buffer), so that the epochs still to
    come can be timed without it."""

    def __init__(self, report: Callable[..., None], every_seconds: float = 1.0) -> None:
        super().__init__()
        self.report = report
        self.every_seconds = every_seconds

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1
        self.started = self.reported = time.perf_counter()
        self.first_step_end: float | None = None
        self.last_step_end = 0.0

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self.first_step_end is None:
            self.first_step_end = now
        self.last_step_end = now
        if now - self.reported >= self.every_seconds:
            self.reported = now
            steps = self.params.get("steps") or 0
            self.report(self.epoch, {}, now - self.started, batch + 1, steps, False)

    def on_epoch_end(self, epoch, logs=None):
        logs = {name: float(value) for name, value in (logs or {}).items()}
        steps = self.params.get("steps") or 0
        seconds = time.perf_counter() - self.started
        self.report(epoch + 1, logs, seconds, steps, steps, True, self.warmup_seconds(steps))

    def warmup_seconds(self, steps: int) -> float:
        if steps < 3 or self.first_step_end is None:
            return 0.0
        other_step = (self.last_step_end - self.first_step_end) / (steps - 1)
        return max(0.0, self.first_step_end - self.started - other_step)


class AfterSteps(keras.callbacks.Callback):
    """Calls `hook()` once, as training step `steps` (counted from 1) ends."""

    def __init__(self, steps: int, hook: Callable[[], None]) -> None:
        super().__init__()
        self.steps, self.hook = steps, hook
        self.done = 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done == self.steps:
            self.hook()


class BatchClock(keras.callbacks.Callback):
    """When each training step ended."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.batch_ends.append(time.perf_counter())
