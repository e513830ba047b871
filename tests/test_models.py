import itertools

import keras
import numpy as np
import pytest

from kaggle_digits.models.architectures import ARCHITECTURES, build_model, deskewed
from kaggle_digits.models.layers import Deskew, LocallyConnected2D


def test_locally_connected_layer_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 7, 6, 3)).astype("float32")
    layer = LocallyConnected2D(filters=4, kernel_size=3, strides=2)
    outputs = keras.ops.convert_to_numpy(layer(images))
    kernel = keras.ops.convert_to_numpy(layer.kernel)  # (positions, 3*3*3, filters)
    bias = keras.ops.convert_to_numpy(layer.bias)
    assert outputs.shape == (2, 3, 2, 4)
    expected = np.zeros_like(outputs)
    for i in range(3):
        for j in range(2):
            window = images[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :].reshape(2, -1)
            position = i * 2 + j
            expected[:, i, j, :] = window @ kernel[position] + bias[position]
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)


def test_locally_connected_weights_are_not_shared():
    layer = LocallyConnected2D(filters=2, kernel_size=2)
    layer.build((None, 4, 4, 1))
    assert tuple(layer.kernel.shape) == (9, 4, 2)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_architecture_builds_trains_a_step_and_round_trips(name, tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(16, 28, 28, 1), dtype=np.uint8)
    labels = keras.utils.to_categorical(np.arange(16) % 10, 10)
    model = build_model(name, (28, 28, 1), 10)
    assert model.inputs[0].dtype == "uint8"
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(images, labels)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    probs = model.predict(images, verbose=0)
    assert probs.shape == (16, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), probs, rtol=1e-4, atol=1e-6)


def slant_of(images: np.ndarray) -> np.ndarray:
    """Columns moved per row down the ink's principal axis, one an image."""
    ink = images[..., 0].astype(float)
    rows, columns = np.mgrid[: ink.shape[1], : ink.shape[2]]
    total = ink.sum(axis=(1, 2))
    row_centre = (ink * rows).sum(axis=(1, 2)) / total
    column_centre = (ink * columns).sum(axis=(1, 2)) / total
    row_offsets = rows - row_centre[:, None, None]
    covariance = (ink * row_offsets * (columns - column_centre[:, None, None])).sum(axis=(1, 2))
    return covariance / (ink * row_offsets**2).sum(axis=(1, 2))


def test_deskew_stands_a_slanted_stroke_upright_where_it_was():
    images = np.zeros((3, 28, 28, 1), np.uint8)
    for row in range(6, 22):
        images[0, row, 20 - row // 2 : 22 - row // 2] = 255  # a "/" leaning right
        images[1, row, 6 + row // 2 : 8 + row // 2] = 200  # a backslash leaning left
        images[2, row, 13:15] = 255  # upright already
    straightened = keras.ops.convert_to_numpy(Deskew()(images))
    assert straightened.dtype == np.uint8 and straightened.shape == images.shape
    np.testing.assert_allclose(slant_of(images)[:2], [-0.5, 0.5], atol=0.05)
    np.testing.assert_allclose(slant_of(straightened), 0, atol=0.02)
    np.testing.assert_array_equal(straightened[2], images[2])  # nothing to straighten
    columns = np.arange(28)
    centre_column = (images[..., 0].sum(axis=1) * columns).sum(axis=1) / images.sum(axis=(1, 2, 3))
    centre_after = (straightened[..., 0].sum(axis=1) * columns).sum(axis=1)
    centre_after = centre_after / straightened.sum(axis=(1, 2, 3))
    np.testing.assert_allclose(centre_after, centre_column, atol=0.3)  # where the stroke was
    blank = keras.ops.convert_to_numpy(Deskew()(np.zeros((1, 28, 28, 1), np.uint8)))
    assert not blank.any()


def test_a_deskewed_model_saves_and_loads_with_its_layer(tmp_path):
    images = np.random.default_rng(2).integers(0, 256, (8, 28, 28, 1), dtype=np.uint8)
    model = deskewed(build_model("tiny-cnn", (28, 28, 1), 10))
    assert isinstance(model.layers[1], Deskew) and model.inputs[0].dtype == "uint8"
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.layers[1], Deskew)
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6
    )


def test_unknown_architecture():
    with pytest.raises(KeyError, match="unknown architecture 'nope'"):
        build_model("nope", (28, 28, 1), 10)


def passes_of(batches, count: int) -> list[list[np.ndarray]]:
    """The first `count` passes of ten rows in batches of 4 (three batches a pass)."""
    taken = [np.asarray(x) for x, _ in itertools.islice(iter(batches), 3 * count)]
    return [taken[3 * index : 3 * index + 3] for index in range(count)]


@pytest.mark.parametrize("feed", ["tensorflow", "numpy"])
def test_training_batches_cover_every_row_each_pass_reshuffled_for_ever(feed):
    from kaggle_digits.training.feeding import shuffled_batches, tf_batches

    rows = np.arange(10)

    def batches():
        if feed == "tensorflow":
            return tf_batches((rows, rows * 2), 4, shuffle_seed=7)
        return shuffled_batches(rows, rows * 2, 4, seed=7)

    passes = passes_of(batches(), 3)
    assert [len(batch) for batch in passes[2]] == [4, 4, 2]  # each pass ends with its own
    orders = [np.concatenate(one_pass) for one_pass in passes]
    assert all(sorted(order) == list(rows) for order in orders)
    assert list(orders[0]) != list(orders[1])  # a new order every pass
    again = np.concatenate(passes_of(batches(), 1)[0])
    assert list(again) == list(orders[0])  # the same seed, the same orders
    if feed == "tensorflow":
        assert batches().options().autotune.enabled is False  # nothing to wait for at teardown
        in_order = np.concatenate([x.numpy() for x in tf_batches((rows,), 4)])
        assert list(in_order) == list(rows)  # unshuffled for prediction


def test_a_fraction_of_a_pass_is_spread_over_whole_epochs_of_equal_steps():
    from kaggle_digits.options.config import CVConfig

    assert CVConfig(epochs=3, batch_size=100).epoch_steps(1000) == (3, 10)  # a pass an epoch
    assert CVConfig(epochs=2.5, batch_size=100).epoch_steps(1000) == (3, 9)  # 25 steps in 27
    assert CVConfig(epochs=0.1 * 30, batch_size=100).epoch_steps(1000) == (3, 10)


def test_shifted_moves_the_image_and_fills_the_gap_from_its_edge():
    from kaggle_digits.training.fit import shifted

    image = np.zeros((1, 5, 5, 1), np.uint8)
    image[0, 2, 2, 0] = 9  # a dot in the middle, a blank border
    image[0, :, 0, 0] = 1  # and a left edge
    down_right = shifted(image, 1, 2)
    assert down_right[0, 3, 4, 0] == 9 and down_right.sum() == 9 + 5 * 3  # edge column spreads
    up_left = shifted(image, -2, -1)
    assert up_left[0, 0, 1, 0] == 9 and up_left[0, :, 0].sum() == 0  # the edge moved out
    assert shifted(image, 0, 0).tolist() == image.tolist()


def test_tta_averages_the_image_and_its_first_shifted_copies():
    from kaggle_digits.data.views import TTA_SHIFTS
    from kaggle_digits.options.config import CVConfig
    from kaggle_digits.training.feeding import predict_batches
    from kaggle_digits.training.fit import predict_probs, shifted

    model = build_model("mlp", (28, 28, 1), 10)  # untrained: each view gives other outputs
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28, 1), dtype=np.uint8)
    views = [images] + [shifted(images, *shift) for shift in TTA_SHIFTS[:3]]
    expected = np.mean([predict_batches(model, view) for view in views], axis=0)
    np.testing.assert_allclose(predict_probs(model, images, CVConfig(tta=3)), expected, atol=1e-6)
    plain = predict_probs(model, images, CVConfig(tta=0))
    assert np.abs(plain - expected).max() > 1e-4
    np.testing.assert_allclose(plain, predict_batches(model, images), atol=1e-6)


def test_rotated_turns_the_image_anticlockwise_about_its_centre():
    from kaggle_digits.training.fit import rotated

    image = np.zeros((1, 28, 28, 1), np.uint8)
    image[0, 13, 20, 0] = 200  # right of the centre (13.5, 13.5)
    turned = rotated(image, 90.0)
    assert turned.dtype == np.uint8 and turned.shape == image.shape
    row, column = np.unravel_index(turned[0, :, :, 0].argmax(), (28, 28))
    assert (row, column) == (7, 13)  # now above it
    assert rotated(image, 0.0).tolist() == image.tolist()
    slightly = rotated(image, 4.0)  # resampled: the dot spreads over its neighbours
    assert 0 < slightly.max() < 200 and (slightly > 0).sum() > 1


def test_tta_can_average_rotated_copies_in_place_of_shifted_ones():
    from kaggle_digits.data.views import TTA_ROTATIONS
    from kaggle_digits.options.config import CVConfig
    from kaggle_digits.training.feeding import predict_batches
    from kaggle_digits.training.fit import predict_probs, rotated

    model = build_model("mlp", (28, 28, 1), 10)
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28, 1), dtype=np.uint8)
    views = [images] + [rotated(images, degrees) for degrees in TTA_ROTATIONS[:2]]
    expected = np.mean([predict_batches(model, view) for view in views], axis=0)
    config = CVConfig(tta=2, tta_views="rotations")
    np.testing.assert_allclose(predict_probs(model, images, config), expected, atol=1e-6)
    shifts = predict_probs(model, images, CVConfig(tta=2))
    assert np.abs(shifts - expected).max() > 1e-4


def test_tta_beyond_the_views_is_refused():
    from kaggle_digits.base.errors import UserError
    from kaggle_digits.data.views import TTA_ROTATIONS, TTA_SHIFTS
    from kaggle_digits.options.presets import preset_config

    assert preset_config("quick", tta=len(TTA_SHIFTS)).tta == len(TTA_SHIFTS)
    with pytest.raises(UserError, match="--tta must be between 0 and 12"):
        preset_config("quick", tta=len(TTA_SHIFTS) + 1)
    rotations = preset_config("quick", tta=len(TTA_ROTATIONS), tta_views="rotations")
    assert rotations.tta == 6
    with pytest.raises(UserError, match="--tta must be between 0 and 6"):
        preset_config("quick", tta=7, tta_views="rotations")
    mirrored = preset_config("quick", tta=25, tta_views="flips+shifts", flip_horizontal=True)
    assert len(mirrored.views) == 1 + 12 * 2
    with pytest.raises(UserError, match="--tta-views: 'turns' is not kinds of view"):
        preset_config("quick", tta_views="turns")


def test_flipped_views_are_refused_where_the_training_flips_none():
    from kaggle_digits.base.errors import UserError
    from kaggle_digits.options.presets import preset_config

    with pytest.raises(UserError, match="mirrors the test images, but the training flips none"):
        preset_config("quick", tta_views="flips")
    assert preset_config("quick", tta=1, tta_views="flips", flip_vertical=True).tta == 1


def test_views_come_mirrored_first_then_each_move_and_its_mirror():
    from kaggle_digits.data.views import TTA_ROTATIONS, TTA_SHIFTS, views_of

    horizontal, vertical, both = ("flip", "horizontal"), ("flip", "vertical"), ("flip", "both")
    one_flip = views_of("flips+shifts", True, False)
    first_shift = ("shift", TTA_SHIFTS[0])
    assert one_flip[:3] == ((horizontal,), (first_shift,), (first_shift, horizontal))
    assert views_of("flips", True, True) == ((horizontal,), (vertical,), (both,))
    assert views_of("shifts", True, True) == tuple((("shift", s),) for s in TTA_SHIFTS)
    mixed = views_of("shifts+rotations", False, False)
    assert mixed[:2] == ((first_shift,), (("rotate", TTA_ROTATIONS[0]),))
    assert len(mixed) == len(TTA_SHIFTS) + len(TTA_ROTATIONS)


def test_tta_can_average_mirrored_copies_where_flips_are_allowed():
    from kaggle_digits.options.config import CVConfig
    from kaggle_digits.training.feeding import predict_batches
    from kaggle_digits.training.fit import flipped, predict_probs, shifted

    model = build_model("mlp", (28, 28, 1), 10)
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28, 1), dtype=np.uint8)
    mirrored = images[:, :, ::-1]
    assert flipped(images, "horizontal").tolist() == mirrored.tolist()
    assert flipped(images, "both").tolist() == images[:, ::-1, ::-1].tolist()
    views = [images, mirrored, shifted(images, 1, 0), flipped(shifted(images, 1, 0), "horizontal")]
    expected = np.mean([predict_batches(model, view) for view in views], axis=0)
    config = CVConfig(tta=3, tta_views="flips+shifts", flip_horizontal=True)
    np.testing.assert_allclose(predict_probs(model, images, config), expected, atol=1e-6)


def test_augmentation_flips_only_where_the_config_allows_it():
    from kaggle_digits.options.config import CVConfig
    from kaggle_digits.training.fit import augmentation

    def layer_names(config):
        augment = augmentation(config, seed=1)
        return [type(layer).__name__ for layer in augment.layers] if augment else None

    digits = ["RandomRotation", "RandomZoom", "RandomTranslation"]
    assert layer_names(CVConfig()) == digits
    assert layer_names(CVConfig(flip_horizontal=True)) == ["RandomFlip", *digits]
    both = augmentation(CVConfig(flip_horizontal=True, flip_vertical=True), seed=1)
    assert both.layers[0].mode == "horizontal_and_vertical"
    assert layer_names(CVConfig(rotation_degrees=0, zoom=0)) == ["RandomTranslation"]
    assert layer_names(CVConfig(augment=False, flip_horizontal=True)) is None


def test_keep_hardest_keeps_a_share_of_the_rows_weighted_to_the_hardest():
    from kaggle_digits.training.hard_rows import keep_hardest

    losses = np.random.default_rng(0).permutation(30000).astype(float)
    kept = keep_hardest(losses, 2.0, np.random.default_rng(1))
    assert len(kept) == pytest.approx(30000 / 3, rel=0.03)  # 1 / (1 + power)
    percentiles = (losses[kept] + 1) / 30000
    assert percentiles.mean() == pytest.approx(0.75, abs=0.01)  # p^2-weighted: 3/4
    assert np.mean(percentiles < 0.1) < 0.002  # the easiest tenth: kept 0.3% of the time
    assert len(keep_hardest(losses, 0.0, np.random.default_rng(1))) == 30000


def confident_model():
    """Certain of class 3 where the first pixel is lit, uniform where it is dark."""
    images = keras.Input((28, 28, 1), dtype="uint8")
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(images))
    probs = keras.layers.Dense(10, activation="softmax")(flat)
    model = keras.Model(images, probs)
    kernel = np.zeros((784, 10), dtype="float32")
    kernel[0, 3] = 100.0
    model.layers[-1].set_weights([kernel, np.zeros(10, dtype="float32")])
    return model


def test_hard_rows_train_each_epoch_on_the_rows_the_model_gets_wrong():
    from kaggle_digits.training.hard_rows import HardRows

    images = np.zeros((400, 28, 28, 1), dtype=np.uint8)
    images[::2, 0, 0, 0] = 255  # even rows: easy (loss ~0); odd rows: loss ln 10
    labels = np.full(400, 3)

    def epochs_of_rows(seed: int) -> list[np.ndarray]:
        chooser = HardRows(confident_model(), images, labels, 2.0, seed)
        chooser.set_params({"epochs": 3})
        chooser.on_train_begin()
        # the row numbers in place of the targets show which rows each batch holds
        batches = chooser.batches(np.arange(400), 20, steps_per_epoch=5)
        epochs = []
        for epoch in range(3):
            if epoch:
                chooser.on_epoch_end(epoch - 1)
            epochs.append(np.concatenate([next(batches)[1] for _ in range(5)]))
        chooser.on_train_end()
        assert next(batches, None) is None  # the batches end with the training
        return epochs

    epochs = epochs_of_rows(seed=5)
    assert all(len(rows) == 100 for rows in epochs)  # steps_per_epoch batches an epoch
    assert np.mean(epochs[0] % 2) == pytest.approx(0.5, abs=0.15)  # at random at first
    for later in epochs[1:]:
        assert np.mean(later % 2) > 0.75  # then mostly the hard (odd) rows: 7/12 against 1/12
    assert all((a == b).all() for a, b in zip(epochs, epochs_of_rows(seed=5), strict=True))


def test_select_hard_trains_shorter_epochs_the_same_way_each_time():
    from kaggle_digits.options.config import CVConfig
    from kaggle_digits.training.callbacks import BatchClock
    from kaggle_digits.training.feeding import predict_batches
    from kaggle_digits.training.fit import train_model

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (300, 28, 28, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, 300)
    config = CVConfig(members=("tiny-cnn",), epochs=3, batch_size=25, select_hard=2)
    assert config.epoch_steps(300) == (3, 4)  # a third of the rows an epoch

    def trained():
        clock = BatchClock()
        model, curves = train_model("tiny-cnn", images, labels, config, 10, 3, callbacks=[clock])
        assert len(clock.batch_ends) == 12 and len(curves["loss"]) == 3
        return predict_batches(model, images[:50])

    np.testing.assert_allclose(trained(), trained(), atol=1e-6)


def test_hard_rows_let_keras_read_two_batches_of_a_one_step_epoch_before_training():
    from kaggle_digits.training.hard_rows import HardRows

    images, labels = np.zeros((40, 28, 28, 1), dtype=np.uint8), np.zeros(40, dtype=int)
    chooser = HardRows(confident_model(), images, labels, 2.0, seed=0)
    batches = chooser.batches(np.arange(40), 10, steps_per_epoch=1)
    peeked = [next(batches)[1] for _ in range(2)]  # as Keras does with a generator: no wait
    assert all(len(rows) == 10 for rows in peeked)


def test_a_mixed_bfloat16_net_computes_in_bfloat16_keeps_float32_weights_and_saves_so(tmp_path):
    from kaggle_digits.options.config import CVConfig
    from kaggle_digits.training.feeding import predict_batches
    from kaggle_digits.training.fit import train_model

    model = build_model("tiny-cnn", (28, 28, 1), 10, precision="mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"  # the global policy is put back
    assert {layer.compute_dtype for layer in convolutions_of(model)} == {"bfloat16"}
    assert {weight.dtype for weight in model.weights} == {"float32"}
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (64, 28, 28, 1), dtype=np.uint8)
    labels = np.arange(64) % 10
    config = CVConfig(epochs=1, batch_size=16, precision="mixed_bfloat16")
    trained, _ = train_model("tiny-cnn", images, labels, config, 10, seed=1)
    probs = predict_batches(trained, images)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    trained.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert {layer.compute_dtype for layer in convolutions_of(loaded)} == {"bfloat16"}
    np.testing.assert_allclose(predict_batches(loaded, images), probs, atol=1e-6)


def convolutions_of(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def test_auto_is_not_a_precision_a_net_can_be_built_in():
    with pytest.raises(ValueError, match="auto"):
        build_model("mlp", (28, 28, 1), 10, precision="auto")
    assert keras.config.dtype_policy().name == "float32"


def test_a_mixed_float16_net_trains_with_its_loss_scaled_and_saves_so(tmp_path, monkeypatch):
    from kaggle_digits.options.config import CVConfig
    from kaggle_digits.training.feeding import predict_batches
    from kaggle_digits.training.fit import train_model

    wrapped = []

    class Spy(keras.optimizers.LossScaleOptimizer):
        def __init__(self, inner, **kwargs):
            wrapped.append(inner)
            super().__init__(inner, **kwargs)

    monkeypatch.setattr(keras.optimizers, "LossScaleOptimizer", Spy)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (64, 28, 28, 1), dtype=np.uint8)
    labels = np.arange(64) % 10
    config = CVConfig(epochs=1, batch_size=16, precision="mixed_float16", ema=0.9)
    trained, history = train_model("tiny-cnn", images, labels, config, 10, seed=1)
    assert len(wrapped) == 1 and np.isfinite(history["loss"]).all()
    assert {layer.compute_dtype for layer in convolutions_of(trained)} == {"float16"}
    probs = predict_batches(trained, images)
    assert probs.dtype == np.float32 and np.isfinite(probs).all()
    trained.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(predict_batches(loaded, images), probs, atol=1e-3)
