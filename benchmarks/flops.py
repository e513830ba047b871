"""Floating-point operations an image of each architecture costs: a prediction, and a training
step (the forward pass, the loss and the gradients), as XLA counts them in the compiled
programs (`cost_analysis`). Runs under JAX on any machine; the basis of docs/gpu.md's sums.

    KERAS_BACKEND=jax python benchmarks/flops.py [--batch 128] [--members strided-cnn,...]
"""

import argparse
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from kaggle_digits.models.architectures import ARCHITECTURES, build_model  # noqa: E402


def flops_of(function, *arguments) -> float:
    analysis = jax.jit(function).lower(*arguments).compile().cost_analysis()
    if isinstance(analysis, list):  # older JAX: one dict per device
        analysis = analysis[0]
    return float(analysis["flops"])


def architecture_flops(name: str, batch: int) -> dict:
    model = build_model(name, (28, 28, 1), 10)
    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]
    images = np.zeros((batch, 28, 28, 1), dtype=np.uint8)
    targets = np.eye(10, dtype=np.float32)[np.arange(batch) % 10]

    def predict(trainable, frozen, images):
        probs, _ = model.stateless_call(trainable, frozen, images, training=False)
        return probs

    def loss(trainable, frozen, images, targets):
        probs, _ = model.stateless_call(trainable, frozen, images, training=True)
        return keras.losses.categorical_crossentropy(targets, probs).mean()

    step = jax.grad(loss)
    return {
        "architecture": name,
        "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "predict_mflops_per_image": round(
            flops_of(predict, trainable, frozen, images) / batch / 1e6, 2
        ),
        "train_mflops_per_image": round(
            flops_of(step, trainable, frozen, images, targets) / batch / 1e6, 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--members", default=",".join(ARCHITECTURES))
    args = parser.parse_args()
    for name in args.members.split(","):
        print(json.dumps(architecture_flops(name, args.batch)), flush=True)


if __name__ == "__main__":
    main()
