"""What runs inside a Kaggle kernel pushed by `cv --on kaggle` (remote_run.py writes the
script that carries this package and calls main): find the competition's files where Kaggle
mounts them, check the image's Keras, take up the pairs an earlier version finished, and run
the `cv` asked for into /kaggle/working, where each pair is saved as it finishes, so that a
kernel stopped halfway still leaves its finished pairs in its output.

It uses the image's own TensorFlow and Keras; it installs nothing (the kernel has no
internet)."""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from kaggle_digits.base.errors import UserError
from kaggle_digits.base.files import write_json
from kaggle_digits.data.competition import Competition, load_competition
from kaggle_digits.engine.run_folder import LOCK, REQUEST
from kaggle_digits.machine.backend import gpu_names, import_keras
from kaggle_digits.options.config import CVConfig, package_version

KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")
ENVIRONMENT = "kernel_environment.json"  # what the kernel saw: GPUs, versions
MIN_KERAS = (3, 3)  # as pyproject.toml asks
ERROR_PREFIX = "kaggle-digits: error: "  # the line the local side looks for in the log


def main(request: dict) -> int:
    """Run the request's `cv`; 0 when the run is complete, 2 with one line for a failure
    the user can mend, 130 when stopped."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter
    try:
        run_in_kernel(request, KAGGLE_INPUT, KAGGLE_WORKING)
    except UserError as error:
        print(ERROR_PREFIX + str(error), flush=True)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


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
    if not (run_dir / REQUEST).exists():
        write_json(run_dir / REQUEST, request["request"])
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
    """The folder under which <slug>/ holds the competition's files: Kaggle mounts a
    competition at /kaggle/input/competitions/<slug>/ (kernels pushed through the API),
    or at /kaggle/input/<slug>/ (older kernels)."""
    for root in (inputs / "competitions", inputs):
        if all((root / competition.slug / name).is_file() for name in competition.data_files):
            return root
    raise UserError(
        f"the competition's files ({', '.join(competition.data_files)}) are not under "
        f"{inputs}/competitions/{competition.slug}/ nor {inputs}/{competition.slug}/: was the "
        "competition attached to the kernel?"
    )


def take_earlier_pairs(request: dict, inputs: Path, run_dir: Path) -> None:
    """Copy the run folder an earlier version left (attached as a kernel source, read-only)
    into working/, so that the resumed run trains only the pairs it lacks."""
    source = request.get("earlier")
    if not source or run_dir.exists():
        return
    found = [
        folder
        for pattern in ("*", "*/*", "*/*/*")
        for folder in inputs.glob(f"{pattern}/{request['run']}")
        if (folder / REQUEST).is_file()
    ]
    if not found:
        log(f"no earlier output of {source} found under {inputs}: training every pair")
        return
    shutil.copytree(found[0], run_dir, ignore=shutil.ignore_patterns(LOCK, ENVIRONMENT))
    finished = len(list(run_dir.glob("fold*/member*/result.json")))
    log(f"took {finished} finished pair(s) from {found[0]}")


def save_environment(run_dir: Path, keras_version: str) -> None:
    environment = {
        "gpus": gpu_names(),
        "keras": keras_version,
        "tensorflow": package_version("tensorflow"),
        "python": sys.version.split()[0],
        "docker_image": os.environ.get("KAGGLE_DOCKER_IMAGE"),
    }
    log("GPUs: " + (", ".join(environment["gpus"]) or "none"))
    write_json(run_dir / ENVIRONMENT, environment)


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
