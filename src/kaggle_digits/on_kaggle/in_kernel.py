"""What runs inside a Kaggle kernel pushed by `cv --on kaggle` (remote_run.py writes the
script that carries this package and calls main): find the competition's files and the
pairs an earlier version finished by their content wherever Kaggle mounts them under
/kaggle/input, check the image's Keras, and run the `cv` asked for into /kaggle/working,
where each pair is saved as it finishes.

A failure ends the kernel cleanly (exit 0, kaggle-digits-outcome.json saying what went
wrong): Kaggle keeps a completed version's output, so the pairs that finished come home.

It uses the image's own TensorFlow and Keras; it installs nothing (the kernel has no
internet)."""

import json
import os
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import write_json
from kaggle_digits.data.competition import Competition, load_competition
from kaggle_digits.machine.backend import gpu_names, import_keras
from kaggle_digits.options.config import CVConfig, package_version
from kaggle_digits.store import run_files
from kaggle_digits.store.run_files import KERNEL_ENVIRONMENT, LOCK
from kaggle_digits.store.run_folder import finished_pair_names, finished_pairs

KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")
OUTCOME = "kaggle-digits-outcome.json"  # in /kaggle/working: how the kernel ended
MIN_KERAS = (3, 3)  # as pyproject.toml asks
ERROR_PREFIX = "kaggle-digits: error: "  # the line the local side looks for in the log


def main(request: dict, inputs: Path = KAGGLE_INPUT, working: Path = KAGGLE_WORKING) -> int:
    """Run the request's `cv` and say how it ended in working/OUTCOME: complete, failed
    (one line, after the traceback of a failure that is no UserError) or stopped (SIGTERM,
    Kaggle's stop). 0 however it ended, so that Kaggle keeps the output and its finished
    pairs; 130 only for a Ctrl-C by hand."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter
    signal.signal(signal.SIGTERM, _stopped)
    outcome = {"status": "complete", "run": request["run"]}
    try:
        run_in_kernel(request, inputs, working)
    except UserError as error:
        outcome |= {"status": "failed", "error": str(error)}
    except SessionStopped:
        outcome |= {"status": "stopped", "error": "Kaggle stopped the session (SIGTERM)"}
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a bug or the machine: its traceback in the log, then ours
        traceback.print_exc()
        outcome |= {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    if "error" in outcome:
        print(ERROR_PREFIX + outcome["error"], flush=True)
    outcome["finished_pairs"] = finished_pairs(working / request["run"])
    write_json(working / OUTCOME, outcome)
    return 0


class SessionStopped(KeyboardInterrupt):
    """Kaggle's SIGTERM: the session is being stopped (its time limit, a cancel); stopped as
    a Ctrl-C stops a run, worker processes and all."""


def _stopped(signum, frame) -> None:
    raise SessionStopped()


def run_in_kernel(request: dict, inputs: Path, working: Path) -> Path:
    """The request's run, trained into working/<run>; its folder."""
    from kaggle_digits.data.dataset import load_dataset
    from kaggle_digits.jobs.cv import run_cv

    log(f"kaggle-digits in a Kaggle kernel: run {request['run']}")
    keras_version = check_keras()
    competition = spec_of(request)
    data_root = find_competition_files(competition, inputs)
    log(f"the competition's files: {data_root / competition.slug}")
    dataset = load_dataset(competition, data_root)
    if dataset.fingerprint != request["request"]["data_fingerprint"]:
        raise UserError(
            f"the competition files on Kaggle ({data_root / competition.slug}) differ from "
            "the ones the run was started with; run `kaggle-digits download --force` and "
            "start it again"
        )
    run_dir = working / request["run"]
    take_earlier_pairs(request, inputs, run_dir)
    if not run_files.has_request(run_dir):
        run_files.write_request(run_dir, request["request"])
    save_environment(run_dir, keras_version)
    config = CVConfig.from_dict(request["request"])  # the execution options as asked
    run_cv(config, competition, data_root, working, resume=run_dir, log=log)
    return run_dir


def log(line: str) -> None:
    print(line, flush=True)  # the kernel's log is what it prints, read as it goes


def check_keras() -> str:
    """The image's Keras version, or one line saying it is too old."""
    try:
        import_keras()
        import keras
    except ImportError as error:
        raise UserError(f"Kaggle's image cannot import Keras ({error})") from None
    version = keras.__version__
    numbers = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if numbers < MIN_KERAS:
        needed = ".".join(map(str, MIN_KERAS))
        raise UserError(
            f"Kaggle's image has Keras {version}; kaggle-digits needs {needed} or newer"
        )
    return version


def spec_of(request: dict) -> Competition:
    """The competition spec the run was started with, carried in the request."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.toml"
        path.write_text(request["spec"])
        return load_competition(path)


def find_competition_files(competition: Competition, inputs: Path) -> Path:
    """The folder under which <slug>/ holds the competition's files, found by the files at
    any depth of `inputs`: Kaggle mounts a competition at competitions/<slug>/ (2026), at
    <slug>/ (older kernels), and a copy may come as a dataset (datasets/<owner>/<slug>/).
    A folder named after the competition wins; one named otherwise is reached through a link
    named so."""
    found = [
        folder
        for folder in folders_under(inputs)
        if all((folder / name).is_file() for name in competition.data_files)
    ]
    if not found:
        raise UserError(
            f"the competition's files ({', '.join(competition.data_files)}) are nowhere under "
            f"{inputs}: was the competition attached to the kernel?"
        )
    named = [folder for folder in found if folder.name == competition.slug]
    if named:
        return named[0].parent
    root = Path(tempfile.mkdtemp(prefix="kaggle-digits-data-"))
    (root / competition.slug).symlink_to(found[0], target_is_directory=True)
    return root


def folders_under(root: Path) -> Iterator[Path]:
    """Every folder under `root`, at any depth, shallower first, in name order."""
    level = [root]
    while level:
        below = []
        for folder in level:
            yield folder
            try:
                below += sorted(path for path in folder.iterdir() if _is_folder(path))
            except OSError:
                continue  # a folder this kernel may not read
        level = below


def _is_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()  # no link followed: no loop


def take_earlier_pairs(request: dict, inputs: Path, run_dir: Path) -> None:
    """Copy the run folder the earlier versions left (the finished pairs, carried as a
    private dataset), found under `inputs` by its content (its request.json, the run asked
    for), into working/, so that the resumed run trains only the pairs it lacks. Missing
    when asked for, or holding fewer pairs than promised (an older version of the dataset
    attached), is one line: training those pairs again would spend the GPU time the resume
    is meant to save."""
    earlier = request.get("earlier")
    if not earlier or run_dir.exists():
        return
    found = [
        folder
        for folder in folders_under(inputs)
        if run_files.holds_request(folder, request["request"])
    ]
    if not found:
        raise UserError(
            f"the {earlier['pairs']} finished pair(s) of run {request['run']} (dataset "
            f"{earlier['dataset']}) are nowhere under {inputs}: was the dataset attached?"
        )
    fullest = max(found, key=finished_pairs)
    promised = set(earlier.get("pair_names", ()))
    missing = sorted(promised - set(finished_pair_names(fullest)))
    if missing or finished_pairs(fullest) < earlier["pairs"]:
        which = f" (missing {', '.join(missing)})" if missing else ""
        raise UserError(
            f"the dataset {earlier['dataset']} as attached holds {finished_pairs(fullest)} of "
            f"the {earlier['pairs']} finished pair(s) promised{which}: Kaggle attached an "
            f"older version of it; `kaggle-digits cv --resume {request['run']}` in a few "
            "minutes pushes a version that gets the newest"
        )
    shutil.copytree(fullest, run_dir, ignore=shutil.ignore_patterns(LOCK, KERNEL_ENVIRONMENT))
    log(f"took {finished_pairs(run_dir)} finished pair(s) from {fullest}")


def save_environment(run_dir: Path, keras_version: str) -> None:
    environment = {
        "gpus": gpu_names(),
        "keras": keras_version,
        "tensorflow": package_version("tensorflow"),
        "python": sys.version.split()[0],
        "docker_image": os.environ.get("KAGGLE_DOCKER_IMAGE"),
    }
    log("GPUs: " + (", ".join(environment["gpus"]) or "none"))
    run_files.write_kernel_environment(run_dir, environment)


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
