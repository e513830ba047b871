"""A running kernel's log, shown line by line as it grows: followed live where Kaggle and the
installed client stream it (kernels.log_stream, in a thread of its own), else read again at
each poll from the version's output listing (kernels.kernel_output). Either way the lines
are the log's text, never Kaggle's JSON records."""

import threading
from collections.abc import Callable

from kaggle_digits.base.errors import UserError
from kaggle_digits.kaggle_api import kernels as kaggle_kernels

Log = Callable[[str], None]


class KernelLog:
    """The log of version `version` of kernel `ref`; `show_new_lines` prints what came since
    its last call, each line once, through `log`."""

    def __init__(self, ref: str, version: int, log: Log, stream: bool = True) -> None:
        self.ref, self.version, self.log = ref, version, log
        self.shown = 0  # lines shown so far
        self.last = ""  # the last line shown: the run's own progress
        self.streamed: list[str] = []  # the records' text as the stream brought them
        self.streaming = stream  # False once the stream failed: poll instead
        self.follower: threading.Thread | None = None

    def show_new_lines(self) -> None:
        if self.streaming and self._follow():
            text = "".join(self.streamed)
            complete = text[: text.rfind("\n") + 1]  # a line shown once it has ended
        else:
            try:
                _, complete = kaggle_kernels.kernel_output(self.ref, self.version)
            except UserError:
                return  # Kaggle may not show a running kernel's log: the state line goes on
        self.show_rest(complete)
        lines = complete.splitlines()
        self.last = lines[-1].strip() if lines else self.last

    def show_rest(self, text: str, tail: int | None = None) -> None:
        """The lines of the whole log (`text`, read once the kernel has ended) not shown yet,
        at most its last `tail`."""
        lines = text.splitlines()
        start = self.shown if tail is None else max(self.shown, len(lines) - tail)
        for line in lines[start:]:
            self.log(f"  | {line}")
        self.shown = max(self.shown, len(lines))

    def _follow(self) -> bool:
        """Whether the log is being (or was) streamed; starts the stream, again where it ended
        while the kernel runs on (the server replays it from the start: the records already
        read are skipped)."""
        if self.follower is None or not self.follower.is_alive():
            self.follower = threading.Thread(target=self._read_stream, daemon=True)
            self.follower.start()
            self.follower.join(0.5)  # the first records, or the failure, before deciding
        return self.streaming

    def _read_stream(self) -> None:
        try:
            records = kaggle_kernels.log_stream(self.ref, self.version)
            if records is None:
                self.streaming = False  # a client without the stream
                return
            for index, text in enumerate(records):
                if index >= len(self.streamed):
                    self.streamed.append(text)
        except UserError:
            self.streaming = False
