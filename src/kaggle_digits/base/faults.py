"""Crash points for the crash-safety tests, in the manner of git's GIT_TEST_* variables: with
KAGGLE_DIGITS_KILL_AT="<point>[:<n>]" in the environment, the process kills itself by SIGKILL
(nothing flushed, nothing cleaned up) the n-th time (default: the first) it reaches <point>.
Without it, reaching a point costs a lookup. The points are named where they are reached:
"trial" (a member's timed steps measured), "epoch" (a pair's epoch reported), "write <file>"
(a file's new content complete under its temporary name, not yet renamed into place),
"ledger" (a submission event about to be appended), "upload" (a file uploaded, the ledger not
yet told). KAGGLE_DIGITS_KILL_WITH=TERM sends SIGTERM instead, as Kaggle stops a session."""

import os
import signal

KILL_AT = "KAGGLE_DIGITS_KILL_AT"
KILL_WITH = "KAGGLE_DIGITS_KILL_WITH"

_times_reached: dict[str, int] = {}


def reached(point: str) -> None:
    target = os.environ.get(KILL_AT)
    if not target:
        return
    name, _, nth = target.rpartition(":") if target[-1:].isdigit() else (target, "", "1")
    if name != point:
        return
    _times_reached[point] = _times_reached.get(point, 0) + 1
    if _times_reached[point] == int(nth):
        os.kill(os.getpid(), getattr(signal, f"SIG{os.environ.get(KILL_WITH, 'KILL')}"))
