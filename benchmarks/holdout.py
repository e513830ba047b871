"""`make holdout`: does the CV score predict the leaderboard? Never part of CI.

Kaggle scores test.csv on labels nobody sees, so this plays Kaggle with labels we do have:
a stratified share of train.csv becomes a stand-in test.csv (labels withheld), `cv` runs on
the rest exactly as a user would run it, and the run's test predictions, the same ones
`submit` uploads, are scored on the withheld labels. Prints the OOF accuracy beside that
"leaderboard" accuracy and the gap between them.
"""

import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import (  # sets TF_CPP_MIN_LOG_LEVEL first
    PRESET_FIELDS,
    TreeMemory,
    check_data,
    cv_arguments,
    preset_options,
)
from sklearn.model_selection import train_test_split

from kaggle_digits.data.competition import Competition, load_competition
from kaggle_digits.kaggle_api.download import extract_zip


def split_competition(
    competition: Competition, source: Path, destination_root: Path, test_share: float, seed: int
) -> tuple[Competition, np.ndarray]:
    """Write a Kaggle-shaped competition whose test rows are held-out labelled training rows;
    return its spec and the withheld test labels."""
    train = pd.read_csv(source / competition.train_file)
    kept, held_out = train_test_split(
        train, test_size=test_share, stratify=train[competition.label_column], random_state=seed
    )
    holdout = dataclasses.replace(
        competition,
        slug=f"{competition.slug}-holdout",
        train_rows=len(kept),
        test_rows=len(held_out),
    )
    folder = destination_root / holdout.slug
    folder.mkdir(parents=True)
    kept.to_csv(folder / holdout.train_file, index=False)
    held_out[holdout.pixel_columns].to_csv(folder / holdout.test_file, index=False)
    ids = np.arange(holdout.id_start, holdout.id_start + len(held_out))
    sample = {holdout.id_column: ids, holdout.submission_label_column: holdout.classes[0]}
    pd.DataFrame(sample).to_csv(folder / holdout.sample_submission_file, index=False)
    return holdout, held_out[competition.label_column].to_numpy()


def holdout_run(
    data_zip: Path,
    config,
    runs_dir: Path,
    test_share: float = 0.2,
    seed: int = 2024,
    ray_address: str | None = None,
) -> dict:
    """`cv` with `config` on the kept rows; its submission scored on the withheld labels."""
    from kaggle_digits.jobs.cv import run_cv
    from kaggle_digits.jobs.submit import validate_submission, write_submission

    competition = load_competition()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        extract_zip(data_zip, scratch / "full", competition.data_files)
        holdout, test_labels = split_competition(
            competition, scratch / "full", scratch, test_share, seed
        )
        started = time.perf_counter()
        with TreeMemory() as memory:
            result = run_cv(config, holdout, scratch, runs_dir, ray_address=ray_address)
        wall = time.perf_counter() - started
        # score the very file `submit` would upload, after the checks it would pass
        submission = write_submission(result.run_dir, holdout, scratch / "submissions")
        validate_submission(submission, holdout, scratch)
        predicted = pd.read_csv(submission)[holdout.submission_label_column].to_numpy()
    saved = json.loads((result.run_dir / "config.json").read_text())
    return {
        "members": ",".join(saved["members"]),
        "epochs": saved["epochs"],
        "select_hard": saved.get("select_hard", 0.0),  # an epoch: 1 / (1 + select_hard) of the rows
        "execution": saved["execution"],
        "minutes": round(wall / 60, 2),
        "oof_accuracy": result.metrics["oof_accuracy"],
        "test_accuracy": float(np.mean(predicted == test_labels)),
        "peak_gib": round(memory.peak_gib, 2),
        "peak_rss_gib": round(memory.peak_rss_gib, 2),
        "train_rows": holdout.train_rows,
        "test_rows": holdout.test_rows,
        "run": str(result.run_dir),
    }


def main() -> None:
    # runs/holdout/, not runs/: these runs predict a split of train.csv, not Kaggle's
    # test.csv, so neither `submit` nor runs/latest may take them for a real run
    fields = (*PRESET_FIELDS, "budget_minutes", "epochs", "workers", "engine")
    parser = cv_arguments(__doc__, runs_dir=Path("runs/holdout"), fields=fields)
    parser.add_argument("--test-share", type=float, default=0.2, help="share held out as test")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the held-out split")
    parser.add_argument("--ray", default=None, metavar="ADDRESS", help="as cv --ray")
    parser.add_argument("--json", type=Path, default=None, help="also write the scores here")
    args = parser.parse_args()
    check_data(args.data)

    from kaggle_digits.options.presets import preset_config

    config = preset_config(args.preset, load_competition().priors, **preset_options(args))
    score = holdout_run(
        args.data,
        config,
        args.runs_dir,
        args.test_share,
        args.seed,
        args.ray,
    )
    if args.json:
        args.json.write_text(json.dumps(score, indent=2))
    gap = score["test_accuracy"] - score["oof_accuracy"]
    print(
        f"holdout  preset {args.preset}  train {score['train_rows']}  test {score['test_rows']}  "
        f"{score['members']} x {score['epochs']} epochs  wall {score['minutes']:.1f} min  "
        f"peak memory {score['peak_gib']:.2f} GiB (PSS; RSS {score['peak_rss_gib']:.2f})  "
        f"run {score['run']}\n"
        f"         OOF accuracy {score['oof_accuracy']:.5f}  "
        f"held-out test accuracy {score['test_accuracy']:.5f}  gap {gap:+.5f}"
    )


if __name__ == "__main__":
    main()
