"""`make workers`: the same cross-validation run three ways, side by side, never part of CI.

On the holdout split of `make holdout` (test.csv is withheld labelled rows), a preset with a
fixed number of epochs runs: one pair after another in one process with every core
(`--workers 1`), as Ray tasks with one thread each (`--engine ray --workers N`, one per core),
and as the toolkit chooses without options (worker processes, no Ray). Each run is a `make
holdout` of its own process; the ways take turns, so that the machine's changing speed falls
on each alike. Prints wall time, accuracy and peak memory of each.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import check_data, cv_arguments

from kaggle_digits.machine.backend import cpu_count

HOLDOUT = Path(__file__).with_name("holdout.py")


def ways() -> dict[str, list[str]]:
    return {
        "sequential (--workers 1)": ["--workers", "1"],
        f"Ray tasks (--engine ray --workers {cpu_count()})": [
            *("--engine", "ray", "--workers", str(cpu_count()))
        ],
        "no option (worker processes)": [],
    }


def holdout(args, options: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        scores = Path(scratch) / "scores.json"
        command = [sys.executable, str(HOLDOUT), "--data", str(args.data)]
        command += ["--preset", args.preset, "--epochs", str(args.epochs)]
        command += ["--folds", str(args.folds)] if args.folds else []
        command += ["--runs-dir", str(args.runs_dir), "--json", str(scores), *options]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return json.loads(scores.read_text())


def main() -> None:
    parser = cv_arguments(__doc__, runs_dir=Path("runs/holdout"))
    parser.add_argument("--epochs", type=int, default=7, help="per pair, the same for each way")
    parser.add_argument("--rounds", type=int, default=1, help="times each way runs")
    args = parser.parse_args()
    check_data(args.data)

    print(f"{args.preset} preset, {args.epochs} epochs a pair, {cpu_count()} cores", flush=True)
    for round_number in range(1, args.rounds + 1):
        for way, options in ways().items():
            score = holdout(args, options)
            execution = score["execution"]
            print(
                f"round {round_number}  {way:<30} {score['minutes']:5.2f} min  "
                f"OOF {score['oof_accuracy']:.5f}  held-out test {score['test_accuracy']:.5f}  "
                f"peak {score['peak_gib']:.2f} GiB  {execution['engine']}: "
                f"{execution['pairs_at_once']} at once x {execution['threads_per_pair']} "
                f"thread(s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
