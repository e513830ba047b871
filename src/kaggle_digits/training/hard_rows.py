"""Hard rows (CVConfig.select_hard): which of the training rows each epoch trains on, drawn
towards those the model gets most wrong as the epoch before ends."""

import math
import threading
from collections.abc import Iterator

import keras
import numpy as np

from kaggle_digits.training.feeding import predict_batches


def keep_hardest(losses: np.ndarray, power: float, draws: np.random.Generator) -> np.ndarray:
    """The rows kept: each with probability p ** power, p the percentile of its loss (ties in
    row order), on average 1 / (1 + power) of them."""
    percentiles = (np.argsort(np.argsort(losses, kind="stable")) + 1) / len(losses)
    return np.flatnonzero(draws.random(len(losses)) < percentiles**power)


class HardRows(keras.callbacks.Callback):
    """Which of the training rows each epoch trains on (CVConfig.select_hard): at random in
    the first; for each later one, as the one before ends, each row with probability
    p ** power, p the percentile of its loss under the model as it is then. Training that
    goes on from `first_epoch` (a forked tail's branch) draws that epoch's rows under the
    model as it is given."""

    def __init__(
        self,
        model: keras.Model,
        images: np.ndarray,
        labels: np.ndarray,
        power: float,
        seed: int,
        first_epoch: int = 0,
    ) -> None:
        super().__init__()
        self.net = model  # without the augmentation; Keras sets self.model to the trainer
        self.images, self.labels, self.power, self.seed = images, labels, power, seed
        self.draws = np.random.default_rng(seed)
        self.first_epoch = first_epoch
        first_rows = self.hardest_rows() if first_epoch else np.arange(len(images))
        self.chosen = {first_epoch: first_rows}  # epoch -> its rows
        self.began = self.ended = False
        self.changed = threading.Condition()

    def on_train_begin(self, logs=None):
        self.began = True

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.params["epochs"]:
            rows = self.hardest_rows()
            with self.changed:
                self.chosen[epoch + 1] = rows
                self.changed.notify_all()

    def on_train_end(self, logs=None):
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def hardest_rows(self) -> np.ndarray:
        probs = predict_batches(self.net, self.images)
        true_probs = probs[np.arange(len(self.labels)), self.labels]
        return keep_hardest(-np.log(np.maximum(true_probs, 1e-12)), self.power, self.draws)

    def rows_of(self, epoch: int) -> np.ndarray | None:
        """The rows of `epoch`, once chosen (the input pipeline reads ahead of the training);
        None once training has ended."""
        with self.changed:
            if not self.began and epoch not in self.chosen:
                # Keras reads two batches of a generator before training, to learn their
                # shapes: with one step an epoch, the second comes from all the rows
                return np.arange(len(self.images))
            self.changed.wait_for(lambda: epoch in self.chosen or self.ended)
            return self.chosen.pop(epoch, None)

    def batches(
        self, targets: np.ndarray, batch_size: int, steps_per_epoch: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(images, targets) batches, each epoch's `steps_per_epoch` from its own rows in a
        new (reproducible) order, until training ends."""
        order_of_pass = np.random.default_rng(self.seed + 1)
        epoch = self.first_epoch
        while (rows := self.rows_of(epoch)) is not None:
            # never empty: the hardest row (percentile 1) is always kept
            passes = math.ceil(steps_per_epoch * batch_size / len(rows))
            order = np.concatenate([order_of_pass.permutation(rows) for _ in range(passes)])
            for step in range(steps_per_epoch):
                picked = order[step * batch_size : (step + 1) * batch_size]
                yield self.images[picked], targets[picked]
            epoch += 1
