"""Fitting one model: augmentation, the learning-rate schedule, callbacks, and prediction with
optional test-time augmentation. Knows nothing of folds or files."""

import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import keras
import numpy as np
from scipy import ndimage

from kaggle_digits.data.views import View
from kaggle_digits.models.architectures import build_model, deskewed
from kaggle_digits.options.config import CVConfig

# Scoring and predicting 256 images at a time is as fast as 1,024 and holds a quarter of the
# activations (see docs/measurements.md#prediction-batch)
PREDICT_BATCH = 256


def augmentation(config: CVConfig, seed: int) -> keras.Sequential | None:
    """Random flips (where the competition's images allow them), turns, zooms and shifts;
    None where the config asks for none of them. A mirrored 2 is no 2: the digits' spec
    allows no flips."""
    flips = ("horizontal" * config.flip_horizontal, "vertical" * config.flip_vertical)
    layers = []
    if any(flips):
        mode = "_and_".join(flip for flip in flips if flip)  # Keras's horizontal_and_vertical
        layers.append(keras.layers.RandomFlip(mode, seed=seed + 3))
    if config.rotation_degrees:
        layers.append(keras.layers.RandomRotation(config.rotation_degrees / 360, seed=seed))
    if config.zoom:
        layers.append(keras.layers.RandomZoom(config.zoom, config.zoom, seed=seed + 1))
    if config.shift:
        layers.append(keras.layers.RandomTranslation(config.shift, config.shift, seed=seed + 2))
    return keras.Sequential(layers, name="augmentation") if config.augment and layers else None


def one_cycle(config: CVConfig, total_steps: int) -> keras.optimizers.schedules.CosineDecay:
    """Linear warm-up to the peak learning rate, then cosine decay to nearly zero."""
    warmup_steps = int(config.warmup_fraction * total_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 25,
        decay_steps=total_steps - warmup_steps,
        warmup_target=config.learning_rate,
        warmup_steps=warmup_steps,
        alpha=1e-3,
    )


def train_model(
    architecture: str,
    images: np.ndarray,
    labels: np.ndarray,
    config: CVConfig,
    num_classes: int,
    seed: int,
    holdout: tuple[np.ndarray, np.ndarray] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train `architecture` on (images, labels); return the model and its per-epoch history.

    The held-out rows, if given, are only evaluated after each epoch for the learning
    curves, unless config.early_stopping asks to pick the best epoch on them.
    """
    seed_everything(seed)
    model = build_model(architecture, images.shape[1:], num_classes, config.precision)
    if config.deskew:
        model = deskewed(model)
    inputs = keras.Input(shape=images.shape[1:], dtype="uint8")
    augment = augmentation(config, seed)
    trained = augment(inputs) if augment else inputs
    trainer = keras.Model(inputs, model(trained), name=f"train_{model.name}")
    epochs, steps_per_epoch = config.epoch_steps(len(images))
    optimizer = keras.optimizers.Adam(
        one_cycle(config, epochs * steps_per_epoch),
        # fit() ends by copying the moving average into the weights: that is the model
        use_ema=config.ema > 0,
        ema_momentum=config.ema or 0.99,
    )
    if config.precision == "mixed_float16":
        # the trainer's own policy is float32, so compile() would not scale the loss itself
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    trainer.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    fit_callbacks = list(callbacks)
    hard_rows = None
    if config.select_hard > 0:
        hard_rows = HardRows(model, images, labels, config.select_hard, seed)
        # first, so that the reporters count its scoring in the epoch's time
        fit_callbacks.insert(0, hard_rows)
    if config.early_stopping and holdout is not None:
        fit_callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=config.early_stopping, restore_best_weights=True
            )
        )
    validation = None
    if holdout is not None:
        validation = (holdout[0], keras.utils.to_categorical(holdout[1], num_classes))
    targets = keras.utils.to_categorical(labels, num_classes)
    # batches for ever, reshuffled at every pass, so that an epoch may end mid-pass
    if hard_rows is not None:
        batches = hard_rows.batches(targets, config.batch_size, steps_per_epoch)
        if on_tensorflow():
            batches = tf_generator(batches, images, targets)
    elif on_tensorflow():
        batches = tf_batches((images, targets), config.batch_size, shuffle_seed=seed)
    else:
        batches = shuffled_batches(images, targets, config.batch_size, seed)
    if validation and on_tensorflow():
        validation = tf_batches(validation, PREDICT_BATCH)
    history = trainer.fit(
        batches,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        shuffle=False,  # the batches come shuffled
        validation_data=validation,
        callbacks=fit_callbacks,
        verbose=0,
    )
    curves = {name: [float(value) for value in values] for name, values in history.history.items()}
    return model, curves


def seed_everything(seed: int) -> None:
    """Python's, NumPy's, the backend's and Keras's own random numbers from `seed`."""
    if on_tensorflow():
        keras.utils.set_random_seed(seed)
        return
    # keras.utils.set_random_seed seeds TensorFlow too wherever it is installed, importing it
    # (~0.6 GB) into a JAX or PyTorch process; clearing the session drops Keras's global
    # SeedGenerator, which is then drawn anew from Python's seeded generator
    keras.backend.clear_session()
    random.seed(seed)
    np.random.seed(seed)
    if keras.backend.backend() == "torch":
        import torch

        torch.manual_seed(seed)


def shuffled_batches(images: np.ndarray, targets: np.ndarray, batch_size: int, seed: int):
    """(images, targets) batches for ever, in a new (reproducible) order every pass."""
    order_of_pass = np.random.default_rng(seed)
    while True:
        order = order_of_pass.permutation(len(images))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            yield images[rows], targets[rows]


def keep_hardest(losses: np.ndarray, power: float, draws: np.random.Generator) -> np.ndarray:
    """The rows kept: each with probability p ** power, p the percentile of its loss (ties in
    row order), on average 1 / (1 + power) of them."""
    percentiles = (np.argsort(np.argsort(losses, kind="stable")) + 1) / len(losses)
    return np.flatnonzero(draws.random(len(losses)) < percentiles**power)


class HardRows(keras.callbacks.Callback):
    """Which of the training rows each epoch trains on (CVConfig.select_hard): at random in
    the first; for each later one, as the one before ends, each row with probability
    p ** power, p the percentile of its loss under the model as it is then."""

    def __init__(
        self, model: keras.Model, images: np.ndarray, labels: np.ndarray, power: float, seed: int
    ) -> None:
        super().__init__()
        self.net = model  # without the augmentation; Keras sets self.model to the trainer
        self.images, self.labels, self.power, self.seed = images, labels, power, seed
        self.draws = np.random.default_rng(seed)
        self.chosen = {0: np.arange(len(images))}  # epoch -> its rows
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
        epoch = 0
        while (rows := self.rows_of(epoch)) is not None:
            # never empty: the hardest row (percentile 1) is always kept
            passes = math.ceil(steps_per_epoch * batch_size / len(rows))
            order = np.concatenate([order_of_pass.permutation(rows) for _ in range(passes)])
            for step in range(steps_per_epoch):
                picked = order[step * batch_size : (step + 1) * batch_size]
                yield self.images[picked], targets[picked]
            epoch += 1


def predict_probs(model: keras.Model, images: np.ndarray, config: CVConfig) -> np.ndarray:
    """Class probabilities; with config.tta = k, the mean over the image and its first k
    views (config.views: moved, turned, mirrored, as the competition's images allow)."""
    probs = predict_batches(model, images)
    for view in prediction_views(images, config):
        probs = probs + predict_batches(model, view)
    return np.asarray(probs / (config.tta + 1), dtype=np.float32)


def prediction_views(images: np.ndarray, config: CVConfig) -> Iterator[np.ndarray]:
    """The first config.tta views of `images`, one at a time."""
    for view in config.views[: config.tta]:
        yield viewed(images, view)


def viewed(images: np.ndarray, view: View) -> np.ndarray:
    """`images` (N x H x W x C) with the view's steps applied in order."""
    for kind, value in view:
        if kind == "shift":
            images = shifted(images, *value)
        elif kind == "rotate":
            images = rotated(images, value)
        else:
            images = flipped(images, value)
    return images


def flipped(images: np.ndarray, direction: str) -> np.ndarray:
    """`images` mirrored left-right ("horizontal"), upside down ("vertical") or both."""
    rows = slice(None, None, -1 if direction in ("vertical", "both") else 1)
    columns = slice(None, None, -1 if direction in ("horizontal", "both") else 1)
    return np.ascontiguousarray(images[:, rows, columns])


def shifted(images: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """`images` (N x H x W x C) moved `rows` pixels down and `columns` right (negative: up,
    left), the gap filled with the edge's own pixels (blank, for centred digits)."""
    height, width = images.shape[1:3]
    pad = ((0, 0), (abs(rows), abs(rows)), (abs(columns), abs(columns)), (0, 0))
    padded = np.pad(images, pad, mode="edge")
    top, left = abs(rows) - rows, abs(columns) - columns
    return padded[:, top : top + height, left : left + width]


def rotated(images: np.ndarray, degrees: float) -> np.ndarray:
    """`images` (N x H x W x C, uint8) turned `degrees` anticlockwise about their centre,
    resampled bilinearly, the corners filled with blank (0)."""
    turned = ndimage.rotate(
        images.astype(np.float32), degrees, axes=(2, 1), reshape=False, order=1, mode="constant"
    )
    return np.clip(np.rint(turned), 0, 255).astype(images.dtype)


def predict_batches(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The model's outputs for `images`, PREDICT_BATCH at a time."""
    if on_tensorflow():
        return model.predict(tf_batches((images,), PREDICT_BATCH), verbose=0)
    return model.predict(images, batch_size=PREDICT_BATCH, verbose=0)


# --- feeding TensorFlow ----------------------------------------------------------------
# From arrays, Keras builds a tf.data pipeline with autotuning and a new iterator for every
# epoch, evaluation and prediction. Tearing an iterator down waits for its autotuning thread,
# which may be asleep for many seconds (see docs/measurements.md#feeding-tensorflow). The same
# pipeline without autotuning never waits.


def on_tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


def tf_batches(arrays: tuple[np.ndarray, ...], batch_size: int, shuffle_seed: int | None = None):
    """`arrays` (rows aligned) as a tf.data pipeline of batches, without autotuning. Given a
    seed (training), the batches go on for ever, the rows reshuffled (reproducibly) at every
    pass."""
    import tensorflow as tf

    rows = tf.data.Dataset.from_tensor_slices(arrays if len(arrays) > 1 else arrays[0])
    if shuffle_seed is None:
        return prefetched(rows.batch(batch_size))
    rows = rows.shuffle(len(arrays[0]), seed=shuffle_seed, reshuffle_each_iteration=True)
    # each pass ends with its own short batch, as steps_per_epoch counts them
    return prefetched(rows.batch(batch_size).repeat())


def tf_generator(batches: Iterator, images: np.ndarray, targets: np.ndarray):
    """A generator of (images, targets) batches as a tf.data pipeline, without autotuning."""
    import tensorflow as tf

    signature = (
        tf.TensorSpec((None, *images.shape[1:]), tf.as_dtype(images.dtype)),
        tf.TensorSpec((None, *targets.shape[1:]), tf.as_dtype(targets.dtype)),
    )
    return prefetched(tf.data.Dataset.from_generator(lambda: batches, output_signature=signature))


def prefetched(batches):
    """A tf.data pipeline of batches, one read ahead, without autotuning."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return batches.prefetch(1).with_options(options)


class EpochReporter(keras.callbacks.Callback):
    """Calls report(epoch, logs, seconds, step, steps, finished, warmup_seconds) as each epoch
    ends, and about once a second during an epoch with finished=False (epochs and steps counted
    from 1). warmup_seconds: how much longer the epoch's first step took than its others (the
    first epoch's traces the graph and fills the shuffle buffer), so that the epochs still to
    come can be timed without it."""

    def __init__(self, report: Callable[..., None], every_seconds: float = 1.0) -> None:
        super().__init__()
        self.report = report
        self.every_seconds = every_seconds

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1
        self.started = self.reported = time.perf_counter()
        self.first_step_end: float | None = None
        self.last_step_end = 0.0

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self.first_step_end is None:
            self.first_step_end = now
        self.last_step_end = now
        if now - self.reported >= self.every_seconds:
            self.reported = now
            steps = self.params.get("steps") or 0
            self.report(self.epoch, {}, now - self.started, batch + 1, steps, False)

    def on_epoch_end(self, epoch, logs=None):
        logs = {name: float(value) for name, value in (logs or {}).items()}
        steps = self.params.get("steps") or 0
        seconds = time.perf_counter() - self.started
        self.report(epoch + 1, logs, seconds, steps, steps, True, self.warmup_seconds(steps))

    def warmup_seconds(self, steps: int) -> float:
        if steps < 3 or self.first_step_end is None:
            return 0.0
        other_step = (self.last_step_end - self.first_step_end) / (steps - 1)
        return max(0.0, self.first_step_end - self.started - other_step)


class AfterSteps(keras.callbacks.Callback):
    """Calls `hook()` once, as training step `steps` (counted from 1) ends."""

    def __init__(self, steps: int, hook: Callable[[], None]) -> None:
        super().__init__()
        self.steps, self.hook = steps, hook
        self.done = 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done == self.steps:
            self.hook()


class BatchClock(keras.callbacks.Callback):
    """When each training step ended."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.batch_ends.append(time.perf_counter())
