"""A forked tail (training.forked): the trunk trained once, each branch from the fork on."""

import keras
import numpy as np
import pytest

from kaggle_digits.options.config import CVConfig
from kaggle_digits.training.callbacks import BatchClock
from kaggle_digits.training.feeding import predict_batches
from kaggle_digits.training.forked import forked_branches


class StepsAtStart(keras.callbacks.Callback):
    """The optimizer's step count as each fit() begins."""

    def __init__(self):
        super().__init__()
        self.counts = []

    def on_train_begin(self, logs=None):
        self.counts.append(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))


def rows(count=200, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, (count, 28, 28, 1), dtype=np.uint8)
    return images, rng.integers(0, 10, count)


@pytest.mark.parametrize("select_hard", [0.0, 2.0])
def test_a_forked_tail_trains_the_trunk_once_and_each_branch_from_the_fork(select_hard):
    images, labels = rows()
    config = CVConfig(members=("tiny-cnn",), epochs=4, batch_size=25, select_hard=select_hard)
    epochs, steps = config.epoch_steps(len(images))
    clock, starts = BatchClock(), StepsAtStart()
    branches = forked_branches(
        "tiny-cnn",
        images,
        labels,
        config,
        10,
        seed=3,
        fork_epoch=2,
        branches=3,
        holdout=rows(40, seed=1),
        callbacks=[clock, starts],
    )
    probs, curves = [], []
    for model, branch_curves in branches:
        probs.append(predict_batches(model, images[:50]))
        curves.append(branch_curves)
    assert len(probs) == 3
    assert len(clock.batch_ends) == 2 * steps + 3 * (epochs - 2) * steps
    # the trunk, then each branch going on from the fork's step of the one schedule
    assert starts.counts == [0] + [2 * steps] * 3
    assert all(len(c["loss"]) == epochs and len(c["val_accuracy"]) == epochs for c in curves)
    assert all(c["loss"][:2] == curves[0]["loss"][:2] for c in curves)  # one trunk
    assert not np.allclose(probs[0], probs[1]) and not np.allclose(probs[1], probs[2])


def test_each_branch_is_trained_the_same_way_each_time():
    images, labels = rows()
    config = CVConfig(members=("tiny-cnn",), epochs=3, batch_size=25, select_hard=2)

    def second_branch():
        branches = forked_branches("tiny-cnn", images, labels, config, 10, 5, 1, 2)
        next(branches)
        model, _ = next(branches)
        return predict_batches(model, images[:50])

    np.testing.assert_allclose(second_branch(), second_branch(), atol=1e-6)


@pytest.mark.parametrize("fork_epoch, branches", [(0, 2), (3, 2), (1, 0)])
def test_a_fork_outside_the_schedule_is_refused(fork_epoch, branches):
    images, labels = rows(50)
    config = CVConfig(members=("tiny-cnn",), epochs=3, batch_size=25)
    with pytest.raises(ValueError, match="a fork needs"):
        next(forked_branches("tiny-cnn", images, labels, config, 10, 0, fork_epoch, branches))
