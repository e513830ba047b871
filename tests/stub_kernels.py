"""The kernels half of the stand-in Kaggle (kaggle_stub.py): SaveKernel, GetKernel,
GetKernelSessionStatus, ListKernelSessionOutput, the live log stream and
GetAcceleratorQuotaStatistics, and the private datasets a kernel may attach (StartBlobUpload,
CreateDataset, CreateDatasetVersion, GetDatasetStatus), with kagglesdk's JSON shapes, and
Kaggle's behaviour as users report it in 2026:

- a kernel may not name itself as a source, nor a version that failed or was cancelled:
  SaveKernel names them in invalidKernelSources and starts the version all the same,
  without them (so too an unknown dataset or competition);
- the log comes as one JSON array on one line; while a version runs it streams as
  server-sent events ending in END_OF_LOG;
- durations in whole seconds ("0s"), which kagglesdk up to 0.1.30 cannot read;
- a kernel it does not know is 403 "Permission 'kernels.get' was denied" (or 404);
- a version pushed through the API may sit in QUEUED for hours (api_pushes_queued), while
  one saved from the kernel's page runs at once (save_from_page);
- a new dataset version is "ready" before it is the dataset's current one, which is what a
  kernel attaching the dataset gets (current_version_after); a dataset just made is unknown
  (404) for a moment (unknown_after_create);

and each pushed script really run the way Kaggle runs it:

- in a Python environment like Kaggle's image: TensorFlow, Keras and the rest of this
  checkout's environment (or another interpreter's: KaggleImage(python=...)), but not the
  kaggle_digits package;
- in a mount and network namespace of its own (unshare, as root): no network, the inputs
  read-only where Kaggle mounts them in 2026 (/kaggle/input/competitions/<slug>/,
  datasets/<owner>/<slug>/, notebooks/<owner>/<slug>/), and /kaggle/working, the version's
  output, as the working directory.

On the CPU, of course; the kernel sees no GPU.
"""

import json
import os
import shlex
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from stub_datasets import StubDataset, StubDatasets

KAGGLE_ROOT = Path("/kaggle")


def can_run_kernels() -> str:
    """Why this machine cannot run kernels as Kaggle does ('' where it can)."""
    if os.geteuid() != 0:
        return "running a kernel as Kaggle does needs root (mount and network namespaces)"
    probe = subprocess.run(["unshare", "-m", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -m -n fails here: {probe.stderr.strip()}"
    return ""


class KaggleImage:
    """A Python environment standing in for Kaggle's image: a venv whose only packages are
    those of this interpreter's site-packages, added as a path, so that the .pth file of this
    checkout's editable install is never read: everything imports but kaggle_digits."""

    def __init__(self, folder: Path, python: Path | None = None) -> None:
        if python is not None:  # an environment made elsewhere: Kaggle's versions, say
            self.python = Path(python)
            return
        subprocess.run(
            [sys._base_executable, "-m", "venv", "--without-pip", str(folder)], check=True
        )
        self.python = folder / "bin" / "python"
        site = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        Path(site, "kaggle_image.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    def imports(self, module: str) -> bool:
        ask = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
        return subprocess.run([str(self.python), "-c", ask]).returncode == 0


@dataclass
class KernelVersion:
    number: int
    request: dict  # SaveKernel's, as sent
    working: Path  # its /kaggle/working: what it leaves is its output
    status: str = "QUEUED"
    failure: str = ""
    log: list[dict] = field(default_factory=list)
    process: subprocess.Popen | None = None
    mounted: list[str] = field(default_factory=list)  # the sources it was given


@dataclass
class StubKernels(StubDatasets):
    slug: str  # the competition
    competition_files: Path  # its CSVs
    folder: Path  # where each version's working directory and home go
    image: KaggleImage | None = None  # None: pushed kernels stay queued
    environment: dict = field(default_factory=dict)  # added to a kernel's (a fault to inject)
    refuse_with: str = ""  # SaveKernel's `error`, as Kaggle answers a push it refuses
    gpu_allowed: bool = True  # False: 403, as for an account without phone verification
    gpu_hours: tuple[float, float] = (2.5, 30.0)  # used, allowed this week
    gpu_reserved_hours: float = 0.0  # held by sessions running now
    failed_output_listed: bool = True  # False: a failed version's output is not listed
    log_stream: bool = True  # False: the stream is not served (404), as on older servers
    polls_before_ready: int = 1  # GetDatasetStatus answers before a new version is ready
    current_version_after: float = 0.0  # seconds before a new version is the current one
    unknown_after_create: float = 0.0  # seconds a new dataset answers 404 to its status calls
    unknown_kernel_status: int = 403  # GetKernel's answer for a kernel it does not know
    api_pushes_queued: bool = False  # versions pushed through SaveKernel never leave QUEUED
    versions: dict[str, list[KernelVersion]] = field(default_factory=dict)  # ref -> versions
    datasets: dict[str, StubDataset] = field(default_factory=dict)  # owner/slug -> dataset
    uploads: dict[str, bytes] = field(default_factory=dict)  # the blobs, by token
    url: str = ""

    # --- the service -------------------------------------------------------------------

    def answer(self, method: str, request: dict) -> tuple[int, dict]:
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return 404, {"code": 404, "message": f"Unknown method {method}"}
        return handler(request)

    def _SaveKernel(self, request: dict) -> tuple[int, dict]:
        if request.get("enableGpu") and not self.gpu_allowed:
            message = "Phone verification is required to use GPU accelerators."
            return 403, {"code": 403, "message": message}
        ref = request["slug"]
        answer = {"ref": f"/code/{ref}", "url": f"https://www.kaggle.com/code/{ref}"}
        if self.refuse_with:
            return 200, answer | {"error": self.refuse_with}
        competitions = request.get("competitionDataSources", [])
        kernels = request.get("kernelDataSources", [])
        datasets = request.get("datasetDataSources", [])
        invalid = {
            "invalidCompetitionSources": [name for name in competitions if name != self.slug],
            "invalidKernelSources": [name for name in kernels if not self._valid_kernel(name, ref)],
            "invalidDatasetSources": [name for name in datasets if name not in self.datasets],
        }
        refused = {name for names in invalid.values() for name in names}
        versions = self.versions.setdefault(ref, [])
        number = len(versions) + 1
        working = self.folder / ref.replace("/", "--") / f"v{number}"
        working.mkdir(parents=True)
        version = KernelVersion(number, request, working)
        version.mounted = [
            name for name in competitions + kernels + datasets if name not in refused
        ]
        versions.append(version)
        if self.image is not None and not self.api_pushes_queued:
            threading.Thread(target=self._run, args=(ref, version), daemon=True).start()
        return 200, answer | {"versionNumber": number} | {k: v for k, v in invalid.items() if v}

    def save_from_page(self, ref: str) -> KernelVersion:
        """The user's "Save Version" on the kernel's page: a new version of the latest
        script, with its sources, which runs at once (where kernels run at all)."""
        latest = self.versions[ref][-1]
        number = len(self.versions[ref]) + 1
        working = latest.working.parent / f"v{number}"
        working.mkdir()
        version = KernelVersion(number, latest.request, working, mounted=latest.mounted)
        self.versions[ref].append(version)
        if self.image is not None:
            threading.Thread(target=self._run, args=(ref, version), daemon=True).start()
        return version

    def _valid_kernel(self, source: str, pushed: str) -> bool:
        """Another kernel whose latest version completed (users' reports, 2026)."""
        versions = self.versions.get(source)
        return source != pushed and bool(versions) and versions[-1].status == "COMPLETE"

    def _GetKernel(self, request: dict) -> tuple[int, dict]:
        versions = self.versions.get(f"{request.get('userName')}/{request.get('kernelSlug')}")
        if not versions and self.unknown_kernel_status == 403:
            return 403, {"code": 403, "message": "Permission 'kernels.get' was denied"}
        if not versions:
            return 404, {"code": 404, "message": "Kernel not found"}
        return 200, {"metadata": {"currentVersionNumber": len(versions)}}

    def _GetKernelSessionStatus(self, request: dict) -> tuple[int, dict]:
        version = self._version(request)
        if version is None:
            return 404, {"code": 404, "message": "Kernel not found"}
        answer = {"status": version.status}
        return 200, answer | ({"failureMessage": version.failure} if version.failure else {})

    def _ListKernelSessionOutput(self, request: dict) -> tuple[int, dict]:
        version = self._version(request)
        if version is None:
            return 404, {"code": 404, "message": "Kernel not found"}
        ref = f"{request['userName']}/{request['kernelSlug']}"
        if version.status in ("ERROR", "CANCEL_ACKNOWLEDGED") and not self.failed_output_listed:
            return 200, {"files": [], "log": json.dumps(version.log)}
        names = sorted(
            str(path.relative_to(version.working))
            for path in version.working.rglob("*")
            if path.is_file()
        )
        start, size = int(request.get("pageToken") or 0), int(request.get("pageSize") or 20)
        files = [
            {"fileName": name, "url": f"{self.url}/kernel-output/{ref}/{version.number}/{name}"}
            for name in names[start : start + size]
        ]
        token = str(start + size) if start + size < len(names) else ""
        log = json.dumps(version.log)  # as Kaggle sends it in 2026: one JSON array, one line
        return 200, {"files": files, "log": log, "nextPageToken": token}

    def _GetAcceleratorQuotaStatistics(self, request: dict) -> tuple[int, dict]:
        used, allowed = self.gpu_hours
        quota = {
            "timeUsed": f"{int(used * 3600)}s",
            "totalTimeAllowed": f"{int(allowed * 3600)}s",
            "timeReserved": f"{int(self.gpu_reserved_hours * 3600)}s",
        }
        return 200, {"gpuQuota": quota, "quotaRefreshTime": "2026-12-07T00:00:00Z"}

    # --- the log, streamed ----------------------------------------------------------------

    def log_events(self, path: str, label: str):
        """GET /api/v1/kernels/logs/stream/<owner>/<slug>?versionLabel=v<N>: None (404), or
        (content type, chunks): while the version runs, its records as server-sent events
        from the start, then END_OF_LOG; once it has ended, the whole log as one array."""
        versions = self.versions.get(path) if self.log_stream else None
        if not versions:
            return None
        number = int(label.removeprefix("v")) if label.removeprefix("v").isdigit() else 0
        version = versions[number - 1] if 0 < number <= len(versions) else versions[-1]
        if version.status not in ("QUEUED", "RUNNING"):
            return "application/json", iter([json.dumps(version.log).encode()])
        return "text/event-stream", self._events(version)

    def _events(self, version: KernelVersion):
        sent = 0
        while True:
            running = version.status in ("QUEUED", "RUNNING")
            for record in version.log[sent:]:
                yield f"data: {json.dumps(record)}\n\n".encode()
                sent += 1
            if not running:
                yield b"data: END_OF_LOG\n\n"
                return
            time.sleep(0.05)

    def output_file(self, path: str) -> bytes | None:
        """GET /kernel-output/<owner>/<slug>/<version>/<name>: a file of a version's output."""
        owner, slug, number, name = path.split("/", 3)
        versions = self.versions.get(f"{owner}/{slug}", [])
        if not number.isdigit() or not 0 < int(number) <= len(versions):
            return None
        file = versions[int(number) - 1].working / name
        return file.read_bytes() if file.is_file() else None

    def _version(self, request: dict) -> KernelVersion | None:
        versions = self.versions.get(f"{request.get('userName')}/{request.get('kernelSlug')}")
        if not versions:
            return None
        label = request.get("versionLabel") or f"v{len(versions)}"
        number = int(label.removeprefix("v")) if label.removeprefix("v").isdigit() else 0
        return versions[number - 1] if 0 < number <= len(versions) else None

    # --- running a version as Kaggle does -----------------------------------------------

    def cancel(self, ref: str) -> None:
        """The user's "Cancel run" on Kaggle's page: the version's process is ended."""
        version = self.versions[ref][-1]
        if version.status == "QUEUED":  # never started: nothing to stop
            version.status = "CANCEL_ACKNOWLEDGED"
            return
        version.status = "CANCEL_REQUESTED"
        if version.process is not None:
            version.process.kill()

    def wait(self, ref: str, timeout: float = 600) -> KernelVersion:
        """The latest version of `ref`, once it has stopped."""
        deadline = time.monotonic() + timeout
        while self.versions[ref][-1].status in ("QUEUED", "RUNNING", "CANCEL_REQUESTED"):
            assert time.monotonic() < deadline, f"{ref} still runs"
            time.sleep(0.2)
        return self.versions[ref][-1]

    def _run(self, ref: str, version: KernelVersion) -> None:
        script = version.working.parent / f"script-v{version.number}.py"
        script.write_text(version.request["text"])
        home = version.working.parent / f"home-v{version.number}"
        home.mkdir()
        KAGGLE_ROOT.mkdir(exist_ok=True)  # the mount point, empty on the host
        mounts = [
            "mount -t tmpfs kaggle /kaggle",
            "mkdir -p /kaggle/working /kaggle/src /kaggle/input",
        ]
        if self.slug in version.mounted:
            where = f"/kaggle/input/competitions/{self.slug}"
            mounts += self._read_only(self.competition_files, where)
        for source in version.request.get("kernelDataSources", []):
            if source in version.mounted:  # another kernel's latest version, complete
                latest = self.versions[source][-1].working
                mounts += self._read_only(latest, f"/kaggle/input/notebooks/{source}")
        for source in version.request.get("datasetDataSources", []):
            current = self.current_version(source) if source in version.mounted else 0
            if current:  # the dataset's current version, which may not be its newest
                attached = self.datasets[source].versions[current - 1]
                mounts += self._read_only(attached, f"/kaggle/input/datasets/{source}")
        mounts += [
            f"mount --bind {shlex.quote(str(version.working))} /kaggle/working",
            f"cp {shlex.quote(str(script))} /kaggle/src/script.py",
            "cd /kaggle/working",
            f"exec {shlex.quote(str(self.image.python))} /kaggle/src/script.py",
        ]
        environment = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "KAGGLE_KERNEL_RUN_TYPE": "Batch",
            **self.environment,
        }
        version.status = "RUNNING"
        version.process = subprocess.Popen(
            ["unshare", "-m", "-n", "sh", "-c", "set -e; " + "; ".join(mounts)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=environment,
            text=True,
        )
        started = time.monotonic()
        for line in version.process.stdout:
            version.log.append(
                {"stream_name": "stdout", "time": time.monotonic() - started, "data": line}
            )
        code = version.process.wait()
        if version.status == "CANCEL_REQUESTED":
            version.status = "CANCEL_ACKNOWLEDGED"
        elif code == 0:
            version.status = "COMPLETE"
        else:
            version.status, version.failure = "ERROR", f"The script exited with code {code}"

    @staticmethod
    def _read_only(source: Path, target: str) -> list[str]:
        return [
            f"mkdir -p {target}",
            f"mount --bind {shlex.quote(str(source))} {target}",
            f"mount -o remount,bind,ro {target}",
        ]
