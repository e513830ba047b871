"""The architecture registry. Each builder is a short function returning a Keras model that
takes raw uint8 images (N x H x W x C, the spec's image_shape) and returns class
probabilities: scaling happens inside the model, so a saved model needs no outside
preprocessing.

Keras 3 APIs only (`keras.layers`, `keras.ops`), so any Keras backend runs them.
"""

import importlib
from collections.abc import Callable
from typing import Any

ModelBuilder = Callable[[tuple[int, int, int], int], Any]


class _OnFirstUse:
    """A module imported when first used: a process that only checks names against the
    registry (the driver of `cv --workers`) never loads Keras and its backend (~0.5 GB)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)


keras = _OnFirstUse("keras")
layers = _OnFirstUse("keras.layers")
ARCHITECTURES: dict[str, ModelBuilder] = {}


def register(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    def add(builder: ModelBuilder) -> ModelBuilder:
        ARCHITECTURES[name] = builder
        return builder

    return add


def build_model(
    name: str, image_shape: tuple[int, int, int], num_classes: int, precision: str = "float32"
):
    """Architecture `name`, its layers built with the Keras dtype policy `precision` (saved
    with the model); the probabilities stay float32 (_classify)."""
    if name not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise KeyError(f"unknown architecture '{name}' (known: {known})")
    # the global policy is what every layer built meanwhile takes as its own
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        return ARCHITECTURES[name](tuple(image_shape), num_classes)
    finally:
        keras.config.set_dtype_policy(before)


def deskewed(model):
    """`model` with a Deskew layer in front, saved and loaded with it: slanted handwriting is
    straightened before the net sees it, at training time after the random augmentation."""
    from kaggle_digits.models.layers import Deskew

    images = keras.Input(shape=model.inputs[0].shape[1:], dtype="uint8", name="images")
    return keras.Model(images, model(Deskew()(images)), name=model.name)


def describe_architectures() -> str:
    """One line per registered architecture: its name and the first line of its docstring."""
    return "\n".join(
        f"{name:12s} {builder.__doc__.strip().splitlines()[0]}"
        for name, builder in ARCHITECTURES.items()
    )


def _inputs(image_shape: tuple[int, int, int]):
    images = keras.Input(shape=image_shape, dtype="uint8", name="images")
    return images, layers.Rescaling(1 / 255)(images)


def _batch_norm():
    # Momentum 0.9, not Keras's 0.99: with schedules of a few hundred steps per epoch, the
    # slower moving averages lag the weights so far that held-out accuracy collapses.
    return layers.BatchNormalization(momentum=0.9)


def _conv_bn(x, filters: int, kernel: int, strides: int = 1, padding: str = "same"):
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False)(x)
    x = _batch_norm()(x)
    return layers.Activation("relu")(x)


def _classify(x, num_classes: int):
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(x)


# --- the seeds' baselines -------------------------------------------------------------


@register("mlp")
def mlp(image_shape, num_classes):
    """Baseline: two dense layers of 512 with dropout, no convolutions."""
    images, x = _inputs(image_shape)
    x = layers.Flatten()(x)
    for _ in range(2):
        x = layers.Dense(512, activation="relu")(x)
        x = layers.Dropout(0.2)(x)
    return keras.Model(images, _classify(x, num_classes), name="mlp")


@register("simple-cnn")
def simple_cnn(image_shape, num_classes):
    """Baseline: three 3x3 conv (64) + max-pool blocks, dense 64-32."""
    images, x = _inputs(image_shape)
    for _ in range(3):
        x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dense(32, activation="relu")(x)
    return keras.Model(images, _classify(x, num_classes), name="simple_cnn")


@register("lc-cnn")
def lc_cnn(image_shape, num_classes):
    """Baseline: Gaussian dropout, a locally connected 4x4 layer, conv 16, average pooling."""
    from kaggle_digits.models.layers import LocallyConnected2D

    images, x = _inputs(image_shape)
    x = layers.GaussianDropout(0.1)(x)
    x = LocallyConnected2D(8, 4, strides=2)(x)  # 28x28 -> 13x13
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    return keras.Model(images, _classify(x, num_classes), name="lc_cnn")


# --- strong members for the ensemble ----------------------------------------------------


@register("tiny-cnn")
def tiny_cnn(image_shape, num_classes):
    """The quick preset's net: a strided 5x5 conv straight to 14x14, two small conv blocks.

    About a third of the multiply-adds of `fast-cnn`, and no full-resolution feature maps."""
    images, x = _inputs(image_shape)
    x = _conv_bn(x, 32, 5, strides=2)
    x = _conv_bn(x, 32, 3)
    x = layers.MaxPooling2D(2)(x)
    x = _conv_bn(x, 64, 3)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(128, activation="relu")(x)
    return keras.Model(images, _classify(x, num_classes), name="tiny_cnn")


@register("fast-cnn")
def fast_cnn(image_shape, num_classes):
    """Fast on a CPU: early strided 3x3 convs, so most work is at 14x14 and 7x7.

    About two thirds of the multiply-adds of `strided-cnn`, and far less memory traffic."""
    images, x = _inputs(image_shape)
    x = _conv_bn(x, 32, 3)
    x = _conv_bn(x, 32, 3, strides=2)
    x = _conv_bn(x, 64, 3)
    x = _conv_bn(x, 64, 3, strides=2)
    x = layers.Dropout(0.3)(x)
    x = _conv_bn(x, 128, 3)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(images, _classify(x, num_classes), name="fast_cnn")


@register("strided-cnn")
def strided_cnn(image_shape, num_classes):
    """Batch-normalised conv stacks, strided 5x5 convs in place of pooling.

    The member of the best public Digit Recognizer ensembles."""
    images, x = _inputs(image_shape)
    for filters in (32, 64):
        x = _conv_bn(x, filters, 3, padding="valid")
        x = _conv_bn(x, filters, 3, padding="valid")
        x = _conv_bn(x, filters, 5, strides=2)
        x = layers.Dropout(0.4)(x)
    x = _conv_bn(x, 128, 4, padding="valid")
    x = layers.Flatten()(x)
    x = layers.Dropout(0.4)(x)
    return keras.Model(images, _classify(x, num_classes), name="strided_cnn")


@register("vgg-bn")
def vgg_bn(image_shape, num_classes):
    """Two VGG blocks (conv-conv-maxpool) with batch norm and a wide dense head."""
    images, x = _inputs(image_shape)
    for filters in (32, 64):
        x = _conv_bn(x, filters, 3)
        x = _conv_bn(x, filters, 3)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, use_bias=False)(x)
    x = _batch_norm()(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.4)(x)
    return keras.Model(images, _classify(x, num_classes), name="vgg_bn")


def _residual_block(x, filters: int, strides: int = 1):
    shortcut = x
    y = _conv_bn(x, filters, 3, strides=strides)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
    y = _batch_norm()(y)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False)(shortcut)
        shortcut = _batch_norm()(shortcut)
    return layers.Activation("relu")(layers.Add()([y, shortcut]))


@register("resnet")
def resnet(image_shape, num_classes):
    """A small residual net: 28x28x32 -> 14x14x64 -> 7x7x128, global average pooling."""
    images, x = _inputs(image_shape)
    x = _conv_bn(x, 32, 3)
    x = _residual_block(x, 32)
    x = _residual_block(x, 64, strides=2)
    x = _residual_block(x, 128, strides=2)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(images, _classify(x, num_classes), name="resnet")
