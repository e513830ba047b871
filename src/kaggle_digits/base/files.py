"""Atomic writes: every file is written under a temporary name beside its target and renamed
into place, so an interrupted write never leaves a half-written file behind; a full disk is
one clear error naming the file, with the temporary file removed and the old one kept."""

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kaggle_digits.base import faults
from kaggle_digits.base.errors import UserError

TEMPORARY_PREFIX = "."  # .<stem>-<random><suffix>, beside the file it becomes
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
SHORT_WRITE_SPACE = 1 << 20  # bytes free below which a short write is a full disk


class DiskFull(UserError):
    """No space left (or the quota spent) while writing a file."""


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path to write to; renamed to `path` when the block succeeds."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f"{TEMPORARY_PREFIX}{path.stem}-", suffix=path.suffix
        )
        os.close(handle)
        yield Path(tmp)
        faults.reached(f"write {path.name}")
        os.replace(tmp, path)
    except OSError as error:
        if is_disk_full(error, path.parent):  # asked before the temporary file goes
            raise DiskFull(f"no space left on device while writing {path}") from None
        raise
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def is_disk_full(error: OSError, folder: Path) -> bool:
    """ENOSPC, a spent quota, or a write cut short on a file system with next to no space
    left: numpy says "N requested and M written", with no error number."""
    if error.errno in DISK_FULL:
        return True
    if error.errno is not None:
        return False
    try:
        return shutil.disk_usage(folder).free < SHORT_WRITE_SPACE
    except OSError:
        return False


def is_temporary(path: Path) -> bool:
    """A file atomic_path was writing when its process died."""
    return Path(path).name.startswith(TEMPORARY_PREFIX) and Path(path).is_file()


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs: whether what it left (a temporary folder, an upload
    begun) may still be in use."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def write_json(path: Path, payload: dict) -> None:
    write_text(path, json.dumps(payload, indent=2) + "\n")


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def save_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)
