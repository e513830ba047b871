"""A full disk, where mounting is allowed a real one (a tmpfs of a few MiB): a run stopped
with one line that keeps its finished pairs and resumes, a numpy write cut short, a download
that keeps the data already there."""

import errno
import importlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fault_helpers import TINY_CV, assert_nothing_half_done, temporary_files
from helpers import assert_user_error, run_cli, small_dataset

from kaggle_digits.base import files
from kaggle_digits.jobs.runs import run_state


class SmallDisk:
    """A file system of a few MiB for a test: a tmpfs where mounting is allowed (root), else
    the runs' own writes (files.atomic_path) failing with ENOSPC once past the size."""

    def __init__(self, path: Path, monkeypatch) -> None:
        self.path = path
        self.path.mkdir()
        self.mounted = self._mount("size=4m")
        self.limit = 0
        if not self.mounted:
            self._inject(monkeypatch)

    def resize(self, kib: int) -> None:
        if self.mounted:
            assert self._mount(f"remount,size={kib}k")
        self.limit = kib * 1024

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)

    def _mount(self, options: str) -> bool:
        command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.path)]
        try:
            return subprocess.run(command, capture_output=True).returncode == 0
        except OSError:
            return False

    def _inject(self, monkeypatch) -> None:
        real = files.atomic_path
        disk = self

        def used() -> int:
            return sum(path.stat().st_size for path in disk.path.rglob("*") if path.is_file())

        @files.contextlib.contextmanager
        def atomic_path(path):
            with real(path) as tmp:
                yield tmp
                if Path(path).is_relative_to(disk.path) and used() > disk.limit:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        for module in (
            "kaggle_digits.base.files",
            "kaggle_digits.jobs.cv_pairs",
            "kaggle_digits.reports.plots",
        ):
            monkeypatch.setattr(f"{module}.atomic_path", atomic_path)


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    disk = SmallDisk(tmp_path / "disk", monkeypatch)
    yield disk
    disk.unmount()


def test_a_full_disk_stops_the_run_with_one_line_keeps_its_pairs_and_it_resumes(small, small_disk):
    runs_dir = small_disk.path / "runs"
    small_disk.resize(4 * 1024)  # room for the first two pairs: mlp's model is 2.7 MB
    cv = ("--competition", small.spec_path, "--data-dir", small.data_dir, "cv")
    result = run_cli(*cv, *TINY_CV, "--workers", "1", "--runs-dir", runs_dir)
    assert_user_error(result, "no space left on device while writing", str(runs_dir))
    [run_dir] = runs_dir.iterdir()
    assert f"stopped: `kaggle-digits cv --resume {run_dir}`" in result.stdout
    test_rows = len(small_dataset(small).test_images)
    assert assert_nothing_half_done(run_dir, test_rows) == 2
    assert temporary_files(run_dir) == []  # the file it could not finish, removed

    small_disk.resize(64 * 1024)  # space freed
    resumed = run_cli(*cv, "--resume", run_dir, "--runs-dir", runs_dir)
    assert resumed.exit_code == 0, resumed.output
    assert "fold 1/2 member 2/2 lc-cnn: done" in resumed.stdout  # kept, not trained again
    assert run_state(run_dir)[0] == "complete"


def test_a_numpy_write_cut_short_by_a_full_disk_is_one_line_and_leaves_nothing(small_disk):
    if not small_disk.mounted:
        pytest.skip("needs a real full disk: numpy reports a short write without ENOSPC")
    small_disk.resize(64)
    target = small_disk.path / "test_probs.npy"
    with pytest.raises(files.DiskFull, match=f"no space left on device while writing {target}"):
        files.save_array(target, np.zeros((28000, 10), dtype=np.float32))
    assert list(small_disk.path.iterdir()) == []


def test_a_download_on_a_full_disk_keeps_the_data_that_was_there(
    kaggle_server, small_disk, monkeypatch
):
    if not small_disk.mounted:
        pytest.skip("the kaggle client's own writes can only be stopped by a real full disk")
    # the client retries a failed write five times, backing off for a minute in all
    client = importlib.import_module("kaggle.api.kaggle_api_extended")
    monkeypatch.setattr(client.time, "sleep", lambda seconds: None)
    data_root = small_disk.path / "data"
    download = ("--competition", kaggle_server.spec_path, "--data-dir", data_root, "download")
    assert run_cli(*download).exit_code == 0
    before = {path.name: path.read_bytes() for path in (data_root / "digit-recognizer").iterdir()}
    used = sum(len(content) for content in before.values())
    small_disk.resize(used // 1024 + 64)  # the data, and not room for the zip again
    result = run_cli(*download, "--force")
    assert_user_error(
        result, "no space left on device while downloading into", "the data already there is kept"
    )
    after = {path.name: path.read_bytes() for path in (data_root / "digit-recognizer").iterdir()}
    assert after == before
    assert [path.name for path in data_root.iterdir()] == ["digit-recognizer"]  # no leftovers
