"""Fitting one model: augmentation, the learning-rate schedule, the training from any epoch
on, and prediction with optional test-time augmentation. Knows nothing of folds or files."""

import random
from collections.abc import Iterator, Sequence

import keras
import numpy as np
from scipy import ndimage

from kaggle_digits.data.views import View
from kaggle_digits.models.architectures import build_model, deskewed
from kaggle_digits.options.config import CVConfig
from kaggle_digits.training.feeding import (
    PREDICT_BATCH,
    on_tensorflow,
    predict_batches,
    shuffled_batches,
    tf_batches,
    tf_generator,
)
from kaggle_digits.training.hard_rows import HardRows


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
    model, trainer = compiled_trainer(architecture, images, config, num_classes, seed)
    curves = fit_epochs(model, trainer, images, labels, config, seed, holdout, callbacks)
    return model, curves


def compiled_trainer(
    architecture: str, images: np.ndarray, config: CVConfig, num_classes: int, seed: int
) -> tuple[keras.Model, keras.Model]:
    """The net, and the trainer that feeds it augmented images, compiled with the one-cycle
    schedule over config's epochs of `images`."""
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
    return model, trainer


def fit_epochs(
    model: keras.Model,
    trainer: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    config: CVConfig,
    seed: int,
    holdout: tuple[np.ndarray, np.ndarray] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    first_epoch: int = 0,
    end_epoch: int | None = None,
) -> dict[str, list[float]]:
    """Train the epochs from `first_epoch` (counted from 0) up to `end_epoch` (None:
    config's last, where the schedule ends), the batches (and hard rows) drawn from `seed`;
    the history of those epochs."""
    num_classes = model.output_shape[-1]
    epochs, steps_per_epoch = config.epoch_steps(len(images))
    epochs = end_epoch or epochs
    fit_callbacks = list(callbacks)
    hard_rows = None
    if config.select_hard > 0:
        hard_rows = HardRows(model, images, labels, config.select_hard, seed, first_epoch)
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
        initial_epoch=first_epoch,
        steps_per_epoch=steps_per_epoch,
        shuffle=False,  # the batches come shuffled
        validation_data=validation,
        callbacks=fit_callbacks,
        verbose=0,
    )
    return {name: [float(value) for value in values] for name, values in history.history.items()}


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
