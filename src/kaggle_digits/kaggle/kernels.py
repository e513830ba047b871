"""Every call to Kaggle's kernels service: push a script kernel, ask its status, list and fetch
its output, and the GPU quota. Requests and answers are kagglesdk's own types (the calls
`kaggle kernels push|status|output` make), sent through the client of api.py, whose
failures become one-line UserErrors.

A kernel is named `owner/slug`; each push makes a new version, named `v<N>`.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import requests

from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import atomic_path
from kaggle_digits.kaggle.api import authenticated_api, kaggle_errors

DEFAULT_ACCELERATOR = "NvidiaTeslaT4"  # Kaggle's free GPU machine: two T4s
# GetKernelSessionStatus's answers: the kernel has stopped and will not change
FINISHED = ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")
OUTPUT_PAGE = 100  # files a ListKernelSessionOutput call
DOWNLOAD_TIMEOUT = 300  # seconds without a byte before a download is given up


@dataclass(frozen=True)
class PushedKernel:
    ref: str  # owner/slug
    version: int
    url: str


@dataclass(frozen=True)
class KernelStatus:
    status: str  # QUEUED, RUNNING, COMPLETE, ERROR, CANCEL_REQUESTED, CANCEL_ACKNOWLEDGED
    failure: str  # Kaggle's failureMessage, where it gave one

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class OutputFile:
    name: str  # relative to /kaggle/working, with forward slashes
    url: str


@dataclass(frozen=True)
class GpuQuota:
    used_hours: float
    allowed_hours: float
    refreshes: datetime | None

    @property
    def left_hours(self) -> float:
        return max(0.0, self.allowed_hours - self.used_hours)

    def describe(self) -> str:
        when = f"; it refreshes {self.refreshes:%Y-%m-%d %H:%M} UTC" if self.refreshes else ""
        return (
            f"{self.left_hours:.1f} h of {self.allowed_hours:.0f} h left this week "
            f"({self.used_hours:.1f} h used){when}"
        )


def kaggle_username() -> str:
    """The account the credentials belong to: the owner of the kernels pushed."""
    with kaggle_errors("", "reading the Kaggle credentials"):
        api = authenticated_api()
    username = api.get_config_value(api.CONFIG_NAME_USER)
    if not username:
        raise UserError(
            "the Kaggle credentials name no user: set KAGGLE_USERNAME (with KAGGLE_KEY or "
            "KAGGLE_API_TOKEN) or save ~/.kaggle/kaggle.json"
        )
    return username


def gpu_quota() -> GpuQuota:
    """The account's GPU time this week (GetAcceleratorQuotaStatistics)."""
    from kagglesdk.kernels.types.kernels_api_service import (
        ApiGetAcceleratorQuotaStatisticsRequest,
    )

    with kaggle_errors("", "reading your GPU quota"), _client() as kaggle:
        answer = kaggle.kernels.kernels_api_client.get_accelerator_quota_statistics(
            ApiGetAcceleratorQuotaStatisticsRequest()
        )
    quota = answer.gpu_quota
    used = quota.time_used.total_seconds() if quota and quota.time_used else 0.0
    allowed = quota.total_time_allowed.total_seconds() if quota and quota.total_time_allowed else 0
    return GpuQuota(used / 3600, allowed / 3600, answer.quota_refresh_time)


def push_kernel(
    ref: str,
    script: str,
    competition: str,
    accelerator: str | None,
    kernel_sources: tuple[str, ...] = (),
) -> PushedKernel:
    """Save and run a new version of the private Python script kernel `ref` (SaveKernel, as
    `kaggle kernels push`), the competition's data attached, internet off, on `accelerator`
    (a machine shape; None: no GPU)."""
    from kagglesdk.kernels.types.kernels_api_service import ApiSaveKernelRequest

    request = ApiSaveKernelRequest()
    request.slug = ref
    request.new_title = ref.split("/", 1)[1]  # a title that resolves to the slug
    request.text = script
    request.language = "python"
    request.kernel_type = "script"
    request.is_private = True
    request.enable_gpu = accelerator is not None
    request.enable_tpu = False
    request.enable_internet = False
    request.competition_data_sources = [competition]
    request.kernel_data_sources = list(kernel_sources)
    if accelerator is not None:
        request.machine_shape = accelerator
    with kaggle_errors(competition, "pushing the kernel"), _client() as kaggle:
        answer = kaggle.kernels.kernels_api_client.save_kernel(request)
    refused = _refusal(answer)
    if refused:
        raise UserError(f"Kaggle refused the kernel {ref}: {refused}")
    url = answer.url or f"https://www.kaggle.com/code/{ref}"
    return PushedKernel(ref, int(answer.version_number or 1), url)


def _refusal(answer) -> str:
    """What SaveKernel's answer says went wrong ('' if nothing): the `kaggle` CLI prints its
    error and still exits 0."""
    invalid = {
        "competition": answer.invalid_competition_sources,
        "kernel": answer.invalid_kernel_sources,
        "dataset": answer.invalid_dataset_sources,
    }
    problems = [answer.error] if answer.error else []
    for kind, sources in invalid.items():
        if sources:
            problems.append(f"invalid {kind} source {', '.join(sources)}")
    return "; ".join(problems)


def kernel_status(ref: str, version: int) -> KernelStatus:
    from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelSessionStatusRequest

    owner, slug = ref.split("/", 1)
    request = ApiGetKernelSessionStatusRequest()
    request.user_name, request.kernel_slug, request.version_label = owner, slug, f"v{version}"
    with kaggle_errors("", "asking the kernel's status", _no_kernel(ref)), _client() as kaggle:
        answer = kaggle.kernels.kernels_api_client.get_kernel_session_status(request)
    status = answer.status.name if hasattr(answer.status, "name") else str(answer.status)
    return KernelStatus(status, answer.failure_message or "")


def kernel_output(ref: str, version: int) -> tuple[list[OutputFile], str]:
    """The files a version left in /kaggle/working (every page), and its log as text."""
    from kagglesdk.kernels.types.kernels_api_service import ApiListKernelSessionOutputRequest

    owner, slug = ref.split("/", 1)
    files, log, token = [], "", ""
    with kaggle_errors("", "listing the kernel's output", _no_kernel(ref)), _client() as kaggle:
        while True:
            request = ApiListKernelSessionOutputRequest()
            request.user_name, request.kernel_slug = owner, slug
            request.version_label, request.page_size = f"v{version}", OUTPUT_PAGE
            if token:
                request.page_token = token
            answer = kaggle.kernels.kernels_api_client.list_kernel_session_output(request)
            files += [OutputFile(item.file_name, item.url) for item in answer.files or [] if item]
            log = log or answer.log or ""
            token = answer.next_page_token
            if not token:
                return files, log_text(log)


def download_output(file: OutputFile, folder: Path) -> Path:
    """One output file into `folder` at its relative path, whole or not at all."""
    relative = PurePosixPath(file.name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise UserError(f"the kernel's output names a file outside its folder: {file.name!r}")
    path = Path(folder, *relative.parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    with kaggle_errors("", f"downloading {file.name}"):
        answer = requests.get(file.url, stream=True, timeout=DOWNLOAD_TIMEOUT)
        answer.raise_for_status()
        with atomic_path(path) as tmp, open(tmp, "wb") as out:
            for chunk in answer.iter_content(1 << 20):
                out.write(chunk)
    return path


def log_text(log: str) -> str:
    """A kernel's log as the lines it printed: Kaggle sends it as JSON records
    ({"stream_name": ..., "time": ..., "data": ...}): a whole array (on one line or many), or
    one record a line; a log that is no JSON is the text itself."""
    try:
        records = json.loads(log)
    except ValueError:
        return "".join(_log_records(log))
    if not isinstance(records, list):
        records = [records]
    return "".join(_record_text(record) for record in records)


def _record_text(record) -> str:
    return str(record.get("data", "")) if isinstance(record, dict) else f"{record}\n"


def _log_records(log: str) -> Iterator[str]:
    for line in log.splitlines():
        record = line.strip().lstrip("[").rstrip("]").strip().strip(",")
        if not record:
            continue
        try:
            yield _record_text(json.loads(record))
        except ValueError:
            yield line + "\n"  # not a record: the text itself


def _no_kernel(ref: str) -> str:
    return f"no kernel {ref} on your Kaggle account"


def _client():
    return authenticated_api().build_kaggle_client()
