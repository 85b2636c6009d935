import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.algorithms import MAML, adapt, adapt_and_predict, predict_queries

from conftest import conv_net, directional_derivatives, loss_for, mlp, random_episodes, task, traced_steps


def meta_gradient_and_finite_difference(model, episode, steps, first_order=False):
    """The meta-gradient and its central differences along 3 random directions, float64."""
    loss = loss_for("float64")

    def meta_loss(params):
        predictions, _ = adapt_and_predict(model, params, [], episode, loss, [0.3] * len(params),
                                           steps, first_order)
        return loss(episode["query_y"], predictions)

    params = [tf.constant(v.numpy(), tf.float64) for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        tape.watch(params)
        value = meta_loss(params)
    gradient = tape.gradient(value, params)
    return directional_derivatives(lambda values: float(meta_loss([tf.constant(v) for v in values])),
                                   [p.numpy() for p in params], gradient)


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("network, shape", [(mlp, (2,)), (conv_net, (6, 6, 1))])
def test_second_order_meta_gradient_matches_finite_differences(network, shape, steps):
    model = network("float64")
    episode = task(random_episodes(shape, dtype="float64"), 0)
    analytic, numeric = meta_gradient_and_finite_difference(model, episode, steps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("network, shape", [(mlp, (2,)), (conv_net, (6, 6, 1))])
def test_first_order_gradient_differs_from_second_order_and_is_the_query_gradient_at_fast_weights(network, shape):
    model = network("float64")
    episode = task(random_episodes(shape, dtype="float64"), 0)
    second, numeric = meta_gradient_and_finite_difference(model, episode, 1)
    first, _ = meta_gradient_and_finite_difference(model, episode, 1, first_order=True)
    assert np.abs(first - second).max() > 1e-3 * np.abs(second).max()
    np.testing.assert_allclose(second, numeric, rtol=1e-6)
    # Closed form of first-order MAML: the query gradient taken at θ'.
    loss = loss_for("float64")
    params = [tf.constant(v.numpy()) for v in model.trainable_variables]
    fast = adapt(model, params, [], episode["support_x"], episode["support_y"], loss,
                 [0.3] * len(params), 1)
    with tf.GradientTape() as tape:
        tape.watch(fast)
        predictions, _ = predict_queries(model, fast, [], episode["support_x"], episode["query_x"])
        value = loss(episode["query_y"], predictions)
    at_fast = tape.gradient(value, fast)
    rng = np.random.default_rng(1)
    expected = [sum(float(tf.reduce_sum(g * rng.normal(size=g.shape))) for g in at_fast)]
    assert first[0] == pytest.approx(expected[0], rel=1e-9)


@pytest.mark.parametrize("first_order", [True, False])
def test_only_second_order_records_the_inner_loop_on_the_outer_tape(first_order):
    """First order takes the inner gradient outside the outer tape: the support pass is not recorded on it."""
    model = mlp("float64")
    episode = task(random_episodes((2,), dtype="float64"), 0)
    loss = loss_for("float64")
    support_passes = []

    def recording_loss(y_true, y_pred):
        if y_pred.shape[0] == episode["support_x"].shape[0]:
            support_passes.append(y_pred)
        return loss(y_true, y_pred)

    params = [tf.constant(v.numpy()) for v in model.trainable_variables]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(params)
        predictions, _ = adapt_and_predict(model, params, [], episode, recording_loss, 0.3, 2, first_order)
        value = loss(episode["query_y"], predictions)
    assert len(support_passes) == 2
    recorded = [tape.gradient(p, params) for p in support_passes]
    assert all(g is None for gradients in recorded for g in gradients) == first_order
    assert all(g is not None for g in tape.gradient(value, params))


def test_query_predictions_use_the_fast_weights():
    """The tutorial's bug: fast weights computed, then the query scored with θ."""
    model = mlp()
    episodes = random_episodes((2,), tasks=1)
    maml = MAML(model, inner_lr=0.5, inner_steps=1)
    adapted = maml(episodes)[0].numpy()

    # Do one SGD step on a copy by hand and predict with it.
    copy = mlp()
    with tf.GradientTape() as tape:
        loss = maml.task_loss(episodes["support_y"][0], copy(episodes["support_x"][0]))
    for variable, gradient in zip(copy.trainable_variables, tape.gradient(loss, copy.trainable_variables)):
        variable.assign(variable - 0.5 * gradient)
    np.testing.assert_allclose(adapted, copy(episodes["query_x"][0]).numpy(), rtol=1e-5, atol=1e-6)
    unadapted = model(episodes["query_x"][0]).numpy()
    assert np.abs(adapted - unadapted).max() > 1e-3
    # And the model's own weights are untouched.
    np.testing.assert_array_equal(model.get_weights()[0], mlp().get_weights()[0])


def float64_step_by_hand(rate=0.4):
    """`(model, episode, loss, params, by_hand)`: a float64 MLP, a task, and one SGD step at `rate` on its support
    set, computed outside tfmeta."""
    model = mlp("float64")
    episode = task(random_episodes((2,), dtype="float64"), 0)
    loss = loss_for("float64")
    params = [tf.constant(v.numpy()) for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        tape.watch(params)
        value = loss(episode["support_y"], model.stateless_call(params, [], episode["support_x"])[0])
    by_hand = [p.numpy() - rate * g.numpy() for p, g in zip(params, tape.gradient(value, params))]
    return model, episode, loss, params, by_hand


def test_a_float64_inner_step_takes_the_inner_rate_in_float64():
    model, episode, loss, params, by_hand = float64_step_by_hand()
    fast = adapt(model, params, [], episode["support_x"], episode["support_y"], loss, [0.4] * len(params), 1)
    for expected, actual in zip(by_hand, fast):
        np.testing.assert_allclose(actual, expected, rtol=1e-14, atol=1e-15)


def test_inference_steps_run_in_a_loop_equal_to_sgd_by_hand_whose_graph_does_not_grow_with_the_steps(steps=7):
    model, episode, loss, params, _ = float64_step_by_hand()
    support_x, support_y = episode["support_x"], episode["support_y"]
    rates = [0.4, None, 0.2, 0.1, 0.3, 0.05]  # one per parameter; the second is not adapted
    by_hand = [p.numpy() for p in params]
    for _ in range(steps):
        weights = [tf.constant(w) for w in by_hand]
        with tf.GradientTape() as tape:
            tape.watch(weights)
            value = loss(support_y, model.stateless_call(weights, [], support_x)[0])
        by_hand = [w - (rate or 0.0) * g.numpy() for w, rate, g in zip(by_hand, rates, tape.gradient(value, weights))]
    fast = adapt(model, params, [], support_x, support_y, loss, rates, steps, training=False)
    for expected, actual in zip(by_hand, fast):
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-14)

    def graph_bytes(steps):
        adapted = tf.function(lambda params: adapt(model, params, [], support_x, support_y, loss, rates, steps,
                                                   training=False))
        return len(adapted.get_concrete_function(params).graph.as_graph_def().SerializeToString())

    assert graph_bytes(50) < 1.1 * graph_bytes(2)


def test_one_number_is_the_inner_rate_of_every_parameter_and_a_list_of_another_length_is_refused():
    model, episode, loss, params, by_hand = float64_step_by_hand()
    for rate in (0.4, np.float64(0.4), tf.constant(0.4, tf.float64)):
        fast = adapt(model, params, [], episode["support_x"], episode["support_y"], loss, rate, 1)
        for expected, actual in zip(by_hand, fast):
            np.testing.assert_allclose(actual, expected, rtol=1e-14, atol=1e-15)
    # With two steps, as the queries' predictions.
    predictions, _ = adapt_and_predict(model, params, [], episode, loss, 0.4, 2)
    listed, _ = adapt_and_predict(model, params, [], episode, loss, [0.4] * len(params), 2)
    np.testing.assert_array_equal(predictions, listed)
    for rates in ([0.4], [0.4] * (len(params) + 1)):
        with pytest.raises(ValueError, match=rf"`inner_lrs` has length {len(rates)} but `params` holds "
                                             rf"{len(params)} parameters"):
            adapt(model, params, [], episode["support_x"], episode["support_y"], loss, rates, 1)
        with pytest.raises(ValueError, match=rf"has length {len(rates)}"):
            adapt_and_predict(model, params, [], episode, loss, lambda step: rates, 1)
    with pytest.raises(ValueError, match="must be a number, a list.*received inner_lrs='0.4'"):
        adapt(model, params, [], episode["support_x"], episode["support_y"], loss, "0.4", 1)


@pytest.mark.parametrize("adapt_normalization", [False, True])
def test_normalization_weights_are_adapted_only_when_asked(adapt_normalization):
    """One inner step by hand on a copy, with or without the batch norm's gamma and beta, against MAML's."""
    episodes = random_episodes((6, 6, 1), tasks=1)
    options = {} if not adapt_normalization else {"adapt_normalization": True}
    maml = MAML(conv_net(), inner_lr=0.5, inner_steps=1, inference="transductive", **options)
    adapted = maml(episodes)[0].numpy()
    copy = conv_net()
    with tf.GradientTape() as tape:
        loss = maml.task_loss(episodes["support_y"][0], copy(episodes["support_x"][0]))
    for variable, gradient in zip(copy.trainable_variables, tape.gradient(loss, copy.trainable_variables)):
        if adapt_normalization or variable.name not in ("gamma", "beta"):
            variable.assign(variable - 0.5 * gradient)
    np.testing.assert_allclose(adapted, copy(episodes["query_x"][0]).numpy(), rtol=1e-5, atol=1e-6)
    assert maml.get_config()["adapt_normalization"] is adapt_normalization
    assert MAML.from_config(maml.get_config()).adapt_normalization is adapt_normalization
    # A config saved before the option existed: those models adapted them, and were trained so.
    old = {key: value for key, value in maml.get_config().items() if key != "adapt_normalization"}
    assert MAML.from_config(old).adapt_normalization is True


def test_inner_steps_are_honoured():
    episodes = random_episodes((2,), tasks=1)
    predictions = {}
    for steps in (0, 1, 2, 3):
        maml = MAML(mlp(), inner_lr=0.5, inner_steps=1, eval_inner_steps=steps)
        predictions[steps] = maml.predict(episodes, verbose=0)[0]
    np.testing.assert_allclose(predictions[0], mlp()(episodes["query_x"][0]).numpy(), rtol=1e-6)
    for a, b in [(0, 1), (1, 2), (2, 3)]:
        assert np.abs(predictions[a] - predictions[b]).max() > 1e-4
    # Two steps by hand equal inner_steps=2.
    model, maml = mlp(), MAML(mlp(), inner_lr=0.5, eval_inner_steps=2)
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = maml.task_loss(episodes["support_y"][0], model(episodes["support_x"][0]))
        for v, g in zip(model.trainable_variables, tape.gradient(loss, model.trainable_variables)):
            v.assign(v - 0.5 * g)
    np.testing.assert_allclose(predictions[2], model(episodes["query_x"][0]).numpy(), rtol=1e-5, atol=1e-6)


def test_a_train_step_applies_the_mean_of_per_task_meta_gradients():
    episodes = random_episodes((6, 6, 1), tasks=3)
    maml = MAML(conv_net(), inner_lr=0.3, inner_steps=2)
    maml.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    before = [v.numpy() for v in maml.trainable_variables]
    per_task = []
    # The batch norm's gamma and beta stay out of the inner loop (adapt_normalization=False).
    rates = [None if v.name in ("gamma", "beta") else 0.3 for v in maml.backbone.trainable_variables]
    for t in range(3):
        params = [v.value for v in maml.backbone.trainable_variables]
        with tf.GradientTape() as tape:
            tape.watch(params)
            predictions, _ = adapt_and_predict(maml.backbone, params, [], task(episodes, t),
                                               maml.task_loss, rates, 2)
            loss = maml.task_loss(episodes["query_y"][t], predictions)
        per_task.append([g.numpy() for g in tape.gradient(loss, params)])
    maml.fit(tf.data.Dataset.from_tensors(episodes), epochs=1, verbose=0)
    for b, a, grads in zip(before, maml.trainable_variables, zip(*per_task)):
        np.testing.assert_allclose(b - a.numpy(), np.mean(grads, axis=0), rtol=1e-4, atol=1e-6)


def test_learned_inner_learning_rates_start_at_inner_lr_and_are_meta_trained():
    episodes = random_episodes((2,), tasks=2)
    fixed = MAML(mlp(), inner_lr=0.4)
    learned = MAML(mlp(), inner_lr=0.4, learn_inner_lr=True)
    assert len(learned.inner_lrs) == len(learned.backbone.trainable_variables)
    assert [lr.shape for lr in learned.inner_lrs] == [v.shape for v in learned.backbone.trainable_variables]
    np.testing.assert_allclose(learned.predict(episodes, verbose=0), fixed.predict(episodes, verbose=0),
                               rtol=1e-6)
    learned.compile(optimizer=keras.optimizers.SGD(0.1))
    learned.fit(tf.data.Dataset.from_tensors(episodes), verbose=0)
    assert any(np.abs(lr.numpy() - 0.4).max() > 1e-6 for lr in learned.inner_lrs)


def test_train_step_is_not_retraced_from_step_to_step():
    episodes = random_episodes((2,), tasks=2)
    maml = MAML(mlp())
    maml.compile(optimizer="adam")
    traces = traced_steps(maml)
    stream = tf.data.Dataset.from_tensors(episodes).repeat()
    maml.fit(stream, steps_per_epoch=1, epochs=1, verbose=0)
    # TensorFlow traces twice on the first call, in which the optimizer creates its variables.
    first_traces = len(traces)
    assert first_traces <= 2
    maml.fit(stream, steps_per_epoch=5, epochs=3, verbose=0)
    assert len(traces) == first_traces, "the train step was traced again"


def test_meta_training_on_sinusoids_makes_adaptation_work():
    keras.utils.set_random_seed(0)
    maml = MAML(tfmeta.models.sinusoid_mlp(), inner_lr=0.01, inner_steps=1,
                loss=keras.losses.MeanSquaredError())
    maml.compile(optimizer=keras.optimizers.Adam(1e-3))
    maml.fit(tfmeta.data.sinusoid_tasks(10, 10, seed=0, meta_batch_size=10),
             steps_per_epoch=1000, epochs=1, verbose=0)
    test = tfmeta.data.sinusoid_tasks(10, 10, seed=1, num_tasks=100, meta_batch_size=25)
    mse = {}
    for steps in (0, 1, 5):
        maml.eval_inner_steps = steps
        mse[steps] = maml.evaluate(test, verbose=0, return_dict=True)["loss"]
    assert mse[1] < 0.7 * mse[0] and mse[5] < mse[1], mse
    # The support loss falls over the inner steps too.
    batch = next(iter(test))
    params = [v.value for v in maml.backbone.trainable_variables]
    support_losses = []
    for steps in range(4):
        fast = adapt(maml.backbone, params, [], batch["support_x"][0], batch["support_y"][0],
                     maml.task_loss, [0.01] * len(params), steps)
        predictions, _ = maml.backbone.stateless_call(fast, [], batch["support_x"][0])
        support_losses.append(float(maml.task_loss(batch["support_y"][0], predictions)))
    assert all(a > b for a, b in zip(support_losses, support_losses[1:])), support_losses


def test_stock_batch_norm_is_refused_in_second_order_and_updated_in_first_order():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,))
    x = keras.layers.BatchNormalization(name="stock_bn")(keras.layers.Dense(4)(inputs))
    backbone = keras.Model(inputs, keras.layers.Dense(3)(x))
    with pytest.raises(ValueError, match=r"\['stock_bn'\].*MetaBatchNormalization.*first_order=True"):
        MAML(backbone)
    nested = keras.Sequential([keras.Input((2,)), keras.Sequential([keras.layers.BatchNormalization(name="inner_bn")]),
                               keras.layers.Dense(3)])
    with pytest.raises(ValueError, match=r"\['inner_bn'\]"):
        MAML(nested)
    maml = MAML(backbone, first_order=True)
    maml.compile(optimizer="sgd")
    moving_mean = backbone.get_layer("stock_bn").moving_mean
    before = moving_mean.numpy().copy()
    maml.fit(tf.data.Dataset.from_tensors(random_episodes((2,))), verbose=0)
    assert np.abs(moving_mean.numpy() - before).max() > 0


def test_keras_saving_round_trip(tmp_path):
    maml = MAML(conv_net(), inner_lr=0.3, inner_steps=2, eval_inner_steps=3, learn_inner_lr=True)
    maml.compile(optimizer="adam")
    episodes = random_episodes((6, 6, 1))
    maml.fit(tf.data.Dataset.from_tensors(episodes), verbose=0)
    maml.save(tmp_path / "maml.keras")
    restored = keras.models.load_model(tmp_path / "maml.keras")
    assert isinstance(restored, MAML)
    assert (restored.inner_steps, restored.eval_inner_steps, restored.learn_inner_lr) == (2, 3, True)
    # Restored compiled, with the optimizer's state: training resumes where it stopped.
    assert restored.optimizer.iterations.numpy() == 1
    np.testing.assert_array_equal(restored.optimizer.variables[-1].numpy(), maml.optimizer.variables[-1].numpy())
    np.testing.assert_allclose(restored.predict(episodes, verbose=0), maml.predict(episodes, verbose=0),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: e.update(support_y=e["support_y"] + 5), r"labels in \[5, 7\].*\[0, ways=3\)"),
        (lambda e: e.update(query_x=e["query_x"][:, :, :1]), "query_x has shape.*model takes examples of shape"),
        (lambda e: e.update(support_y=e["support_y"] % 2), "outputs 3 logits but the episodes are 2-way"),
        (lambda e: e["support_y"][1, :2].fill(1), r"Task 1's support_y has no example of class\(es\) \[0\]"),
        (lambda e: e["support_y"][0, 2:4].fill(0), r"Task 0's support_y has no example of class\(es\) \[1\]"),
        (lambda e: e.update(query_y=e["query_y"][:, :4]), "query_y has shape.*one label per example"),
        (lambda e: e.update(support_y=e["support_y"].astype(np.float32)), "support_y must hold integer"),
        (lambda e: e.pop("query_y"), r"lack the keys \['query_y'\]"),
    ],
)
def test_bad_episodes_are_named_before_training(change, message):
    episodes = random_episodes((2,))
    change(episodes)
    maml = MAML(mlp())
    maml.compile(optimizer="adam")
    with pytest.raises(ValueError, match=message):
        maml.fit(tf.data.Dataset.from_tensors(episodes), verbose=0)


def test_unbatched_episodes_are_named():
    data = tfmeta.data.LabelledData(np.random.default_rng(0).normal(size=[30, 2]), np.arange(30) % 3)
    maml = MAML(mlp())
    maml.compile(optimizer="adam")
    with pytest.raises(ValueError, match="without a task axis.*meta_batch_size"):
        maml.fit(tfmeta.data.episodes(data, 3, 1, 2, seed=0), steps_per_epoch=1, verbose=0)


def test_out_of_range_labels_fail_inside_the_graph_too():
    episodes = random_episodes((2,))
    episodes["query_y"][0, 0] = 3
    maml = MAML(mlp())
    maml.compile(optimizer="adam")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"query_y holds a label outside \[0, ways=3\)"):
        maml.train_on_batch(episodes)


def test_a_class_without_support_examples_in_any_task_fails_inside_the_graph():
    episodes = random_episodes((2,), tasks=3)
    episodes["support_y"][2, 4:] = 1  # task 2 has no example of class 2
    maml = MAML(mlp())
    maml.compile(optimizer="adam")
    message = r"support_y: a class has no support example in some task; every class 0..2 \(ways=3"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        maml.train_on_batch(episodes)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        maml({key: tf.constant(value) for key, value in episodes.items()})


def test_bad_constructor_and_compile_arguments_are_named():
    with pytest.raises(ValueError, match="inner_lr.*received inner_lr=-1"):
        MAML(mlp(), inner_lr=-1)
    with pytest.raises(ValueError, match="inner_steps.*received inner_steps=1.5"):
        MAML(mlp(), inner_steps=1.5)
    with pytest.raises(ValueError, match="must be built"):
        MAML(keras.Sequential([keras.layers.Dense(3)]))
    with pytest.raises(ValueError, match=r"MAML takes its loss in its constructor.*loss=.mse."):
        MAML(mlp()).compile(optimizer="adam", loss="mse")


def test_a_probabilities_loss_given_by_name_is_refused():
    for loss in ("sparse_categorical_crossentropy", keras.losses.SparseCategoricalCrossentropy(),
                 "SparseCategoricalCrossentropy"):
        with pytest.raises(ValueError, match="takes probabilities.*from_logits=False.*outputs logits"):
            MAML(mlp(), loss=loss)


def test_classifier_or_regressor_is_decided_explicitly():
    assert MAML(mlp()).is_classifier
    assert MAML(mlp(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)).is_classifier
    for loss in ("mse", "mean_absolute_error", keras.losses.MeanSquaredError(), keras.losses.Huber()):
        assert not MAML(mlp(), loss=loss).is_classifier, loss

    def smoothed_cross_entropy(y_true, logits):
        return keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True) + 0.1

    with pytest.raises(ValueError, match="Cannot tell.*smoothed_cross_entropy.*classifier=True.*classifier=False"):
        MAML(mlp(), loss=smoothed_cross_entropy)
    with pytest.raises(ValueError, match="regression loss; a classifier"):
        MAML(mlp(), loss="mse", classifier=True)
    maml = MAML(mlp(), loss=smoothed_cross_entropy, classifier=True)
    assert maml.is_classifier and tfmeta.serving.model_card(maml, 1)["task"] == "classification"
    maml.compile(optimizer="sgd")
    assert [m.name for m in maml.metrics if m.name == "compile_metrics"]  # accuracy is reported
    bad = random_episodes((2,))
    bad["query_y"][0, 0] = 3
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"query_y holds a label outside \[0, ways=3\)"):
        maml.train_on_batch(bad)
    assert maml.get_config()["classifier"] is True  # (a custom function loss must be registered to be saved)
    regressor = MAML(mlp(), loss="mse")
    assert tfmeta.serving.model_card(regressor, 1)["task"] == "regression"
    assert not MAML.from_config(regressor.get_config()).is_classifier


def dropout_net(rate=0.5, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((2,))
    x = keras.layers.Dense(16, activation="tanh")(inputs)
    if rate:
        x = keras.layers.Dropout(rate)(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def identical_tasks(tasks=2):
    episodes = random_episodes((2,), tasks=1)
    return {key: np.repeat(value, tasks, axis=0) for key, value in episodes.items()}


def test_dropout_draws_fresh_masks_for_each_task_and_none_at_evaluation():
    episodes = identical_tasks()
    maml = MAML(dropout_net(), inner_lr=0.5, inner_steps=1)
    first = maml(episodes, training=True).numpy()
    assert np.abs(first[0] - first[1]).max() > 1e-3, "two tasks of a meta-batch got the same dropout masks"
    second = maml(episodes, training=True).numpy()
    assert np.abs(first - second).max() > 1e-3, "the next call repeated the masks"
    # Evaluation: no dropout at all, the predictions of the same weights without the layer.
    evaluated = maml.predict(episodes, verbose=0)
    no_dropout = MAML(dropout_net(rate=0), inner_lr=0.5, inner_steps=1)
    no_dropout.backbone.set_weights(maml.backbone.get_weights())
    np.testing.assert_allclose(evaluated, no_dropout.predict(episodes, verbose=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(evaluated[0], evaluated[1])


def test_dropout_draws_a_fresh_mask_at_every_inner_step():
    # With a zero inner learning rate the fast weights are θ: the query predictions differ only if
    # the query pass after an inner step draws another mask than the one without inner steps.
    episodes = identical_tasks(tasks=1)
    predictions = [MAML(dropout_net(), inner_lr=0.0, eval_inner_steps=steps)(episodes, training=True).numpy()
                   for steps in (0, 1)]
    assert np.abs(predictions[0] - predictions[1]).max() > 1e-3


def test_a_training_step_uses_different_masks_for_the_tasks_of_a_meta_batch():
    """Two identical tasks average to the gradient of one only if their dropout masks are the same."""
    updates = []
    for tasks in (1, 2):
        maml = MAML(dropout_net(), inner_lr=0.5, inner_steps=1)
        maml.compile(optimizer=keras.optimizers.SGD(1.0), run_eagerly=True)
        before = maml.get_weights()[0]
        maml.fit(tf.data.Dataset.from_tensors(identical_tasks(tasks)), verbose=0)
        updates.append(before - maml.get_weights()[0])
    assert np.abs(updates[0] - updates[1]).max() > 1e-4


def test_the_learned_inner_rates_get_the_finite_difference_gradient():
    """Meta-SGD: a train step (SGD, rate 1) moves each inner rate by minus the meta-loss's derivative, float64."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
    maml = MAML(mlp("float64"), inner_lr=0.3, inner_steps=2, learn_inner_lr=True, loss=loss)
    maml.compile(optimizer=keras.optimizers.SGD(1.0), run_eagerly=True)  # the same step, without tracing
    episodes = random_episodes((2,), tasks=2, dtype="float64")
    params = [tf.constant(v.numpy()) for v in maml.backbone.trainable_variables]
    rates = [lr.numpy() for lr in maml.inner_lrs]

    def meta_loss(rates):
        losses = [loss(episodes["query_y"][t],
                       adapt_and_predict(maml.backbone, params, [], task(episodes, t), loss, rates, 2)[0])
                  for t in range(2)]
        return float(np.mean(losses))

    maml.fit(tf.data.Dataset.from_tensors(episodes), verbose=0)
    moved = [before - after.numpy() for before, after in zip(rates, maml.inner_lrs)]  # = the gradient
    rng = np.random.default_rng(2)
    for _ in range(3):
        direction = [rng.normal(size=r.shape) for r in rates]
        h = 1e-6
        numeric = (meta_loss([r + h * d for r, d in zip(rates, direction)])
                   - meta_loss([r - h * d for r, d in zip(rates, direction)])) / (2 * h)
        analytic = sum(float(np.sum(g * d)) for g, d in zip(moved, direction))
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-10)


def test_first_order_stock_batch_norm_statistics_are_the_task_average_of_the_query_passes():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(4, name="dense")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="stock_bn")(hidden)
    backbone = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Activation("tanh")(x)))
    maml = MAML(backbone, inner_lr=0.5, inner_steps=1, first_order=True)
    maml.compile(optimizer=keras.optimizers.SGD(0.1), run_eagerly=True)
    episodes = random_episodes((2,), tasks=3)
    bn = backbone.get_layer("stock_bn")
    old_mean, old_var = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    params = [v.value for v in backbone.trainable_variables]
    non_trainable = [v.value for v in backbone.non_trainable_variables]
    means, variances = [], []
    for t in range(3):
        fast = adapt(backbone, params, non_trainable, episodes["support_x"][t], episodes["support_y"][t],
                     maml.task_loss, [0.5] * len(params), 1, first_order=True)
        kernel, bias = (fast[[v.path for v in backbone.trainable_variables].index(f"dense/{name}")].numpy()
                        for name in ("kernel", "bias"))
        query_hidden = episodes["query_x"][t] @ kernel + bias  # the query pass's input to the BN layer
        means.append(0.9 * old_mean + 0.1 * query_hidden.mean(axis=0))
        variances.append(0.9 * old_var + 0.1 * query_hidden.var(axis=0))
    maml.fit(tf.data.Dataset.from_tensors(episodes), verbose=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean(means, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean(variances, axis=0), rtol=1e-5, atol=1e-6)
