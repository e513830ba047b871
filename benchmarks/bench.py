"""`make bench`: timings on the full Kaggle-shaped data, never part of CI.

Unpacks the competition zip into a scratch data folder, times a cold load (parse and
validate the CSVs, write the cache) and a warm load (from the cache), then, unless
--load-only, runs `cv` with the chosen preset and prints its wall time, OOF accuracy and
the process's peak memory.
"""

import resource
import tempfile
import time
from pathlib import Path

from common import check_data, cv_arguments, preset_options  # sets TF_CPP_MIN_LOG_LEVEL first

from kaggle_digits.data.competition import load_competition
from kaggle_digits.data.dataset import load_dataset
from kaggle_digits.kaggle_api.download import extract_zip


def peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = cv_arguments(__doc__)
    parser.add_argument("--load-only", action="store_true")
    args = parser.parse_args()
    check_data(args.data)

    competition = load_competition()
    with tempfile.TemporaryDirectory() as scratch:
        data_root = Path(scratch)
        extract_zip(args.data, data_root / competition.slug, competition.data_files)
        started = time.perf_counter()
        load_dataset(competition, data_root)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        load_dataset(competition, data_root)
        warm = time.perf_counter() - started
        print(f"load  cold {cold:.2f} s (parse + validate + cache)   warm {warm:.3f} s (cache)")
        if args.load_only:
            return
        from kaggle_digits.jobs.cv import run_cv
        from kaggle_digits.options.presets import preset_config

        config = preset_config(args.preset, competition.priors, **preset_options(args))
        started = time.perf_counter()
        result = run_cv(config, competition, data_root, args.runs_dir)
        wall = time.perf_counter() - started
        print(
            f"cv    preset {args.preset}  folds {args.folds}  members {len(config.members)}  "
            f"wall {wall / 60:.1f} min  OOF accuracy {result.metrics['oof_accuracy']:.5f}  "
            f"peak memory {peak_memory_mib():.0f} MiB  run {result.run_dir}"
        )


if __name__ == "__main__":
    main()
