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


@keras.saving.register_keras_serializable(package="kaggle_digits")
class Deskew(layers.Layer):
    """Straightens slanted handwriting: shears each image along its rows so that its ink's
    principal axis stands upright, about the ink's centre of mass (so the digit stays where
    it was). The classic MNIST normalisation (LeCun et al., 1998); images in, images of the
    same dtype out, so it can stand in front of any architecture. Multi-channel images are
    sheared by the slant of their mean over channels."""

    def call(self, images):
        pixels = ops.cast(images, "float32")
        ink = ops.mean(pixels, axis=-1)
        height, width = ink.shape[1], ink.shape[2]
        rows = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1))
        columns = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width))
        total = ops.sum(ink, axis=(1, 2)) + 1e-6  # a blank image is left as it is
        centre_row = ops.sum(ink * rows, axis=(1, 2)) / total
        centre_column = ops.sum(ink * columns, axis=(1, 2)) / total
        row_offsets = rows - centre_row[:, None, None]
        column_offsets = columns - centre_column[:, None, None]
        row_variance = ops.sum(ink * row_offsets**2, axis=(1, 2)) / total
        covariance = ops.sum(ink * row_offsets * column_offsets, axis=(1, 2)) / total
        slant = covariance / (row_variance + 1e-6)
        # output pixel (row r, column c) reads input (r, c + slant * (r - centre_row))
        one, zero = ops.ones_like(slant), ops.zeros_like(slant)
        transform = ops.stack([one, slant, -slant * centre_row, zero, one, zero, zero, zero], 1)
        straightened = ops.image.affine_transform(pixels, transform, fill_mode="constant")
        if keras.backend.standardize_dtype(images.dtype) == "uint8":
            straightened = ops.clip(ops.round(straightened), 0, 255)
        return ops.cast(straightened, images.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="kaggle_digits")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras's BatchNormalization, computed on TensorFlow by its fused kernel
    (FusedBatchNormV3, the one Keras 2 used) where Keras 3 runs the moments and the
    normalisation as separate ops: a strided-cnn step 1.26x faster in mixed_bfloat16 on a
    CPU with AVX-512 BF16, none in float32 on an AVX2 one
    (docs/measurements.md#fused-batch-normalisation). The same weights, statistics and saved
    form, so a model trained with it loads and predicts under JAX and PyTorch, where Keras's
    own runs. Channels last, centred and scaled, no renorm or mask: else Keras's own. Used by
    the benchmarks (levers.py --batch-norm fused) until measured at full length."""

    def call(self, inputs, training=None, mask=None):
        last_axis = self.axis in (-1, len(inputs.shape) - 1)
        plain = self.center and self.scale and not self.renorm and mask is None
        if keras.backend.backend() != "tensorflow" or not (last_axis and plain):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        training = bool(training) and self.trainable
        flat = len(inputs.shape) == 2  # after a dense layer: one pixel of C channels
        images = tf.reshape(inputs, (-1, 1, 1, inputs.shape[-1])) if flat else inputs
        # the kernel takes float16/bfloat16 images with float32 statistics (the weights are
        # float32: Keras keeps them out of mixed precision's autocast)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            images,
            self.gamma.value,
            self.beta.value,
            mean=None if training else self.moving_mean.value,
            variance=None if training else self.moving_variance.value,
            epsilon=self.epsilon,
            is_training=training,
        )
        if training:
            # the kernel's batch variance is Bessel-corrected; Keras's moving one is not
            count = tf.cast(tf.size(images) // images.shape[-1], tf.float32)
            variance = variance * (count - 1) / count
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean.value * momentum + mean * (1 - momentum))
            self.moving_variance.assign(
                self.moving_variance.value * momentum + variance * (1 - momentum)
            )
        outputs = tf.reshape(outputs, tf.shape(inputs)) if flat else outputs
        return tf.cast(outputs, self.compute_dtype)
