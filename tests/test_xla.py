"""Safety checks under XLA (`compile(jit_compile=True)`, Keras's "auto" on a GPU).

XLA compiles `tf.debugging.Assert` away. The steps record faults in a
variable and the Python code around each compiled function raises them, so
the checks hold with XLA as without. XLA on CPU is slow to compile: tiny
dense models, one compiled function each, reused by every check.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import conv_net, random_episodes

import tfmeta


def mlp(outputs):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,))
    x = keras.layers.Dense(4, activation="tanh")(inputs)
    return keras.Model(inputs, keras.layers.Dense(outputs)(x))


def episodes(tasks=2, ways=3):
    rng = np.random.default_rng(0)
    return {
        "support_x": rng.normal(size=[tasks, ways, 2]).astype(np.float32),
        "support_y": np.tile(np.arange(ways), [tasks, 1]).astype(np.int32),
        "query_x": rng.normal(size=[tasks, 2 * ways, 2]).astype(np.float32),
        "query_y": np.tile(np.repeat(np.arange(ways), 2), [tasks, 1]).astype(np.int32),
    }


MODELS = {
    "maml": (lambda: tfmeta.MAML(mlp(3), inner_lr=0.1),
             r"query_y holds a label outside \[0, ways=3\)"),
    "protonet": (lambda: tfmeta.PrototypicalNetwork(mlp(4)),
                 r"query_y holds a label outside \[0, ways\)"),
}


def state(model):
    return [v.numpy().copy() for v in [*model.variables, *model.optimizer.variables]]


@pytest.mark.parametrize("name", MODELS)
def test_non_finite_steps_and_bad_labels_fail_under_xla(name):
    build, label_message = MODELS[name]
    model = build()
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=True)
    assert model.jit_compile is True
    model.fit(tf.data.Dataset.from_tensors(episodes()).repeat(2), verbose=0)
    before = state(model)

    nan = episodes()
    nan["query_x"][0, 0, 0] = np.nan
    with pytest.raises(FloatingPointError, match=r"Non-finite meta-loss or gradient at training step 3 \(loss nan\)"):
        model.fit(tf.data.Dataset.from_tensors(nan), verbose=0)
    for old, new in zip(before, state(model)):
        np.testing.assert_array_equal(old, new)

    # train_on_batch skips fit's checks in Python: the step itself must refuse.
    bad = episodes()
    bad["query_y"][1, 0] = 7
    with pytest.raises(tf.errors.InvalidArgumentError, match=label_message):
        model.train_on_batch(bad)
    for old, new in zip(before, state(model)):
        np.testing.assert_array_equal(old, new)
    # The model trains on after a refused step.
    model.fit(tf.data.Dataset.from_tensors(episodes()), verbose=0)
    assert model.optimizer.iterations.numpy() == 3


def test_prediction_refuses_bad_labels_under_xla():
    model = tfmeta.PrototypicalNetwork(mlp(4))
    model.compile(jit_compile=True)
    bad = episodes()
    bad["support_y"][0, 0] = -1
    del bad["query_y"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="support_y holds a negative label"):
        model.predict_on_batch(bad)  # predict_on_batch skips predict's checks in Python


def test_per_query_inference_trains_and_predicts_alike_under_xla():
    """The support rows' statistics (static slices of `[support; queries]`) compile with XLA to the same step."""
    data = random_episodes((6, 6, 1), tasks=2)
    results = []
    for jit_compile in (False, True):
        maml = tfmeta.MAML(conv_net(), inner_lr=0.3)
        maml.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit_compile)
        loss = maml.train_on_batch(data, return_dict=True)["loss"]
        results.append((loss, maml.predict(data, verbose=0), [v.numpy() for v in maml.trainable_variables]))
    (loss, predictions, weights), (xla_loss, xla_predictions, xla_weights) = results
    assert xla_loss == pytest.approx(loss, rel=1e-4)
    np.testing.assert_allclose(xla_predictions, predictions, rtol=1e-4, atol=1e-5)
    for weight, xla_weight in zip(weights, xla_weights):
        np.testing.assert_allclose(xla_weight, weight, rtol=1e-4, atol=1e-6)
