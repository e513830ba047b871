"""The private datasets of the stand-in Kaggle (StubKernels' half that kernels attach):
StartBlobUpload, CreateDataset, CreateDatasetVersion, GetDatasetStatus and GetDataset, with
kagglesdk's JSON shapes, and Kaggle's behaviour as reported in 2026: a new version is
"ready" before it is the dataset's current one (current_version_after), which is what a
kernel attaching the dataset gets; a dataset just made is unknown (404) for a moment
(unknown_after_create); uploaded zips are unpacked into a folder named after them."""

import io
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StubDataset:
    versions: list[Path] = field(default_factory=list)  # each version's files, unpacked
    made: list[float] = field(default_factory=list)  # when each version was made (monotonic)
    status_polls: int = 0


class StubDatasets:
    """The dataset calls; the fields they read (datasets, uploads, folder, polls_before_ready,
    current_version_after, unknown_after_create) are StubKernels'."""

    def _StartBlobUpload(self, request: dict) -> tuple[int, dict]:
        token = f"blob-{len(self.uploads)}-{request.get('name', '')}"
        self.uploads[token] = b""  # filled by the PUT to createUrl
        return 200, {"token": token, "createUrl": f"{self.url}/upload/{token}"}

    def _GetDatasetStatus(self, request: dict) -> tuple[int, dict]:
        dataset = self._known_dataset(request)
        if dataset is None:
            return 404, {"code": 404, "message": "Dataset not found"}
        dataset.status_polls += 1
        ready = dataset.status_polls > self.polls_before_ready
        return 200, {"status": "READY" if ready else "BLOBS_RECEIVED"}

    def _GetDataset(self, request: dict) -> tuple[int, dict]:
        ref = f"{request.get('ownerSlug')}/{request.get('datasetSlug')}"
        if self._known_dataset(request) is None:
            return 404, {"code": 404, "message": "Dataset not found"}
        return 200, {"ref": ref, "currentVersionNumber": self.current_version(ref)}

    def _known_dataset(self, request: dict) -> StubDataset | None:
        dataset = self.datasets.get(f"{request.get('ownerSlug')}/{request.get('datasetSlug')}")
        if dataset is None or time.monotonic() < dataset.made[0] + self.unknown_after_create:
            return None
        return dataset

    def current_version(self, ref: str) -> int:
        """The number of the version a kernel attaching the dataset gets: the newest one
        made current_version_after seconds ago or more (0: none yet)."""
        now = time.monotonic()
        made = self.datasets[ref].made
        return sum(1 for when in made if when + self.current_version_after <= now)

    def _CreateDataset(self, request: dict) -> tuple[int, dict]:
        ref = f"{request['ownerSlug']}/{request['slug']}"
        if ref in self.datasets:
            return 200, {"error": f'The requested slug "{request["slug"]}" is already in use'}
        self.datasets[ref] = StubDataset()
        return self._new_dataset_version(ref, request.get("files", []))

    def _CreateDatasetVersion(self, request: dict) -> tuple[int, dict]:
        ref = f"{request['ownerSlug']}/{request['datasetSlug']}"
        if ref not in self.datasets:
            return 404, {"code": 404, "message": "Dataset not found"}
        return self._new_dataset_version(ref, request.get("body", {}).get("files", []))

    def _new_dataset_version(self, ref: str, files: list[dict]) -> tuple[int, dict]:
        """The uploaded blobs as the version's files; a zip unpacked into a folder named
        after it, as Kaggle does."""
        dataset = self.datasets[ref]
        folder = self.folder / "datasets" / ref.replace("/", "--") / f"v{len(dataset.versions) + 1}"
        folder.mkdir(parents=True)
        for file in files:
            token = file.get("token", "")
            if token not in self.uploads:
                return 400, {"code": 400, "message": f"Unknown upload token {token}"}
            name = token.split("-", 2)[2]
            if name.endswith(".zip"):
                zipfile.ZipFile(io.BytesIO(self.uploads[token])).extractall(folder / name[:-4])
            else:
                (folder / name).write_bytes(self.uploads[token])
        dataset.versions.append(folder)
        dataset.made.append(time.monotonic())
        dataset.status_polls = 0
        url = f"https://www.kaggle.com/datasets/{ref}"
        return 200, {"ref": ref, "url": url, "status": "ok"}
