"""models.layers.FusedBatchNormalization: Keras's batch normalisation through TensorFlow's
fused kernel computes what Keras's own does, and saves and loads as it does."""

import keras
import numpy as np
import pytest

from kaggle_digits.models.layers import FusedBatchNormalization


@pytest.fixture
def policy():
    yield
    keras.mixed_precision.set_dtype_policy("float32")


@pytest.mark.parametrize("precision, tolerance", [("float32", 1e-5), ("mixed_bfloat16", 1e-2)])
@pytest.mark.parametrize("shape", [(32, 7, 7, 16), (32, 64)])
def test_it_computes_what_keras_batch_normalization_does(policy, precision, tolerance, shape):
    keras.mixed_precision.set_dtype_policy(precision)
    images = np.random.default_rng(0).normal(2.0, 3.0, shape).astype("float32")
    plain = keras.layers.BatchNormalization(momentum=0.9)
    fused = FusedBatchNormalization(momentum=0.9)
    plain.build(shape)
    fused.build(shape)
    plain.gamma.assign(np.linspace(0.5, 1.5, shape[-1]).astype("float32"))
    fused.set_weights(plain.get_weights())
    for training in (True, True, False):  # two updates of the moving statistics, then use them
        expected = np.asarray(plain(images, training=training), "float32")
        got = np.asarray(fused(images, training=training), "float32")
        np.testing.assert_allclose(got, expected, atol=tolerance * 10, rtol=tolerance)
    for mine, theirs in zip(fused.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)  # Keras's own moving ones
    assert fused(images).dtype == plain(images).dtype


def test_a_model_holding_it_saves_and_loads(tmp_path):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, FusedBatchNormalization(momentum=0.9)(inputs))
    images = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype("float32")
    model(images, training=True)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.layers[-1], FusedBatchNormalization)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0))
