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
import shutil
import tempfile
import time
from pathlib import Path

from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import write_json
from kaggle_digits.engine.run_folder import LOCK
from kaggle_digits.kaggle.api import authenticated_api, kaggle_errors
from kaggle_digits.kaggle.kernel_log import Log

SLUG_LENGTH = 50  # Kaggle's limit for a dataset's slug and title
READY_SECONDS = 900  # Kaggle unpacking a new version, before the push is given up
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
    with tempfile.TemporaryDirectory() as folder:
        stage = Path(folder)
        ignore = shutil.ignore_patterns(LOCK, ".*", *leave_out)
        shutil.copytree(run_dir, stage / run_dir.name, ignore=ignore)
        metadata = {"id": ref, "title": slug, "licenses": [{"name": LICENSE}]}
        write_json(stage / "dataset-metadata.json", metadata)
        version = _upload(stage, ref, new=record.get("pairs_dataset") is None)
    record["pairs_dataset"] = ref
    log(f"uploaded the finished pairs as the private dataset {ref} ({version})")
    wait_until_ready(ref, poll_seconds)
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


def wait_until_ready(ref: str, poll_seconds: float) -> None:
    """Kaggle unpacks a new version before a kernel can attach it: wait for its status."""
    deadline = time.monotonic() + READY_SECONDS
    while True:
        with kaggle_errors("", "asking the dataset's status", f"no dataset {ref}"):
            status = authenticated_api().dataset_status(ref)
        if status == "ready":
            return
        if status in ("failed", "deleted"):
            raise UserError(f"Kaggle could not process the dataset {ref} ({status})")
        if time.monotonic() > deadline:
            raise UserError(
                f"the dataset {ref} of finished pairs is not ready after {READY_SECONDS // 60} "
                f"minutes ({status}); run the command again later"
            )
        time.sleep(poll_seconds)
