"""Every call to Kaggle's kernels service: push a script kernel, ask its status and latest
version, list and fetch its output, follow its live log, and the GPU quota. Requests and
answers are kagglesdk's own types (the calls `kaggle kernels push|status|output|logs` make),
sent through the client of api.py, whose failures become one-line UserErrors. The machine
shapes a push may ask for are checked here first.

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
from kaggle_digits.kaggle_api.client import authenticated_api, kaggle_errors

DEFAULT_ACCELERATOR = "NvidiaTeslaT4"  # Kaggle's free GPU machine: two T4s
# the machine shapes kaggle-api documents for `kernels push` (Feb 2026)
GPU_SHAPES = (
    "NvidiaTeslaT4",
    "NvidiaTeslaT4Highmem",
    "NvidiaL4",
    "NvidiaL4X1",
    "NvidiaTeslaP100",
    "NvidiaTeslaA100",
    "NvidiaH100",
    "NvidiaRtxPro6000",
)
TPU_SHAPES = ("TpuV5E8", "TpuV6E8", "TpuV38", "Tpu1VmV38", "TpuV232", "TpuV2256")
RETIRED_SHAPES = {  # what Kaggle does with them instead (kaggle-cli 2.2.x warns so too)
    "NvidiaTeslaP100": "Kaggle retired it and runs such sessions on NvidiaTeslaT4 (its "
    "image's PyTorch dropped the P100's sm_60)",
}
CPU_SHAPES = ("none", "cpu")
# GetKernelSessionStatus's answers, as said in a line; the last three: stopped for good
STATUS_WORDS = {
    "NEW_SCRIPT": "saved, not started",
    "QUEUED": "queued",
    "RUNNING": "running",
    "CANCEL_REQUESTED": "being cancelled",
    "COMPLETE": "complete",
    "ERROR": "failed",
    "CANCEL_ACKNOWLEDGED": "cancelled",
}
FINISHED = ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")
# minutes in QUEUED before saying what to do: a kernel pushed through the API can sit there
# for hours with no word from Kaggle (users' reports, 2026; docs/kaggle-notebooks.md)
QUEUED_MINUTES = 30.0
GPU_SESSIONS_FULL = "Maximum batch GPU session count"  # Kaggle's words: 2 at once
OUTPUT_PAGE = 100  # files a ListKernelSessionOutput call
ORIGINAL_IMAGE = "original"  # a new version on its kernel's first image, not the latest
DOWNLOAD_TIMEOUT = 300  # seconds without a byte before a download is given up


@dataclass(frozen=True)
class PushedKernel:
    ref: str  # owner/slug
    version: int
    url: str


@dataclass(frozen=True)
class KernelStatus:
    status: str  # a key of STATUS_WORDS (or a status newer than this code)
    failure: str  # Kaggle's failureMessage, where it gave one

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def word(self) -> str:
        return STATUS_WORDS.get(self.status, self.status.lower())


@dataclass(frozen=True)
class OutputFile:
    name: str  # relative to /kaggle/working, with forward slashes
    url: str


@dataclass(frozen=True)
class GpuQuota:
    used_hours: float
    allowed_hours: float
    refreshes: datetime | None
    reserved_hours: float = 0.0  # held by sessions running now: as good as used

    @property
    def left_hours(self) -> float:
        return max(0.0, self.allowed_hours - self.used_hours - self.reserved_hours)

    def describe(self) -> str:
        when = f"; it refreshes {self.refreshes:%Y-%m-%d %H:%M} UTC" if self.refreshes else ""
        held = f", {self.reserved_hours:.1f} h held by running sessions" * bool(self.reserved_hours)
        return (
            f"{self.left_hours:.1f} h of {self.allowed_hours:.0f} h left this week "
            f"({self.used_hours:.1f} h used{held}){when}"
        )


def machine_shape(given: str) -> str | None:
    """The machine shape `--accelerator` names, spelt as Kaggle spells it; None for the CPU
    (`none`). Unknown shapes and TPUs are one line, before anything reaches Kaggle."""
    if given.strip().lower() in CPU_SHAPES:
        return None
    by_name = {shape.lower(): shape for shape in GPU_SHAPES + TPU_SHAPES}
    shape = by_name.get(given.strip().lower())
    if shape is None:
        raise UserError(
            f"--accelerator {given!r} is not one of Kaggle's machine shapes: "
            f"{', '.join(GPU_SHAPES)}, or none (the CPU)"
        )
    if shape in TPU_SHAPES:
        raise UserError(
            f"--accelerator {shape} is a TPU machine: kaggle-digits trains on Kaggle's GPUs "
            f"({', '.join(GPU_SHAPES)}) or its CPU (none)"
        )
    return shape


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
    with kaggle_errors("", "reading your GPU quota"), _client() as kaggle:
        from kagglesdk.kernels.types.kernels_api_service import (
            ApiGetAcceleratorQuotaStatisticsRequest,
        )

        answer = kaggle.kernels.kernels_api_client.get_accelerator_quota_statistics(
            ApiGetAcceleratorQuotaStatisticsRequest()
        )
        quota = answer.gpu_quota

        def hours(field: str) -> float:
            value = getattr(quota, field, None) if quota else None
            return value.total_seconds() / 3600 if value else 0.0

        return GpuQuota(
            hours("time_used"),
            hours("total_time_allowed"),
            answer.quota_refresh_time,
            hours("time_reserved"),
        )


def push_kernel(
    ref: str,
    script: str,
    competition: str,
    accelerator: str | None,
    dataset_sources: tuple[str, ...] = (),
    first: bool = True,
) -> PushedKernel:
    """Save and run a new version of the private Python script kernel `ref` (SaveKernel, as
    `kaggle kernels push`), the competition's data (and `dataset_sources`) attached, internet
    off, on `accelerator` (a machine shape; None: no GPU); a version after the `first` on
    the first version's Kaggle image, so that a run's pairs train under one TensorFlow."""
    try:
        with kaggle_errors(competition, "pushing the kernel"), _client() as kaggle:
            request = save_kernel_request(
                ref, script, competition, accelerator, dataset_sources, first
            )
            answer = kaggle.kernels.kernels_api_client.save_kernel(request)
    except UserError as error:
        raise UserError(_with_advice(str(error))) from None
    if answer.error:
        raise UserError(_with_advice(f"Kaggle refused the kernel {ref}: {answer.error}"))
    url = answer.url or f"https://www.kaggle.com/code/{ref}"
    invalid = _invalid_sources(answer)
    if invalid:  # Kaggle saves and starts the version all the same, without them
        raise UserError(
            f"Kaggle refused the kernel's sources ({invalid}) and started version "
            f"{answer.version_number or '?'} of {ref} without them, which stops at once on "
            f"finding them missing ({url})"
        )
    return PushedKernel(ref, int(answer.version_number or 1), url)


def save_kernel_request(
    ref: str,
    script: str,
    competition: str,
    accelerator: str | None,
    dataset_sources: tuple[str, ...],
    first: bool,
):
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
    request.dataset_data_sources = list(dataset_sources)
    if accelerator is not None:
        request.machine_shape = accelerator
    if not first:  # kernel-metadata.json's docker_image_pinning_type, as `kernels push` sends it
        request.docker_image_pinning_type = ORIGINAL_IMAGE
    return request


def _invalid_sources(answer) -> str:
    """The sources SaveKernel's answer names invalid ('' if none): the `kaggle` CLI prints
    them and still exits 0."""
    invalid = {
        "competition": answer.invalid_competition_sources,
        "kernel": answer.invalid_kernel_sources,
        "dataset": answer.invalid_dataset_sources,
    }
    named = [f"invalid {kind} source {', '.join(got)}" for kind, got in invalid.items() if got]
    return "; ".join(named)


def _with_advice(refusal: str) -> str:
    if GPU_SESSIONS_FULL.lower() not in refusal.lower():
        return refusal
    return (
        f"{refusal.rstrip('.')}: Kaggle runs at most 2 GPU kernels of an account at once; "
        "wait for one to end (https://www.kaggle.com/code/?tab=your-work) and run the command "
        "again"
    )


def kernel_status(ref: str, version: int) -> KernelStatus:
    owner, slug = ref.split("/", 1)
    with kaggle_errors("", "asking the kernel's status", _no_kernel(ref)), _client() as kaggle:
        from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelSessionStatusRequest

        request = ApiGetKernelSessionStatusRequest()
        request.user_name, request.kernel_slug, request.version_label = owner, slug, f"v{version}"
        answer = kaggle.kernels.kernels_api_client.get_kernel_session_status(request)
    status = answer.status.name if hasattr(answer.status, "name") else str(answer.status)
    return KernelStatus(status, answer.failure_message or "")


def latest_version(ref: str) -> int | None:
    """The number of the kernel's newest version (GetKernel, as `kaggle kernels pull -m`);
    None where Kaggle shows no such kernel: one pushed by hand, not yet pushed (Kaggle
    answers a slug it does not know with 404, and often with 403, "Permission 'kernels.get'
    was denied")."""
    owner, slug = ref.split("/", 1)
    with kaggle_errors("", "asking for the kernel"), _client() as kaggle:
        from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelRequest

        request = ApiGetKernelRequest()
        request.user_name, request.kernel_slug = owner, slug
        try:
            answer = kaggle.kernels.kernels_api_client.get_kernel(request)
        except requests.exceptions.HTTPError as error:
            if error.response is not None and error.response.status_code in (403, 404):
                return None
            raise
    number = answer.metadata.current_version_number if answer.metadata else None
    return int(number) if number else None


def kernel_output(ref: str, version: int) -> tuple[list[OutputFile], str]:
    """The files a version left in /kaggle/working (every page), and its log as text."""
    owner, slug = ref.split("/", 1)
    files, log, token = [], "", ""
    with kaggle_errors("", "listing the kernel's output", _no_kernel(ref)), _client() as kaggle:
        from kagglesdk.kernels.types.kernels_api_service import ApiListKernelSessionOutputRequest

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


def log_stream(ref: str, version: int) -> Iterator[str] | None:
    """The version's log as Kaggle streams it while it runs (server-sent events until
    END_OF_LOG, the call of `kaggle kernels logs -f`, kaggle-cli 2.2.3 and later): each
    record's text as it comes; None where the installed client cannot stream. Iterating
    raises UserError (KaggleUnreachable included) where the stream fails."""
    with kaggle_errors("", "reading the kernel's log"):
        api = authenticated_api()
    stream = getattr(api, "kernels_logs_stream", None)
    if stream is None:
        return None
    return _stream_text(stream(f"{ref}/{version}"), ref)


def _stream_text(events: Iterator[dict], ref: str) -> Iterator[str]:
    try:
        with kaggle_errors("", "reading the kernel's log", _no_kernel(ref)):
            for event in events:
                text = event.get("data") if isinstance(event, dict) else None
                if text is not None:
                    yield str(text)
    except (ValueError, requests.exceptions.RequestException) as error:
        raise UserError(f"reading the kernel's log failed: {error}") from None


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
