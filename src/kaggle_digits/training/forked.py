"""A forked tail: one trunk trained along a net's one-cycle schedule to `fork_epoch`, then
`branches` tails, each trained from there to the schedule's end with its own seed (its own
batch order and hard rows), to be averaged as nets of the fold. The trunk's epochs are paid
once: k nets of E epochs forked at F cost F + k (E - F) epochs instead of k E.
"""

from collections.abc import Iterator, Sequence

import keras
import numpy as np

from kaggle_digits.options.config import CVConfig
from kaggle_digits.training.fit import compiled_trainer, fit_epochs, seed_everything

# a branch's seed, apart from the seeds of the other pairs (jobs.cv_pairs.pair_seed steps by 1)
BRANCH_SEED_STEP = 7919


class Fork(keras.callbacks.Callback):
    """Keeps the trainer's weights and its optimizer's state (step count, moments, moving
    average) as epoch `epoch` (counted from 1) ends: before fit() ends by copying the moving
    average into the weights."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch
        self.weights: list[np.ndarray] | None = None
        self.optimizer_state: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            self.weights = self.model.get_weights()
            self.optimizer_state = [
                keras.ops.convert_to_numpy(v) for v in self.model.optimizer.variables
            ]

    def restore(self, trainer: keras.Model) -> None:
        """Put `trainer` back as it was at the fork."""
        if self.weights is None or self.optimizer_state is None:
            raise RuntimeError(f"the trunk never reached its fork at epoch {self.epoch}")
        trainer.set_weights(self.weights)
        variables = trainer.optimizer.variables
        for variable, value in zip(variables, self.optimizer_state, strict=True):
            variable.assign(value)


def branch_seed(seed: int, branch: int) -> int:
    """Branch 0 goes on with the trunk's own seed."""
    return seed + BRANCH_SEED_STEP * branch


def forked_branches(
    architecture: str,
    images: np.ndarray,
    labels: np.ndarray,
    config: CVConfig,
    num_classes: int,
    seed: int,
    fork_epoch: int,
    branches: int,
    holdout: tuple[np.ndarray, np.ndarray] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> Iterator[tuple[keras.Model, dict[str, list[float]]]]:
    """Each branch's net and learning curves (the trunk's epochs, then its own), one branch
    at a time. The net is one object, trained again for the next branch: predict with it
    before asking for the next."""
    epochs, _ = config.epoch_steps(len(images))
    if not 0 < fork_epoch < epochs or branches < 1:
        raise ValueError(
            f"a fork needs 0 < fork_epoch < {epochs} epochs and a branch or more "
            f"(got fork_epoch {fork_epoch}, {branches} branches)"
        )
    seed_everything(seed)
    model, trainer = compiled_trainer(architecture, images, config, num_classes, seed)
    fork = Fork(fork_epoch)
    # the trunk ends at the fork: its hard rows draw none for an epoch it never trains
    fork_callbacks = [*callbacks, fork]
    trunk = fit_epochs(
        model, trainer, images, labels, config, seed, holdout, fork_callbacks, 0, fork_epoch
    )
    for branch in range(branches):
        fork.restore(trainer)
        tail = fit_epochs(
            model,
            trainer,
            images,
            labels,
            config,
            branch_seed(seed, branch),
            holdout,
            callbacks,
            first_epoch=fork_epoch,
        )
        yield model, {name: trunk[name] + tail.get(name, []) for name in trunk}
