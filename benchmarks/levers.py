"""Screen a recipe on one fold of the full data: the default preset's levers side by side.

Trains the members named by --member on every fold but --fold (of --folds, 5 as the
mission's `cv --folds 5`, split as `cv` splits them), each in turn in this process,
averages their held-out probabilities with their weights, and appends one JSON line: each
member's and the ensemble's held-out accuracy and log-loss, the seconds each took, the
epochs. The held-out probabilities go to an .npz beside it, so that members of different
runs can be averaged afterwards.

Run two at once, each with one thread, to screen two recipes at equal time as a 2-core
run's worker processes train:

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1 \\
      python benchmarks/levers.py --data-dir data --fold 0 --name strided \\
      --member arch=strided-cnn,epochs=60

A member is comma-separated `key=value`: arch, preset (default: default), weight (1),
member (its index, which sets its seed; default: its place), and any cv option's field
(epochs, batch_size, select_hard, tta, tta_views, precision, ...) or the recipe's
(learning_rate, warmup_fraction). A forked tail (training.forked): fork_at=EPOCH and
branches=K, each branch a member of the report:

    ... --member arch=strided-cnn,preset=gpu,epochs=54,select_hard=2,fork_at=36,branches=3
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

import common  # noqa: F401  (sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads)
import numpy as np
from sklearn.metrics import accuracy_score, log_loss

from kaggle_digits.data.competition import load_competition
from kaggle_digits.data.dataset import load_dataset
from kaggle_digits.jobs.cv import fold_assignment, training_data
from kaggle_digits.jobs.cv_pairs import pair_seed
from kaggle_digits.models import architectures
from kaggle_digits.models.layers import FusedBatchNormalization
from kaggle_digits.options.config import OPTIONS_BY_FIELD, CVConfig
from kaggle_digits.options.presets import preset_config
from kaggle_digits.training import feeding, fit, hard_rows
from kaggle_digits.training.callbacks import EpochReporter
from kaggle_digits.training.fit import predict_probs
from kaggle_digits.training.forked import forked_branches
from kaggle_digits.training.pairs import EpochReport, Pair, fit_pair, fold_rows


def parse_member(text: str, place: int) -> dict:
    fields = dict(item.split("=", 1) for item in text.split(","))
    member = {
        "arch": fields.pop("arch"),
        "preset": fields.pop("preset", "default"),
        "weight": float(fields.pop("weight", 1)),
        "member": int(fields.pop("member", place)),
    }
    if "fork_at" in fields:
        member["fork_at"] = int(fields.pop("fork_at"))
        member["branches"] = int(fields.pop("branches", 2))
    member["options"] = {key: option_value(key, value) for key, value in fields.items()}
    return member


def option_value(field: str, text: str):
    """A cv option's value from its text here (`true`/`false` for a switch); a recipe's
    field that is no option (learning_rate, warmup_fraction) as a number."""
    if field not in OPTIONS_BY_FIELD:
        return type(getattr(CVConfig(), field))(text)
    option = OPTIONS_BY_FIELD[field]
    if option.type is bool:
        return text.lower() in ("true", "1", "yes")
    return option.parse(text) if option.type is tuple else option.type(text)


def rescoring_every(epochs: int) -> type:
    """hard_rows.HardRows, scoring the rows only every `epochs` epochs: each epoch still draws
    its own rows, from the losses of the latest scoring."""

    class StaleHardRows(hard_rows.HardRows):
        def hardest_rows(self) -> np.ndarray:
            self.ended_epochs = getattr(self, "ended_epochs", 0) + 1
            if (self.ended_epochs - 1) % epochs == 0:
                probs = feeding.predict_batches(self.net, self.images)
                true_probs = probs[np.arange(len(self.labels)), self.labels]
                self.losses = -np.log(np.maximum(true_probs, 1e-12))
            return hard_rows.keep_hardest(self.losses, self.power, self.draws)

    return StaleHardRows


def trained_nets(data, config, pair: Pair, member: dict):
    """(name, held-out probabilities, seconds, each epoch's seconds) of each net the member
    trains: one, as `cv` trains a pair; with fork_at and branches, each branch of a forked
    tail (training.forked), its seconds counting the trunk's in the first branch's."""
    started = time.perf_counter()
    epoch_seconds = []
    if "fork_at" not in member:
        output = fit_pair(data, config, pair, report=epoch_timer(epoch_seconds))
        yield "", output.holdout_probs, time.perf_counter() - started, epoch_seconds
        return
    rows = fold_rows(data, config, pair.fold)
    timer = epoch_timer(epoch_seconds)
    reporter = EpochReporter(lambda *epoch: timer(EpochReport(pair, *epoch)))
    branches = forked_branches(
        pair.architecture,
        rows.train_images,
        rows.train_labels,
        config,
        data.num_classes,
        pair.seed,
        member["fork_at"],
        member["branches"],
        holdout=rows.curve_holdout,
        callbacks=[reporter],
    )
    for branch, (model, _) in enumerate(branches):
        probs = predict_probs(model, rows.holdout_images, config)
        yield f"#branch{branch}", probs, time.perf_counter() - started, list(epoch_seconds)
        started, epoch_seconds[:] = time.perf_counter(), []


def epoch_timer(seconds: list[float]):
    """A pair's report callback that keeps each finished epoch's seconds."""

    def report(epoch: EpochReport) -> None:
        if epoch.finished:
            seconds.append(epoch.seconds)

    return report


def scores(labels: np.ndarray, probs: np.ndarray) -> dict:
    return {
        "accuracy": round(float(accuracy_score(labels, probs.argmax(1))), 5),
        "log_loss": round(float(log_loss(labels, probs, labels=range(probs.shape[1]))), 5),
        "right": int((probs.argmax(1) == labels).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5, help="how many folds the rows split into")
    parser.add_argument("--name", required=True, help="the recipe's name in the report")
    parser.add_argument("--member", action="append", required=True)
    parser.add_argument("--precision", default="mixed_bfloat16", help="unless a member sets it")
    parser.add_argument(
        "--rescore-every",
        type=int,
        default=1,
        help="score the training rows for --select-hard every K epochs, drawing each epoch's "
        "rows from the latest scores (1: every epoch, as cv does)",
    )
    parser.add_argument(
        "--batch-norm",
        choices=("keras", "fused"),
        default="keras",
        help="fused: TensorFlow's fused kernel (models.layers.FusedBatchNormalization) in "
        "every member's batch normalisation",
    )
    parser.add_argument("--out", type=Path, default=Path("reports/levers"))
    args = parser.parse_args()

    if args.batch_norm == "fused":
        architectures._batch_norm = lambda: FusedBatchNormalization(momentum=0.9)

    if args.rescore_every > 1:
        fit.HardRows = rescoring_every(args.rescore_every)
    competition = load_competition()
    dataset = load_dataset(competition, args.data_dir)
    fold_of_row = fold_assignment(dataset.train_labels, args.folds, seed=42)
    data = training_data(dataset, competition, fold_of_row)
    labels = dataset.train_labels[fold_of_row == args.fold]

    members, weighted, total_weight = [], 0.0, 0.0
    for place, text in enumerate(args.member):
        member = parse_member(text, place)
        options = {"precision": args.precision} | member["options"]
        config = preset_config(member["preset"], competition.priors, **options)
        config = dataclasses.replace(config, folds=args.folds)
        seed = pair_seed(config, args.fold, member["member"])
        pair = Pair(args.fold, member["member"], member["arch"], seed)
        for name, holdout_probs, seconds, epoch_seconds in trained_nets(data, config, pair, member):
            weighted = weighted + member["weight"] * holdout_probs
            total_weight += member["weight"]
            members.append(
                {
                    "spec": text + name,
                    "seconds": round(seconds),
                    "epochs": config.epochs,
                    "epoch_seconds": round(float(np.median(epoch_seconds)), 1),
                    "train_seconds": round(sum(epoch_seconds)),
                    **scores(labels, holdout_probs),
                    "probs": holdout_probs,
                }
            )
            print(
                f"{args.name} fold {args.fold} {text}{name}: {members[-1]['accuracy']:.5f} "
                f"{members[-1]['log_loss']:.4f} in {seconds / 60:.1f} min",
                flush=True,
            )

    ensemble = weighted / total_weight
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(
        args.out / f"{args.name}-fold{args.fold}.npz",
        labels=labels,
        **{f"member{i}": m.pop("probs") for i, m in enumerate(members)},
    )
    line = {
        "name": args.name,
        "fold": args.fold,
        "folds": args.folds,
        "rescore_every": args.rescore_every,
        "batch_norm": args.batch_norm,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "seconds": sum(m["seconds"] for m in members),
        **scores(labels, ensemble),
        "members": members,
    }
    with open(args.out / "levers.jsonl", "a") as report:
        report.write(json.dumps(line) + "\n")
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
