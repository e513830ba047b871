"""What test_backends.py compares between Keras backends, computed under the one that
KERAS_BACKEND names, in a process of its own, and saved to an .npz:

- `Deskew` on uint8 and float images, `LocallyConnected2D` with fixed weights;
- the test-time views (shifted and turned) of a deskewed lc-cnn with fixed weights;
- a short training with hard-row selection and EMA (and without EMA, to show it matters),
  from fixed initial weights with no randomness left: no augmentation, no dropout, and the
  rows and their order drawn by NumPy, as on every backend; and the same training as a
  forked tail's two branches (the weights and the optimizer's state put back at the fork).

    KERAS_BACKEND=jax python tests/backend_probe.py OUT.npz
"""

import sys
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import make_digits  # noqa: E402

from kaggle_digits.models.architectures import build_model, deskewed, register  # noqa: E402
from kaggle_digits.models.layers import Deskew, LocallyConnected2D  # noqa: E402
from kaggle_digits.options.config import CVConfig  # noqa: E402
from kaggle_digits.training.fit import predict_probs, train_model  # noqa: E402
from kaggle_digits.training.forked import forked_branches  # noqa: E402

ROWS = 64


def fixed(seed: int):
    """A weight initializer that gives the same numbers on every backend."""

    def initializer(shape, dtype=None):
        values = np.random.default_rng(seed).normal(0, 0.2, size=tuple(shape))
        return keras.ops.convert_to_tensor(values.astype("float32"), dtype=dtype)

    return initializer


@register("probe-net")
def probe_net(image_shape, num_classes):
    """A net with fixed initial weights and nothing random: conv, batch norm, dense."""
    layers = keras.layers
    images = keras.Input(shape=image_shape, dtype="uint8")
    x = layers.Rescaling(1 / 255)(images)
    x = layers.Conv2D(8, 3, strides=2, kernel_initializer=fixed(1), use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.Activation("relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(num_classes, kernel_initializer=fixed(2), dtype="float32")(x)
    return keras.Model(images, layers.Activation("softmax", dtype="float32")(x))


def set_fixed_weights(model: keras.Model) -> None:
    draws = np.random.default_rng(3)
    model.set_weights(
        [
            # a batch norm's variances must stay positive
            draws.uniform(0.5, 1.5, size=w.shape) if "variance" in w.path
            else draws.normal(0, 0.1, size=w.shape)
            for w in model.weights
        ]
    )  # fmt: skip


def main() -> None:
    images, labels = make_digits(ROWS, seed=11)
    out = {}
    out["deskew_uint8"] = keras.ops.convert_to_numpy(Deskew()(images))
    out["deskew_float"] = keras.ops.convert_to_numpy(Deskew()(images.astype("float32") / 255))

    local = LocallyConnected2D(8, 4, strides=2)
    local.build((None, 28, 28, 1))
    set_fixed_weights(local)
    out["locally_connected"] = keras.ops.convert_to_numpy(local(images.astype("float32") / 255))

    model = deskewed(build_model("lc-cnn", (28, 28, 1), 10))
    set_fixed_weights(model)
    for views in ("shifts", "rotations", "flips+shifts"):
        config = CVConfig(tta=4, tta_views=views, flip_horizontal=True)
        out[f"tta_{views}"] = predict_probs(model, images, config)
    out["no_tta"] = predict_probs(model, images, CVConfig())

    training = CVConfig(
        epochs=4, batch_size=16, augment=False, deskew=True, select_hard=1.0, ema=0.9
    )
    for name, config in (("hard_rows_ema", training), ("hard_rows", replace(training, ema=0.0))):
        trained, _ = train_model("probe-net", images, labels, config, 10, seed=5)
        out[name] = predict_probs(trained, images, CVConfig())
    branches = forked_branches("probe-net", images, labels, training, 10, 5, 2, branches=2)
    for branch, (trained, _) in enumerate(branches):
        out[f"forked_branch{branch}"] = predict_probs(trained, images, CVConfig())
    np.savez(sys.argv[1], backend=keras.backend.backend(), **out)


if __name__ == "__main__":
    main()
