"""Layers of our own, registered so that saved models holding them load again."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kaggle_digits")
class LocallyConnected2D(layers.Layer):
    """A convolution whose weights are not shared: every output position has its own kernel
    (Keras 2's LocallyConnected2D with 'valid' padding, which Keras 3 dropped)."""

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = filters, kernel_size, strides

    def build(self, input_shape) -> None:
        height, width, channels = input_shape[1:]
        self.out_height = (height - self.kernel_size) // self.strides + 1
        self.out_width = (width - self.kernel_size) // self.strides + 1
        positions = self.out_height * self.out_width
        patch = self.kernel_size * self.kernel_size * channels
        self.kernel = self.add_weight(
            shape=(positions, patch, self.filters), initializer="glorot_uniform", name="kernel"
        )
        self.bias = self.add_weight(
            shape=(positions, self.filters), initializer="zeros", name="bias"
        )

    def call(self, inputs):
        # patches[b, i, j, :] is the (kernel, kernel, channels) window at output (i, j),
        # flattened in (row, column, channel) order.
        patches = ops.image.extract_patches(
            inputs, self.kernel_size, strides=self.strides, padding="valid"
        )
        patches = ops.reshape(patches, (-1, self.out_height * self.out_width, patches.shape[-1]))
        outputs = ops.einsum("bpk,pkf->bpf", patches, self.kernel) + self.bias
        return ops.reshape(outputs, (-1, self.out_height, self.out_width, self.filters))

    def compute_output_shape(self, input_shape):
        height, width = input_shape[1:3]
        out_height = (height - self.kernel_size) // self.strides + 1
        out_width = (width - self.kernel_size) // self.strides + 1
        return (input_shape[0], out_height, out_width, self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides)
        return config
