"""Progress of a cross-validation run: a line per finished epoch of every pair, with an ETA
for the whole run that knows how many pairs train at once; on a terminal, a status line in
between that shows how far each running epoch has got."""

import time
from collections.abc import Callable, Sequence

import numpy as np

from kaggle_digits.machine.schedule import job_speed, makespan
from kaggle_digits.training.budget import FINISH_SECONDS
from kaggle_digits.training.pairs import EpochReport, Pair, PairOutput

Log = Callable[[str], None]


class Progress:
    def __init__(
        self,
        pairs: Sequence[Pair],
        finished: Sequence[Pair],
        epochs: int,
        folds: int,
        workers: int,
        log: Log,
        status: Log | None = None,
        cores: int | None = None,
        crowded_speed: float | None = None,
        pair_overhead: float = 0.0,
    ) -> None:
        self.pending = [pair for pair in pairs if pair not in finished]
        self.epochs, self.folds, self.workers, self.log = epochs, folds, workers, log
        self.cores = cores or workers  # more workers than cores share them
        self.crowded_speed = crowded_speed  # of each, where measured (schedule.job_speed)
        self.members = len({pair.member for pair in pairs})
        self.epochs_done: dict[Pair, int] = {}
        # an epoch's seconds without its warm-up, as if its pair had a core to itself (see
        # core_share)
        self.epoch_seconds: dict[str, list[float]] = {}
        self.seconds_in_epochs: dict[Pair, float] = {}  # each running pair's, without warm-ups
        self.warmups: dict[Pair, float] = {}  # each running pair's, with a core to itself
        # a pair's seconds outside its epochs' steady steps, with a core to itself: start-up,
        # the first step's tracing, predictions, saving; until pairs have ended to measure
        # it, what a budget's trial expects (pair_overhead)
        self.overheads: list[float] = []
        self.pair_overhead = pair_overhead
        self.started = time.perf_counter()
        self.status = status  # shows a transient line (a terminal's); None: log lines only
        self.partial: dict[Pair, EpochReport] = {}

    def label(self, pair: Pair) -> str:
        return (
            f"fold {pair.fold + 1}/{self.folds} member {pair.member + 1}/{self.members} "
            f"{pair.architecture}"
        )

    def epoch_done(self, report: EpochReport) -> None:
        if report.epoch <= self.epochs_done.get(report.pair, 0):
            # only a runner that retries a pair whose worker died sends an epoch twice
            self.log(f"{self.label(report.pair)}: its worker was lost; training it again")
            del self.epochs_done[report.pair]
            self.seconds_in_epochs.pop(report.pair, None)
            self.warmups.pop(report.pair, None)
        if not report.finished:
            self.partial[report.pair] = report
            if self.status is not None:
                self.status(self.status_line())
            return
        share = self.core_share(report.pair)
        self.partial.pop(report.pair, None)
        self.epochs_done[report.pair] = report.epoch
        steady = report.seconds - report.warmup_seconds
        self.seconds_in_epochs[report.pair] = self.seconds_in_epochs.get(report.pair, 0.0) + steady
        self.warmups[report.pair] = (
            self.warmups.get(report.pair, 0.0) + report.warmup_seconds * share
        )
        self.epoch_seconds.setdefault(report.pair.architecture, []).append(steady * share)
        logs = report.logs
        holdout = f"  held-out acc {logs['val_accuracy']:.4f}" if "val_accuracy" in logs else ""
        self.log(
            f"{self.label(report.pair)} epoch {report.epoch}/{self.epochs}  "
            f"loss {logs.get('loss', 0):.4f}  acc {logs.get('accuracy', 0):.4f}{holdout}  "
            f"{report.seconds:.0f}s/epoch  ETA {duration(self.eta())}"
        )

    def core_share(self, pair: Pair) -> float:
        """The share of a core each running pair has now (1 with no more pairs than cores)."""
        running = {other for other in self.pending if other in self.epochs_done}
        running |= set(self.partial) | {pair}
        return job_speed(len(running), self.workers, self.cores, self.crowded_speed)

    def pair_done(self, output: PairOutput, holdout_accuracy: float, holdout_loss: float) -> None:
        pair = output.pair
        # start-up, warm-ups, predictions and saving: its seconds outside its steady steps
        outside_epochs = output.seconds - self.seconds_in_epochs.pop(pair, 0.0)
        self.overheads.append(max(0.0, outside_epochs * self.core_share(pair)))
        self.pending.remove(pair)
        self.epochs_done.pop(pair, None)
        self.warmups.pop(pair, None)
        self.partial.pop(pair, None)
        self.log(
            f"{self.label(pair)}: held-out accuracy {holdout_accuracy:.5f} "
            f"loss {holdout_loss:.4f} in {output.seconds / 60:.1f} min"
        )

    def eta(self) -> float:
        """Seconds until the run ends: the pairs under way finish their epochs, the others
        queue for the workers as the runner hands them out (sharing the cores where there are
        more workers), then the run is summed up."""
        overhead = float(np.mean(self.overheads[-5:])) if self.overheads else self.pair_overhead
        # under way: a pair with an epoch done, or a report from inside its first
        running = [
            pair for pair in self.pending if pair in self.epochs_done or pair in self.partial
        ]
        waiting = [pair for pair in self.pending if pair not in running]
        # a running pair has spent the part of its overhead that its warm-ups took
        busy = [
            (self.epochs - self.epochs_done.get(pair, 0) - self.fraction(pair))
            * self.seconds_per_epoch(pair)
            + max(0.0, overhead - self.warmups.get(pair, 0.0))
            for pair in running
        ]
        queued = [self.epochs * self.seconds_per_epoch(pair) + overhead for pair in waiting]
        workers = max(self.workers, len(busy))
        remaining = makespan(
            queued, workers, busy, cores=self.cores, crowded_speed=self.crowded_speed
        )
        return remaining + FINISH_SECONDS

    def fraction(self, pair: Pair) -> float:
        """How much of its running epoch a pair has done."""
        report = self.partial.get(pair)
        return report.step / report.steps if report and report.steps else 0.0

    def status_line(self) -> str:
        """Each running epoch's progress bar, the steps a second of all, and the ETA."""
        cells, rate = [], 0.0
        for pair, report in sorted(self.partial.items(), key=lambda item: item[0].fold):
            done = int(10 * self.fraction(pair))
            cells.append(
                f"fold {pair.fold + 1} epoch {report.epoch}/{self.epochs} "
                f"[{'#' * done}{'.' * (10 - done)}] {report.step}/{report.steps}"
            )
            rate += report.step / max(report.seconds, 1e-9)
        return " | ".join(cells) + f" | {rate:.1f} steps/s | ETA {duration(self.eta())}"

    def seconds_per_epoch(self, pair: Pair) -> float:
        measured = self.epoch_seconds.get(pair.architecture)
        if measured:
            return float(np.mean(measured[-10:]))
        every = [seconds for values in self.epoch_seconds.values() for seconds in values]
        return float(np.mean(every)) if every else 0.0


def duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
