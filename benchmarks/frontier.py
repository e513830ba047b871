"""`make frontier`: accuracy against minutes. Never part of CI.

For each budget (default 5, 10, 30 and 60 minutes) it plays Kaggle as `make holdout` does: a
stratified 20% of train.csv becomes a stand-in test.csv with its labels withheld, `cv
--budget B` runs on the rest, and the run's submission is scored on the withheld labels.
Writes frontier.csv and frontier.png (OOF and held-out accuracy against wall minutes, with
two public recipes timed on the same 2-core machine as reference points) into --output.
"""

from pathlib import Path

import pandas as pd
from common import check_data, cv_arguments  # sets TF_CPP_MIN_LOG_LEVEL first
from holdout import holdout_run

# measured on the 2-core development machine, trained on all 42,000 rows, scored on
# held-out labels (issue 11)
REFERENCES = [
    {"name": "keras-io MNIST convnet, 15 epochs", "minutes": 4.0, "accuracy": 0.989},
    {"name": "best public ensemble's single CNN, 45 epochs", "minutes": 75.0, "accuracy": 0.9951},
]


def main() -> None:
    parser = cv_arguments(__doc__, runs_dir=Path("runs/holdout"))
    parser.add_argument("--budgets", default="5,10,30,60", help="minutes, comma-separated")
    parser.add_argument("--output", type=Path, default=Path("reports"))
    args = parser.parse_args()
    check_data(args.data)

    from kaggle_digits.config import preset_config
    from kaggle_digits.files import atomic_path
    from kaggle_digits.plots import frontier_figure

    points = []
    for budget in [float(value) for value in args.budgets.split(",")]:
        config = preset_config(args.preset, folds=args.folds, budget_minutes=budget)
        score = holdout_run(args.data, config, args.runs_dir)
        points.append({"budget": budget, "epochs": score["epochs"], **score})
        print(
            f"budget {budget:g} min: {score['members']} x {score['epochs']} epochs, "
            f"{score['minutes']:.1f} min, OOF {score['oof_accuracy']:.5f}, "
            f"held-out test {score['test_accuracy']:.5f}",
            flush=True,
        )
    table = pd.DataFrame(points)
    with atomic_path(args.output / "frontier.csv") as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_string(index=False))
    print(f"figure {frontier_figure(points, REFERENCES, args.output / 'frontier.png')}")


if __name__ == "__main__":
    main()
