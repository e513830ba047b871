"""`make priors`: do a competition's own priors beat the digits' on images that are not
digits? Never part of CI.

`build` writes a clothing competition from Fashion-MNIST (Debian's dataset-fashion-mnist) in
Kannada-MNIST's format, as competition/fashion-mnist.toml describes it: data/fashion-mnist/
{train,test,sample_submission}.csv, and the test labels Kaggle would keep hidden in
data/fashion-mnist-labels.csv. `run` trains one `cv` on it as a user would, with the spec's
priors or with the Digit Recognizer's (`--priors digits`), writes the submission `submit
--dry-run` writes, after the same checks, and scores it on the hidden labels.

`kannada` writes a Kannada-format competition of generated handwriting-like digits (the
tests' own, tests/synthetic.py: drawn in fonts with a random slant) and its spec, for deskew
on and off: no real Kannada data is at hand.

    python benchmarks/priors.py build
    python benchmarks/priors.py run --preset quick --priors spec
    python benchmarks/priors.py run --preset quick --priors digits
    python benchmarks/priors.py kannada
    python benchmarks/priors.py run --competition runs/priors/kannada-like.toml --no-deskew
"""

import argparse
import dataclasses
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import TreeMemory  # sets TF_CPP_MIN_LOG_LEVEL first

from kaggle_digits.data.competition import load_competition

FASHION = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format: a magic number, the sizes, then uint8 values)."""
    raw = gzip.decompress(path.read_bytes())
    dimensions = raw[3]
    shape = np.frombuffer(raw, dtype=">u4", count=dimensions, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dimensions).reshape(shape)


def build(source: Path, data_dir: Path, spec: str) -> Path:
    """The competition's three CSVs under data_dir/<slug>/, the hidden test labels beside."""
    competition = load_competition(spec)
    folder = data_dir / competition.slug
    folder.mkdir(parents=True, exist_ok=True)
    for part, file, rows in (
        ("train", competition.train_file, competition.train_rows),
        ("t10k", competition.test_file, competition.test_rows),
    ):
        images = read_idx(source / f"{part}-images-idx3-ubyte.gz").reshape(rows, -1)
        labels = read_idx(source / f"{part}-labels-idx1-ubyte.gz")
        frame = pd.DataFrame(images, columns=competition.pixel_columns)
        if part == "train":
            frame.insert(0, competition.label_column, labels)
        else:
            ids = np.arange(competition.id_start, competition.id_start + rows)
            frame.insert(0, competition.test_id_column, ids)
            hidden = {competition.id_column: ids, competition.submission_label_column: labels}
            pd.DataFrame(hidden).to_csv(labels_path(data_dir, competition.slug), index=False)
            sample = {competition.id_column: ids, competition.submission_label_column: 0}
            pd.DataFrame(sample).to_csv(folder / competition.sample_submission_file, index=False)
        frame.to_csv(folder / file, index=False)
    return folder


def build_kannada(data_dir: Path, spec_dir: Path, train_rows: int, test_rows: int) -> Path:
    """A Kannada-format competition of the tests' generated digits; its spec's path."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from synthetic import kannada_frames, kannada_spec

    train, test, sample, test_labels = kannada_frames(train_rows, test_rows, seed=7)
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = kannada_spec(spec_dir, "kannada-like", train_rows, test_rows)
    folder = data_dir / "kannada-like"
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    sample.to_csv(folder / "sample_submission.csv", index=False)
    hidden = {"id": sample["id"], "label": test_labels}
    pd.DataFrame(hidden).to_csv(labels_path(data_dir, "kannada-like"), index=False)
    return spec


def labels_path(data_dir: Path, slug: str) -> Path:
    return data_dir / f"{slug}-labels.csv"


def run(args: argparse.Namespace) -> dict:
    """One cv run with the chosen priors; its submission scored on the hidden labels."""
    from kaggle_digits.jobs.cv import run_cv
    from kaggle_digits.jobs.submit import validate_submission, write_submission
    from kaggle_digits.options.presets import preset_config

    competition = load_competition(args.competition)
    if args.priors == "digits":
        competition = dataclasses.replace(competition, priors=load_competition().priors)
    options = {
        "workers": args.workers,
        "budget_minutes": args.budget,
        "epochs": args.epochs,
        "deskew": args.deskew,
        "seed": args.seed,
        "batch_size": args.batch_size,
    }
    config = preset_config(args.preset, competition.priors, **options)
    started = time.perf_counter()
    with TreeMemory() as memory:
        result = run_cv(config, competition, args.data_dir, args.runs_dir)
    wall = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as scratch:
        submission = write_submission(result.run_dir, competition, Path(scratch))
        validate_submission(submission, competition, args.data_dir)
        predicted = pd.read_csv(submission)[competition.submission_label_column].to_numpy()
    hidden = pd.read_csv(labels_path(args.data_dir, competition.slug))
    saved = json.loads((result.run_dir / "config.json").read_text())
    return {
        "competition": competition.slug,
        "preset": args.preset,
        "priors": args.priors,
        "deskew": saved["deskew"],
        "rotation": saved["rotation_degrees"],
        "flips": saved["flip_horizontal"],
        "views": f"{saved['tta']} {saved['tta_views']}",
        "members": ",".join(saved["members"]),
        "epochs": saved["epochs"],
        "folds": saved["folds"],
        "minutes": round(wall / 60, 2),
        "oof_accuracy": result.metrics["oof_accuracy"],
        "oof_log_loss": round(result.metrics["oof_log_loss"], 5),
        "test_accuracy": float(np.mean(predicted == hidden[competition.submission_label_column])),
        "peak_gib": round(memory.peak_gib, 2),
        "run": str(result.run_dir),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("build", "kannada", "run"))
    parser.add_argument("--competition", default="fashion-mnist", help="a spec's name or path")
    parser.add_argument("--source", type=Path, default=FASHION, help="Fashion-MNIST's idx files")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/priors"))
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--priors", choices=("spec", "digits"), default="spec")
    parser.add_argument("--deskew", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--budget", type=float, default=None, help="minutes, as cv --budget")
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="append the scores here")
    parser.add_argument("--rows", type=int, nargs=2, default=(12000, 2000), help="kannada's")
    args = parser.parse_args()
    if args.step == "kannada":
        print(f"wrote {build_kannada(args.data_dir, args.runs_dir, *args.rows)}")
        return
    if args.step == "build":
        print(f"built {build(args.source, args.data_dir, args.competition)}")
        return
    score = run(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        with args.json.open("a") as lines:
            lines.write(json.dumps(score) + "\n")
    print(
        f"priors {score['priors']:6}  preset {score['preset']}  {score['members']} x "
        f"{score['epochs']} epochs, {score['folds']} folds  views {score['views']}  wall "
        f"{score['minutes']:.1f} min\n  OOF accuracy {score['oof_accuracy']:.5f} (log loss "
        f"{score['oof_log_loss']:.5f})  held-out "
        f"test accuracy {score['test_accuracy']:.5f}  run {score['run']}"
    )


if __name__ == "__main__":
    main()
