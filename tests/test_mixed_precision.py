"""Mixed precision: mixed_float16 (with Keras's LossScaleOptimizer) and mixed_bfloat16.

The models run eagerly (`compile(run_eagerly=True)`: the same steps, without
the seconds of tracing).

`python tests/test_mixed_precision.py` prints the relative errors quoted in
docs/maml.md (a small MLP and the Omniglot CNN; a few seconds).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta


@pytest.fixture
def policy():
    """Sets a global dtype policy for the test, and puts float32 back after it."""
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


def mlp(seed=0, shape=(8,)):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(32, activation="tanh")(x)
    x = keras.layers.Dense(32, activation="tanh")(x)
    return keras.Model(inputs, keras.layers.Dense(5)(x))


def episodes(shape=(8,), tasks=2, ways=5, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "support_x": rng.uniform(size=[tasks, ways, *shape]).astype(np.float32),
        "support_y": np.tile(np.arange(ways), [tasks, 1]).astype(np.int32),
        "query_x": rng.uniform(size=[tasks, 3 * ways, *shape]).astype(np.float32),
        "query_y": np.tile(np.repeat(np.arange(ways), 3), [tasks, 1]).astype(np.int32),
    }


def meta_update(set_policy, name, build, data, inner_steps=2):
    """The first outer update (SGD, learning rate 1: the meta-gradient) under dtype policy `name`."""
    weights = build().get_weights()  # float32, the same whatever the policy
    set_policy(name)
    backbone = build()
    backbone.set_weights(weights)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64" if name == "float64" else None)
    maml = tfmeta.MAML(backbone, inner_lr=0.4, inner_steps=inner_steps, loss=loss, allow_mixed_precision=True)
    maml.compile(optimizer=keras.optimizers.SGD(1.0), run_eagerly=True)  # the same steps, without tracing
    before = [v.numpy() for v in maml.trainable_variables]
    for _ in range(10):  # until the first applied step (a loss scale may overflow first)
        maml.fit(tf.data.Dataset.from_tensors(data), verbose=0)
        if maml.optimizer.iterations.numpy() == 1:
            break
    assert maml.optimizer.iterations.numpy() == 1, f"{name}: no step was applied"
    update = np.concatenate([(b - v.numpy()).ravel() for b, v in zip(before, maml.trainable_variables)])
    set_policy("float32")
    return update


def relative_error(update, reference):
    return float(np.linalg.norm(update - reference) / np.linalg.norm(reference))


@pytest.mark.parametrize("name, bound", [("mixed_float16", 0.02), ("mixed_bfloat16", 0.1)])
def test_meta_gradient_under_a_mixed_policy_matches_float32(policy, name, bound):
    reference = meta_update(policy, "float32", mlp, episodes())
    error = relative_error(meta_update(policy, name, mlp, episodes()), reference)
    print(f"{name}: relative error of the meta-gradient against float32 {error:.2%}")
    assert error < bound


@pytest.mark.parametrize("name", ["mixed_float16", "mixed_bfloat16"])
def test_second_order_maml_refuses_a_mixed_policy_unless_allowed(policy, name):
    policy(name)
    with pytest.raises(ValueError, match=f"computes in {name}.*first_order=True.*allow_mixed_precision=True"):
        tfmeta.MAML(mlp(), inner_lr=0.4, inner_steps=1)
    assert tfmeta.MAML(mlp(), inner_lr=0.4, first_order=True).first_order
    allowed = tfmeta.MAML(mlp(), inner_lr=0.4, allow_mixed_precision=True)
    assert tfmeta.MAML.from_config(allowed.get_config()).allow_mixed_precision


def test_loss_scale_overflows_are_left_to_the_loss_scale_optimizer(policy):
    """Overflowing steps shrink the loss scale; they neither stop training nor count as skipped."""
    policy("mixed_float16")
    for non_finite in ("stop", "skip"):
        maml = tfmeta.MAML(mlp(), inner_lr=0.4, inner_steps=1, allow_mixed_precision=True)
        # An initial scale of 2**20 overflows float16 gradients here: the first 3 steps must shrink it.
        maml.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=2**20),
                     non_finite=non_finite, run_eagerly=True)
        before = maml.get_weights()
        history = maml.fit(tf.data.Dataset.from_tensors(episodes()).repeat(5), verbose=0)
        assert maml.optimizer.dynamic_scale.numpy() == 2**17, f"non_finite={non_finite!r}: the scale did not shrink"
        assert maml.optimizer.iterations.numpy() == 2, "3 steps overflowed, the 2 after them applied"
        assert any(np.abs(a - b).max() > 0 for a, b in zip(before, maml.get_weights()))
        if non_finite == "skip":
            assert history.history["skipped_steps"] == [0.0]


def test_a_nan_in_the_data_still_stops_training_under_mixed_float16(policy):
    policy("mixed_float16")
    maml = tfmeta.MAML(mlp(), inner_lr=0.4, inner_steps=1, allow_mixed_precision=True)
    maml.compile(optimizer=keras.optimizers.SGD(0.1), run_eagerly=True)
    nan = episodes()
    nan["query_x"][0, 0, 0] = np.nan
    before = maml.get_weights()
    with pytest.raises(FloatingPointError, match=r"training step 1 \(loss nan\)"):
        maml.fit(tf.data.Dataset.from_tensors(nan), verbose=0)
    for a, b in zip(before, maml.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert float(maml.optimizer.dynamic_scale.numpy()) == 2.0**15  # not mistaken for an overflow


def test_prototypical_networks_train_under_mixed_float16(policy):
    policy("mixed_float16")
    keras.utils.set_random_seed(0)
    protonet = tfmeta.PrototypicalNetwork(tfmeta.models.conv4_embedding((16, 16, 1), filters=4))
    protonet.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    assert isinstance(protonet.optimizer, keras.optimizers.LossScaleOptimizer)
    history = protonet.fit(tf.data.Dataset.from_tensors(episodes((16, 16, 1))).repeat(3), verbose=0)
    assert np.isfinite(history.history["loss"][0]) and protonet.optimizer.iterations.numpy() > 0


@pytest.mark.parametrize("distance", ["squared_euclidean", "cosine"])
def test_prototype_distances_are_computed_in_float32_under_mixed_float16(policy, distance):
    policy("mixed_float16")
    inputs = keras.Input((8,))
    embedding = keras.Model(inputs, keras.layers.Dense(8, use_bias=False, kernel_initializer="identity")(inputs))
    protonet = tfmeta.PrototypicalNetwork(embedding, distance=distance)
    data = episodes()
    # Embeddings far from the origin and close together: float16 rounds |q|² ≈ 3200 to steps of 2.
    data = {key: value + 20.0 if key.endswith("_x") else value for key, value in data.items()}
    logits = protonet.predict(data, verbose=0)
    support = protonet.embed(data["support_x"].reshape(-1, 8)).numpy().astype(np.float64).reshape(2, 5, 8)
    query = protonet.embed(data["query_x"].reshape(-1, 8)).numpy().astype(np.float64).reshape(2, 15, 8)
    means = support  # one shot: each class's mean is its one support embedding
    if distance == "cosine":
        unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
        expected = np.einsum("tqd,tnd->tqn", unit(query), unit(means))
        tolerance = 1e-6
    else:
        expected = -((query[:, :, None, :] - means[:, None, :, :]) ** 2).sum(-1)
        tolerance = 1e-2  # float32's rounding of |q|², against float16's steps of 2
    np.testing.assert_allclose(logits, expected, rtol=0, atol=tolerance)
    assert logits.dtype == np.float32


def measure():
    """Relative errors of the first outer update (the meta-gradient) against float32, from the same weights."""
    import tfmeta.models

    def omniglot_cnn():
        keras.utils.set_random_seed(0)
        return tfmeta.models.omniglot_cnn(5)

    cases = [("MLP 8-32-32-5, 2 inner steps", mlp, episodes(), 2),
             ("omniglot_cnn(5), 28x28, 1 inner step", omniglot_cnn, episodes((28, 28, 1)), 1)]
    for label, build, data, steps in cases:
        for name in ("float64", "mixed_float16", "mixed_bfloat16"):  # float64: float32's own rounding
            errors = []
            for inner_steps in (0, steps):  # 0 inner steps: a plain gradient of the query loss
                reference = meta_update(keras.mixed_precision.set_global_policy, "float32", build, data, inner_steps)
                update = meta_update(keras.mixed_precision.set_global_policy, name, build, data, inner_steps)
                errors.append(relative_error(update, reference))
            print(f"{label}, {name}: plain gradient {100 * errors[0]:.2g}%, meta-gradient {100 * errors[1]:.2g}%")


def inner_loss_scaling():
    """The Omniglot CNN's meta-gradient error under mixed_float16 with the inner loss scaled by s.

    `adapt` with the loss multiplied by s and the inner rates divided by s takes the same steps as
    with the loss scaled and the gradients unscaled; the outer loss is scaled by 2**12 here.
    """
    import tfmeta.models
    from tfmeta.algorithms import adapt_and_predict

    data = {key: tf.constant(value[0]) for key, value in episodes((28, 28, 1)).items()}
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def meta_gradient(model, scale):
        params = [v.value for v in model.trainable_variables]
        with tf.GradientTape() as tape:
            tape.watch(params)
            predictions, _ = adapt_and_predict(model, params, [], data, lambda y, p: scale * loss(y, p),
                                               [0.4 / scale] * len(params), 1)
            outer = loss(data["query_y"], predictions) * 2.0**12
        return np.concatenate([g.numpy().ravel() / 2.0**12 for g in tape.gradient(outer, params)])

    keras.utils.set_random_seed(0)
    reference = meta_gradient(tfmeta.models.omniglot_cnn(5), 1.0)
    keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    model = tfmeta.models.omniglot_cnn(5)
    for scale in (1.0, 2.0**8, 2.0**15):
        print(f"omniglot_cnn(5), mixed_float16, inner loss scaled by {scale:g}: meta-gradient "
              f"{100 * relative_error(meta_gradient(model, scale), reference):.3g}%")
    keras.mixed_precision.set_global_policy("float32")


if __name__ == "__main__":
    measure()
    inner_loss_scaling()
