import functools
import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.algorithms import MAML, adapt_and_predict
from tfmeta.layers import MetaBatchNormalization, MetaGroupNormalization, MetaLayerNormalization
from tfmeta.layers.batch_normalization import batch_normalize

def test_normalizes_each_feature_with_batch_moments_in_training_and_inference():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=[16, 5, 5, 4]).astype(np.float32)
    layer = MetaBatchNormalization()
    for training in (True, False):
        y = layer(x, training=training).numpy()
        np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
        np.testing.assert_allclose(y.var(axis=(0, 1, 2)), 1.0, atol=1e-3)
    assert layer.non_trainable_weights == []


def test_fused_float32_path_equals_the_plain_float64_formula():
    rng = np.random.default_rng(1)
    x = rng.normal(size=[6, 3, 3, 5])
    gamma, beta = rng.normal(size=[5]), rng.normal(size=[5])
    fused = batch_normalize(tf.constant(x, tf.float32), tf.constant(gamma, tf.float32),
                            tf.constant(beta, tf.float32), 1e-3)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(fused, (x - mean) / np.sqrt(var + 1e-3) * gamma + beta, atol=1e-5)
    plain = batch_normalize(tf.constant(x), tf.constant(gamma), tf.constant(beta), 1e-3)
    np.testing.assert_allclose(plain, (x - mean) / np.sqrt(var + 1e-3) * gamma + beta, atol=1e-12)


def test_channels_first_axis_equals_channels_last_on_transposed_inputs():
    x = np.random.default_rng(2).normal(size=[4, 3, 5, 5]).astype(np.float32)
    first = MetaBatchNormalization(axis=1)(x).numpy()
    last = MetaBatchNormalization(axis=-1)(np.transpose(x, [0, 2, 3, 1])).numpy()
    np.testing.assert_allclose(first, np.transpose(last, [0, 3, 1, 2]), atol=1e-5)


def small_conv_net(norm, dtype):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 1), dtype=dtype)
    x = keras.layers.Conv2D(3, 3, strides=2, padding="same", dtype=dtype)(inputs)
    x = norm(dtype=dtype)(x)
    x = keras.layers.Activation("softplus", dtype=dtype)(x)
    x = keras.layers.Flatten(dtype=dtype)(x)
    return keras.Model(inputs, keras.layers.Dense(3, dtype=dtype)(x))


def meta_loss(model, params, dtype, steps=2):
    """MAML's query loss after `steps` inner steps."""
    rng = np.random.default_rng(4)
    episode = {
        "support_x": tf.constant(rng.normal(size=[6, 6, 6, 1]), dtype),
        "support_y": tf.constant([0, 1, 2, 0, 1, 2]),
        "query_x": tf.constant(rng.normal(size=[9, 6, 6, 1]), dtype),
    }
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)
    non_trainable = [v.value for v in model.non_trainable_variables]
    predictions, _ = adapt_and_predict(model, params, non_trainable, episode, loss,
                                       [0.5] * len(params), steps)
    return loss(tf.constant([0, 1, 2] * 3), predictions)


def directional_meta_gradient(norm, dtype):
    """(analytic in `dtype`, float64 central difference) derivative along a random direction."""
    model = small_conv_net(norm, dtype)
    params = [v.value for v in model.trainable_variables]
    direction = [np.random.default_rng(5).normal(size=p.shape) for p in params]
    with tf.GradientTape() as tape:
        tape.watch(params)
        loss = meta_loss(model, params, dtype)
    analytic = sum(np.sum(g.numpy() * d) for g, d in zip(tape.gradient(loss, params), direction))

    model64 = small_conv_net(norm, "float64")
    params64 = [tf.constant(p.numpy(), tf.float64) for p in params]
    h = 1e-5

    def shifted(sign):
        return meta_loss(model64, [p + sign * h * d for p, d in zip(params64, direction)], "float64")

    numeric = (shifted(1) - shifted(-1)) / (2 * h)
    return float(analytic), float(numeric)


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-6), ("float32", 1e-3)])
def test_second_order_meta_gradient_through_meta_batch_norm_is_exact(dtype, tolerance):
    analytic, numeric = directional_meta_gradient(MetaBatchNormalization, dtype)
    assert abs(analytic - numeric) <= tolerance * abs(numeric)


def test_stock_batch_norm_gets_the_second_order_meta_gradient_wrong():
    """Why MAML refuses keras.layers.BatchNormalization in second-order mode."""
    analytic, numeric = directional_meta_gradient(keras.layers.BatchNormalization, "float64")
    relative_error = abs(analytic - numeric) / abs(numeric)
    print(f"stock BatchNormalization: relative error of the meta-gradient {relative_error:.1%}")
    assert relative_error > 1e-3


def test_config_round_trip_and_argument_checks():
    layer = MetaBatchNormalization(axis=1, epsilon=1e-4, center=False, name="bn")
    clone = MetaBatchNormalization.from_config(layer.get_config())
    assert (clone.axis, clone.epsilon, clone.center, clone.scale) == (1, 1e-4, False, True)
    with pytest.raises(ValueError, match="axis.*received axis=.*1.5"):
        MetaBatchNormalization(axis=1.5)
    with pytest.raises(ValueError, match="epsilon.*received epsilon=0"):
        MetaBatchNormalization(epsilon=0)
    with pytest.raises(ValueError, match="axis=3 is out of range"):
        MetaBatchNormalization(axis=3)(np.zeros([2, 3], np.float32))


# Every stock Keras layer whose statistics go through tf.nn.moments (keras.ops.moments on TensorFlow):
# found with `grep -rn "moments(" keras/src/layers` (Keras 3.15.1).
STOCK_INEXACT = {
    "BatchNormalization": keras.layers.BatchNormalization,
    # Over all of an example's features; over this net's 3 channels alone, the error happened to be 7e-7.
    "LayerNormalization": functools.partial(keras.layers.LayerNormalization, axis=[1, 2, 3]),
    "GroupNormalization": functools.partial(keras.layers.GroupNormalization, groups=3),
}
EXACT = {
    "MetaLayerNormalization": functools.partial(MetaLayerNormalization, axis=[1, 2, 3]),
    "MetaLayerNormalization-channels": MetaLayerNormalization,
    "MetaGroupNormalization": functools.partial(MetaGroupNormalization, groups=3),
    "MetaGroupNormalization-1-group": functools.partial(MetaGroupNormalization, groups=1),
}


@pytest.mark.parametrize("name", STOCK_INEXACT)
def test_stock_normalizations_get_the_second_order_meta_gradient_wrong(name):
    analytic, numeric = directional_meta_gradient(STOCK_INEXACT[name], "float64")
    relative_error = abs(analytic - numeric) / abs(numeric)
    print(f"{name}: relative error of the meta-gradient {relative_error:.1%}")
    assert relative_error > 1e-3


@pytest.mark.parametrize("name", EXACT)
def test_tfmeta_layer_and_group_normalization_are_exact(name):
    analytic, numeric = directional_meta_gradient(EXACT[name], "float64")
    assert abs(analytic - numeric) <= 1e-6 * abs(numeric)


@pytest.mark.parametrize("stock, exact, kwargs", [
    (keras.layers.LayerNormalization, MetaLayerNormalization, {}),
    (keras.layers.LayerNormalization, MetaLayerNormalization, {"axis": [1, 3], "center": False}),
    (keras.layers.GroupNormalization, MetaGroupNormalization, {"groups": 2}),
    (keras.layers.GroupNormalization, MetaGroupNormalization, {"groups": 4, "axis": 1, "scale": False}),
])
def test_exact_layers_compute_what_the_keras_layers_compute(stock, exact, kwargs):
    x = np.random.default_rng(6).normal(2.0, 3.0, size=[4, 4, 5, 8]).astype(np.float32)
    keras_layer, tfmeta_layer = stock(**kwargs), exact(**kwargs)
    keras_layer.build(x.shape)
    tfmeta_layer.build(x.shape)
    keras_layer.set_weights([np.random.default_rng(7).normal(size=w.shape) for w in keras_layer.get_weights()])
    tfmeta_layer.set_weights(keras_layer.get_weights())
    np.testing.assert_allclose(tfmeta_layer(x), keras_layer(x), atol=2e-5)
    assert type(exact.from_config(tfmeta_layer.get_config())) is exact


class Block(keras.layers.Layer):
    """A custom layer that holds a normalization layer (as transformer blocks do)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm = keras.layers.LayerNormalization(name="hidden_ln")

    def call(self, x):
        return self.norm(x)


@pytest.mark.parametrize("layer, replacement", [
    (lambda: keras.layers.BatchNormalization(name="bad"), "MetaBatchNormalization"),
    (lambda: keras.layers.LayerNormalization(name="bad"), "MetaLayerNormalization"),
    (lambda: keras.layers.GroupNormalization(groups=2, name="bad"), "MetaGroupNormalization"),
    (lambda: keras.layers.TimeDistributed(keras.layers.LayerNormalization(name="bad")), "MetaLayerNormalization"),
    (lambda: Block(), "MetaLayerNormalization"),
])
def test_maml_refuses_inexact_normalizations_in_second_order_and_names_the_exact_layer(layer, replacement):
    inputs = keras.Input((3, 4))
    backbone = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(layer()(inputs))))
    with pytest.raises(ValueError, match=rf"stopped gradient.*\['(bad|hidden_ln)'\].*tfmeta.layers.{replacement}"):
        MAML(backbone)
    MAML(backbone, first_order=True)  # first-order gradients are exact


def test_the_refusal_of_batch_normalization_says_how_its_replacement_differs():
    inputs = keras.Input((4,))
    backbone = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.BatchNormalization(name="bad")(inputs)))
    with pytest.raises(ValueError) as refusal:
        MAML(backbone)
    message = str(refusal.value)
    assert "equivalent" not in message.replace("not an equivalent", "")
    # What it says differs does: no moving statistics (inference uses the batch's moments), gamma and beta only,
    # and the Keras arguments it names are not MetaBatchNormalization's.
    assert "inference too, without moving mean and variance" in message
    layer = MetaBatchNormalization()
    x = np.random.default_rng(0).normal(2.0, 3.0, size=[16, 4]).astype("float32")
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + layer.epsilon)
    np.testing.assert_allclose(layer(x, training=False), expected, rtol=1e-4, atol=1e-5)
    assert "its only weights are gamma and beta" in message
    assert sorted(w.name for w in layer.weights) == ["beta", "gamma"]
    keras_only = ["beta_initializer", "gamma_regularizer", "beta_constraint", "synchronized"]
    assert "not the initializers, regularizers, constraints or synchronized" in message
    accepted = inspect.signature(MetaBatchNormalization.__init__).parameters
    assert not set(keras_only) & set(accepted)
    assert set(keras_only) <= set(inspect.signature(keras.layers.BatchNormalization.__init__).parameters)


def test_maml_accepts_the_exact_layers():
    inputs = keras.Input((3, 4))
    x = MetaLayerNormalization()(inputs)
    x = MetaGroupNormalization(groups=2)(x)
    x = MetaBatchNormalization()(x)
    MAML(keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x))))
