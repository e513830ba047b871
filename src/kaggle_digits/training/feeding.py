"""Feeding a net: its training batches (shuffled, for ever) and its predictions, a batch at
a time; on TensorFlow through tf.data pipelines that never wait on autotuning."""

from collections.abc import Iterator

import keras
import numpy as np

# Scoring and predicting 256 images at a time is as fast as 1,024 and holds a quarter of the
# activations (see docs/measurements.md#prediction-batch)
PREDICT_BATCH = 256


def shuffled_batches(images: np.ndarray, targets: np.ndarray, batch_size: int, seed: int):
    """(images, targets) batches for ever, in a new (reproducible) order every pass."""
    order_of_pass = np.random.default_rng(seed)
    while True:
        order = order_of_pass.permutation(len(images))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            yield images[rows], targets[rows]


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
