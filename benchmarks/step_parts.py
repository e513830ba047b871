"""Where a strided-cnn training step's time goes, by taking its parts away one at a time.

Times Keras train_on_batch in this process, one thread, for the default preset's step (batch
32, mixed_bfloat16 unless --precision says otherwise) and for the same step without the
augmentation layers, without batch normalisation, as a forward pass only, with larger
batches, with TensorFlow's fused batch normalisation in place of Keras's, and for a model
of one dense layer (the framework's own cost a step). Rounds of
the variants interleave, so that a machine's drift touches them all alike; each figure is
the median over the rounds.

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 python benchmarks/step_parts.py
"""

import argparse
import statistics
import time

import common  # noqa: F401  (sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads)
import keras
import numpy as np

from kaggle_digits.models import architectures
from kaggle_digits.models.architectures import build_model
from kaggle_digits.models.layers import FusedBatchNormalization
from kaggle_digits.options.presets import preset_config
from kaggle_digits.training.fit import augmentation

SHAPE = (28, 28, 1)


def without_batch_norm(precision: str) -> keras.Model:
    """strided-cnn built with each BatchNormalization layer left out."""
    batch_norm = architectures._batch_norm
    architectures._batch_norm = lambda: keras.layers.Activation("linear")
    try:
        return build_model("strided-cnn", SHAPE, 10, precision)
    finally:
        architectures._batch_norm = batch_norm


def with_fused_batch_norm(precision: str) -> keras.Model:
    """strided-cnn built with TensorFlow's fused batch normalisation in place of Keras's."""
    batch_norm = architectures._batch_norm
    architectures._batch_norm = lambda: FusedBatchNormalization(momentum=0.9)
    try:
        return build_model("strided-cnn", SHAPE, 10, precision)
    finally:
        architectures._batch_norm = batch_norm


def trainer(net: keras.Model, augment: bool, jit_compile: bool = False) -> keras.Model:
    inputs = keras.Input(SHAPE, dtype="uint8")
    layers = augmentation(preset_config("default", epochs=1), seed=0) if augment else None
    model = keras.Model(inputs, net(layers(inputs) if layers else inputs))
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=jit_compile)
    return model


def variants(precision: str) -> dict:
    """name -> (model, batch, train or predict)."""
    keras.mixed_precision.set_dtype_policy(precision)
    net = build_model("strided-cnn", SHAPE, 10, precision)
    dense = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(10)])
    return {
        "default step (augmentation + net), batch 32": (trainer(net, True), 32, "train"),
        "without augmentation": (trainer(net, False), 32, "train"),
        "without augmentation or batch norm": (
            trainer(without_batch_norm(precision), False), 32, "train"),
        "default step, fused batch norm (TensorFlow's kernel)": (
            trainer(with_fused_batch_norm(precision), True), 32, "train"),
        "fused batch norm, batch 64": (
            trainer(with_fused_batch_norm(precision), True), 64, "train"),
        "forward pass only (prediction), batch 32": (trainer(net, False), 32, "predict"),
        "default step, batch 64": (trainer(net, True), 64, "train"),
        "default step, batch 128": (trainer(net, True), 128, "train"),
        "one dense layer, batch 32 (the framework)": (trainer(dense, False), 32, "train"),
        "without augmentation, XLA (jit_compile)": (
            trainer(build_model("strided-cnn", SHAPE, 10, precision), False, True), 32, "train"),
        "without augmentation or batch norm, XLA": (
            trainer(without_batch_norm(precision), False, True), 32, "train"),
    }  # fmt: skip


def time_steps(model: keras.Model, batch: int, kind: str, steps: int) -> float:
    """Seconds a step, over `steps` steps after a few untimed."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, *SHAPE), dtype=np.uint8)
    targets = keras.utils.to_categorical(rng.integers(0, 10, batch), 10)
    step = (
        (lambda: model.train_on_batch(images, targets))
        if kind == "train"
        else (lambda: model.predict_on_batch(images))
    )
    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    cases = variants(args.precision)
    seconds = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, (model, batch, kind) in cases.items():
            seconds[name].append(time_steps(model, batch, kind, args.steps))
    base = statistics.median(seconds["default step (augmentation + net), batch 32"]) / 32
    print(f"strided-cnn, {args.precision}, one thread, median of {args.rounds} rounds:")
    for name, (_, batch, _) in cases.items():
        step = statistics.median(seconds[name])
        print(f"  {name:48s} {step * 1000:7.1f} ms a step  {step / batch / base:5.2f} x an image")


if __name__ == "__main__":
    main()
