"""The kernels half of the stand-in Kaggle (kaggle_stub.py): SaveKernel,
GetKernelSessionStatus, ListKernelSessionOutput and GetAcceleratorQuotaStatistics, with
kagglesdk's JSON shapes, and each pushed script really run the way Kaggle runs it:

- in a Python environment like Kaggle's image: TensorFlow, Keras and the rest of this
  checkout's environment, but not the kaggle_digits package (KaggleImage);
- in a mount and network namespace of its own (unshare, as root): no network, the
  competition's files read-only at /kaggle/input/competitions/<slug>/, each kernel source's
  latest output read-only at /kaggle/input/<its slug>/, and /kaggle/working, the version's
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

    def __init__(self, folder: Path) -> None:
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


@dataclass
class StubKernels:
    slug: str  # the competition
    competition_files: Path  # its CSVs
    folder: Path  # where each version's working directory and home go
    image: KaggleImage | None = None  # None: pushed kernels stay queued
    environment: dict = field(default_factory=dict)  # added to a kernel's (a fault to inject)
    refuse_with: str = ""  # SaveKernel's `error`, as Kaggle answers a push it refuses
    gpu_allowed: bool = True  # False: 403, as for an account without phone verification
    gpu_hours: tuple[float, float] = (2.5, 30.0)  # used, allowed this week
    versions: dict[str, list[KernelVersion]] = field(default_factory=dict)  # ref -> versions
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
        invalid_competitions = [
            source for source in request.get("competitionDataSources", []) if source != self.slug
        ]
        invalid_kernels = [
            source for source in request.get("kernelDataSources", []) if source not in self.versions
        ]
        if self.refuse_with or invalid_competitions or invalid_kernels:
            return 200, answer | {
                "error": self.refuse_with,
                "invalidCompetitionSources": invalid_competitions,
                "invalidKernelSources": invalid_kernels,
            }
        versions = self.versions.setdefault(ref, [])
        number = len(versions) + 1
        working = self.folder / ref.replace("/", "--") / f"v{number}"
        working.mkdir(parents=True)
        version = KernelVersion(number, request, working)
        versions.append(version)
        if self.image is not None:
            threading.Thread(target=self._run, args=(ref, version), daemon=True).start()
        return 200, answer | {"versionNumber": number}

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
        quota = {"timeUsed": f"{int(used * 3600)}s", "totalTimeAllowed": f"{int(allowed * 3600)}s"}
        return 200, {"gpuQuota": quota, "quotaRefreshTime": "2026-12-07T00:00:00Z"}

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
            "mkdir -p /kaggle/working /kaggle/src",
            *self._read_only(self.competition_files, f"/kaggle/input/competitions/{self.slug}"),
        ]
        for source in version.request.get("kernelDataSources", []):
            # the source's latest version before this one (a kernel may read its own)
            latest = [earlier for earlier in self.versions[source] if earlier is not version][-1]
            latest = latest.working
            mounts += self._read_only(latest, f"/kaggle/input/{source.split('/', 1)[1]}")
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
