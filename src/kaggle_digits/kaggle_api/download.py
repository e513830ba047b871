"""`kaggle-digits download`: fetch the competition zip and unpack it safely and atomically."""

import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import DiskFull, is_disk_full
from kaggle_digits.data.competition import Competition
from kaggle_digits.kaggle_api import client as kaggle_api


@dataclass(frozen=True)
class DownloadResult:
    folder: Path
    downloaded: bool  # False when the data was already there


def competition_folder(competition: Competition, data_root: Path) -> Path:
    return Path(data_root) / competition.slug


def has_data(competition: Competition, data_root: Path) -> bool:
    folder = competition_folder(competition, data_root)
    return all((folder / name).is_file() for name in competition.data_files)


def download_competition(
    competition: Competition, data_root: Path, force: bool = False
) -> DownloadResult:
    """Download and unpack the competition's files into data_root/<slug>/.

    The files appear all at once or not at all: the zip is fetched and unpacked in a
    temporary folder beside the target, checked, and only then renamed into place.
    """
    folder = competition_folder(competition, data_root)
    if has_data(competition, data_root) and not force:
        return DownloadResult(folder, downloaded=False)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{competition.slug}-") as tmp:
            zip_path = kaggle_api.download_competition_zip(competition.slug, Path(tmp) / "zip")
            unpacked = Path(tmp) / "unpacked"
            extract_zip(zip_path, unpacked, competition.data_files)
            replace_folder(unpacked, folder, trash=Path(tmp) / "previous")
    except OSError as error:
        if not is_disk_full(error, folder.parent):
            raise
        kept = "; the data already there is kept" if has_data(competition, data_root) else ""
        raise DiskFull(
            f"no space left on device while downloading into {folder.parent}{kept}"
        ) from None
    return DownloadResult(folder, downloaded=True)


def extract_zip(zip_path: Path, destination: Path, expected_files: tuple[str, ...]) -> None:
    """Unpack a zip after checking that it is whole, safe and holds the expected files."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
            for name in names:
                _check_entry_is_inside(name, destination, zip_path)
            missing = [name for name in expected_files if name not in names]
            if missing:
                raise UserError(f"{zip_path.name}: the zip lacks {', '.join(missing)}")
            damaged = archive.testzip()
            if damaged is not None:
                raise UserError(f"{zip_path.name}: the zip is corrupt (bad CRC in {damaged})")
            archive.extractall(destination)
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise UserError(f"{zip_path.name}: the zip is corrupt or truncated ({error})") from None


def _check_entry_is_inside(name: str, destination: Path, zip_path: Path) -> None:
    root = destination.resolve()
    target = (root / name).resolve()
    if Path(name).is_absolute() or not target.is_relative_to(root):
        raise UserError(f"{zip_path.name}: refusing the entry '{name}', which escapes the folder")


def replace_folder(new: Path, target: Path, trash: Path) -> None:
    """Move `new` to `target`; an existing `target` is moved to `trash` first."""
    if target.exists():
        target.rename(trash)
    new.rename(target)
    shutil.rmtree(trash, ignore_errors=True)
