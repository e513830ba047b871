"""`make frontier`: accuracy against minutes. Never part of CI.

For each budget (default 5, 10, 30 and 60 minutes) it plays Kaggle as `make holdout` does: a
stratified 20% of train.csv becomes a stand-in test.csv with its labels withheld, `cv
--budget B` runs on the rest, and the run's submission is scored on the withheld labels.
Writes frontier.csv and frontier.png (OOF and held-out accuracy against wall minutes, with
two public recipes timed on the same 2-core machine as reference points) into --output.
Points of other budgets already in frontier.csv are kept, so `--budgets 60` redoes one point
and the figure still shows them all.
"""

from pathlib import Path

import pandas as pd
from common import check_data, cv_arguments, preset_options  # sets TF_CPP_MIN_LOG_LEVEL first
from holdout import holdout_run

# measured on the 2-core development machine in its fast mode (strided-cnn ~45 s an epoch of
# 33,600 images), trained on all 42,000 rows, scored on held-out labels (issue 11)
REFERENCES = [
    {"name": "keras-io MNIST convnet, 15 epochs (fast mode)", "minutes": 4.0, "accuracy": 0.989},
    {
        "name": "best public ensemble's single CNN, 45 epochs (fast mode)",
        "minutes": 75.0,
        "accuracy": 0.9951,
    },
]


def main() -> None:
    parser = cv_arguments(__doc__, runs_dir=Path("runs/holdout"))
    parser.add_argument("--budgets", default="5,10,30,60", help="minutes, comma-separated")
    parser.add_argument("--output", type=Path, default=Path("reports"))
    args = parser.parse_args()
    check_data(args.data)

    from kaggle_digits.base.files import atomic_path
    from kaggle_digits.data.competition import load_competition
    from kaggle_digits.options.presets import preset_config
    from kaggle_digits.reports.plots import frontier_figure

    points = []
    for budget in [float(value) for value in args.budgets.split(",")]:
        config = preset_config(
            args.preset, load_competition().priors, **preset_options(args), budget_minutes=budget
        )
        score = holdout_run(args.data, config, args.runs_dir)
        points.append({"budget": budget, "epochs": score["epochs"], **score})
        print(
            f"budget {budget:g} min: {score['members']} x {score['epochs']} epochs, "
            f"{score['minutes']:.1f} min, OOF {score['oof_accuracy']:.5f}, "
            f"held-out test {score['test_accuracy']:.5f}",
            flush=True,
        )
    table = pd.concat([earlier_points(args.output / "frontier.csv", points), pd.DataFrame(points)])
    table = table.sort_values("budget")
    with atomic_path(args.output / "frontier.csv") as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_string(index=False))
    figure = frontier_figure(table.to_dict("records"), REFERENCES, args.output / "frontier.png")
    print(f"figure {figure}")


def earlier_points(path: Path, points: list[dict]) -> pd.DataFrame:
    """The points of an earlier frontier.csv whose budgets were not run again now."""
    if not path.is_file():
        return pd.DataFrame()
    earlier = pd.read_csv(path)
    return earlier[~earlier["budget"].isin([point["budget"] for point in points])]


if __name__ == "__main__":
    main()
