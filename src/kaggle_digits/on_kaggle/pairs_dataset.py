"""The finished pairs of a run trained on Kaggle, carried to its next kernel version as a
private dataset of the user's (what `kaggle datasets create|version --dir-mode zip` do:
StartBlobUpload, the upload, CreateDataset or CreateDatasetVersion).

Why a dataset: Kaggle refuses a kernel as its own source, and a failed or cancelled version
as anyone's (users' reports, 2026; docs/kaggle-notebooks.md), so a resumed version cannot
read its predecessor's output; a dataset is a documented source that any version may
attach. The run folder goes up as it is here (request, settled options, folds, the finished
pairs), zipped; Kaggle unpacks it, and the kernel finds it by its content."""

import contextlib
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

import requests

from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import write_json
from kaggle_digits.kaggle_api.client import authenticated_api, kaggle_errors
from kaggle_digits.kaggle_api.kernel_log import Log
from kaggle_digits.store.run_files import LOCK

SLUG_LENGTH = 50  # Kaggle's limit for a dataset's slug and title
READY_SECONDS = 900  # Kaggle unpacking a new version, before the push is given up
# a dataset just made can be unknown to the status calls for a moment (404)
UNKNOWN_SECONDS = 120
LICENSE = "CC0-1.0"


def dataset_slug(run_name: str) -> str:
    return f"kaggle-digits-{run_name}".lower()[: SLUG_LENGTH - len("-pairs")] + "-pairs"


def upload_pairs(
    run_dir: Path, record: dict, leave_out: tuple[str, ...], log: Log, poll_seconds: float
) -> str:
    """Upload the run folder (less `leave_out`) as a new version of the run's private
    dataset, made on first use and named in record["pairs_dataset"]; wait until Kaggle has
    it ready. The dataset's owner/slug."""
    owner = record["ref"].split("/", 1)[0]
    slug = dataset_slug(run_dir.name)
    ref = f"{owner}/{slug}"
    new = record.get("pairs_dataset") is None
    before = (dataset_state(ref) or ("unknown", 0))[1]  # 0: no dataset yet
    with tempfile.TemporaryDirectory() as folder:
        stage = Path(folder)
        ignore = shutil.ignore_patterns(LOCK, ".*", *leave_out)
        shutil.copytree(run_dir, stage / run_dir.name, ignore=ignore)
        metadata = {"id": ref, "title": slug, "licenses": [{"name": LICENSE}]}
        write_json(stage / "dataset-metadata.json", metadata)
        made = _upload(stage, ref, new=new)
    record["pairs_dataset"] = ref
    log(f"uploaded the finished pairs as the private dataset {ref} ({made})")
    wait_until_current(ref, before + 1, poll_seconds, log)
    return ref


def _upload(stage: Path, ref: str, new: bool) -> str:
    """Create the dataset, or a new version of it where it exists; what Kaggle made."""
    action = "uploading the finished pairs"
    with kaggle_errors("", action), contextlib.redirect_stdout(io.StringIO()):
        api = authenticated_api()
        try:
            answer, made = None, "new"
            if new:
                answer = api.dataset_create_new(str(stage), quiet=True, dir_mode="zip")
            if answer is None or "already in use" in (answer.error or ""):
                notes = "the finished pairs, for the next kernel version"
                answer = api.dataset_create_version(str(stage), notes, quiet=True, dir_mode="zip")
                made = "a new version"
        except ValueError as error:  # the client's own checks, or a file it could not upload
            raise UserError(f"{action} failed: {error}") from None
    if answer.error:
        raise UserError(f"{action} failed: Kaggle answered: {answer.error}")
    return made


def dataset_state(ref: str) -> tuple[str, int] | None:
    """The dataset's status (ready, pending, ...) and its current version's number, the one
    a kernel attaching it gets (GetDatasetStatus and GetDataset, as `kaggle datasets status
    --format json`); None where Kaggle shows no such dataset (404, or 403 as for a kernel)."""
    with kaggle_errors("", "asking the dataset's status", f"no dataset {ref}"):
        try:
            answer = json.loads(authenticated_api().dataset_status(ref, format="json"))
        except requests.exceptions.HTTPError as error:
            if error.response is not None and error.response.status_code in (403, 404):
                return None
            raise
    return str(answer["status"]), int(answer.get("current_version_number") or 0)


def wait_until_current(ref: str, version: int, poll_seconds: float, log: Log) -> None:
    """Wait until the dataset's version `version` is both ready and current: GetDatasetStatus
    names no version, so right after CreateDatasetVersion it may still describe the one
    before, and a kernel attaching the dataset gets the current version, not the newest. A
    dataset just made may be unknown for a moment (UNKNOWN_SECONDS)."""
    started = time.monotonic()
    said = False
    while True:
        state = dataset_state(ref)
        if state is None and time.monotonic() > started + UNKNOWN_SECONDS:
            raise UserError(
                f"Kaggle shows no dataset {ref} {UNKNOWN_SECONDS} s after it was uploaded; run "
                "the command again later"
            )
        status, current = state or ("unknown", 0)
        if status == "ready" and current >= version:
            return
        if status in ("failed", "deleted"):
            raise UserError(f"Kaggle could not process the dataset {ref} ({status})")
        if time.monotonic() > started + READY_SECONDS:
            raise UserError(
                f"the dataset {ref} of finished pairs is not ready after {READY_SECONDS // 60} "
                f"minutes (status {status}, version {current} current, {version} made); run "
                "the command again later"
            )
        if status == "ready" and not said:
            log(f"waiting for version {version} of {ref} to become its current one (now {current})")
            said = True
        time.sleep(poll_seconds)
