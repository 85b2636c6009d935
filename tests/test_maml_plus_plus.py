"""MAML++'s options on tfmeta.MAML (Antoniou, Edwards, Storkey. How to train your MAML. ICLR 2019)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import (directional_derivatives, float64_episodes, loss_for, mlp, moved_off_initialization,
                      random_episodes, task, traced_steps)
from tfmeta.algorithms import (MAML, PerStepRates, adapt, adapt_and_predict, maml_plus_plus_config,
                               multi_step_loss_weights)
from tfmeta.models import omniglot_cnn
from tfmeta.layers import MetaBatchNormalization, inner_step


def official_importance_vector(steps, epoch, annealing_epochs):
    """The step weights of the official code's forward pass at `epoch`, in NumPy.

    Its `get_per_step_loss_importance_vector` while `epoch < annealing_epochs`
    (`multi_step_loss_num_epochs`); from then on it takes the last step's loss alone.
    """
    if epoch >= annealing_epochs:
        return np.eye(steps)[-1]
    decay = 1.0 / steps / annealing_epochs
    floor = 0.03 / steps
    weights = np.full(steps, 1.0 / steps)
    weights[:-1] = np.maximum(weights[:-1] - epoch * decay, floor)
    weights[-1] = min(weights[-1] + epoch * (steps - 1) * decay, 1.0 - (steps - 1) * floor)
    return weights


def test_multi_step_loss_weights_are_the_official_vector_at_each_epoch_and_linear_between():
    per_epoch = 2  # 10 annealing epochs of 2 iterations
    for epoch in range(13):
        np.testing.assert_allclose(multi_step_loss_weights(5, epoch * per_epoch, 10 * per_epoch),
                                   official_importance_vector(5, epoch, 10), atol=1e-7, err_msg=f"epoch {epoch}")
    halfway = multi_step_loss_weights(5, 2 * per_epoch + 1, 10 * per_epoch)
    between = (official_importance_vector(5, 2, 10) + official_importance_vector(5, 3, 10)) / 2
    np.testing.assert_allclose(halfway, between, atol=1e-7)
    for iteration in range(25):
        assert float(tf.reduce_sum(multi_step_loss_weights(5, iteration, 20))) == pytest.approx(1.0, abs=1e-6)


def mean_task_loss(episodes, query_loss):
    """`values -> float`: the mean over the tasks of `query_loss(tensors, task)`, for finite differences."""
    def function(values):
        tensors = [tf.constant(v) for v in values]
        return float(np.mean([query_loss(tensors, task(episodes, t)) for t in range(len(episodes["query_y"]))]))
    return function


def fit_one_step(maml, episodes):
    """One training step; returns how far each trainable variable moved (the gradient under SGD(1))."""
    before = [v.numpy() for v in maml.trainable_variables]
    maml.fit(tf.data.Dataset.from_tensors(episodes), verbose=0)
    return before, [b - v.numpy() for b, v in zip(before, maml.trainable_variables)]


def test_the_multi_step_meta_loss_gets_the_finite_difference_gradient_then_the_last_step_alone():
    loss = loss_for("float64")
    maml = MAML(mlp("float64"), inner_lr=0.3, inner_steps=3, multi_step_loss_iterations=10, loss=loss)
    maml.compile(optimizer=keras.optimizers.SGD(1.0))
    episodes = float64_episodes(tasks=2)
    rates = [0.3] * 6

    def after(steps):
        return lambda params, one: loss(one["query_y"], adapt_and_predict(maml.backbone, params, [], one, loss,
                                                                          rates, steps)[0])

    maml.optimizer.iterations.assign(4)  # iteration 4 of 10 annealing iterations: the paper's epoch 4 of 10
    weights = official_importance_vector(3, 4, 10)
    params, moved = fit_one_step(maml, episodes)
    multi_step = mean_task_loss(episodes, lambda p, one: sum(w * after(k + 1)(p, one)
                                                                        for k, w in enumerate(weights)))
    analytic, numeric = directional_derivatives(multi_step, params, moved)
    print(f"multi-step loss: relative error of the meta-gradient {np.abs(analytic / numeric - 1).max():.1e}")
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)

    maml.optimizer.iterations.assign(10)  # annealed: the last step's loss alone
    params, moved = fit_one_step(maml, episodes)
    analytic, numeric = directional_derivatives(mean_task_loss(episodes, after(3)), params, moved)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


def test_per_step_inner_rates_apply_per_tensor_and_step_and_get_the_finite_difference_gradient():
    loss = loss_for("float64")
    maml = MAML(mlp("float64"), inner_lr=0.3, inner_steps=2, eval_inner_steps=3, learn_per_step_inner_lr=True,
                loss=loss)
    assert [tuple(lr.shape) for lr in maml.per_step_inner_lrs] == [(2,)] * 6
    np.testing.assert_allclose([lr.numpy() for lr in maml.per_step_inner_lrs], 0.3, rtol=1e-7)
    rng = np.random.default_rng(3)
    for lr in maml.per_step_inner_lrs:
        lr.assign(rng.uniform(0.1, 0.5, size=2))
    rates = [lr.numpy() for lr in maml.per_step_inner_lrs]
    episodes = float64_episodes(tasks=2)

    # By hand: step k moves parameter tensor i by rates[i][k] times its gradient; the third
    # (evaluation) step reuses the last trained step's rates.
    model = mlp("float64")
    for step in (0, 1, 1):
        with tf.GradientTape() as tape:
            support_loss = loss(episodes["support_y"][0], model(episodes["support_x"][0]))
        for v, g, rate in zip(model.trainable_variables, tape.gradient(support_loss, model.trainable_variables),
                              rates):
            v.assign(v - rate[step] * g)
    np.testing.assert_allclose(maml(episodes)[0], model(episodes["query_x"][0]).numpy(),
                               rtol=1e-10)

    params = [v.numpy() for v in maml.backbone.trainable_variables]
    maml.compile(optimizer=keras.optimizers.SGD(1.0))
    fit_one_step(maml, episodes)
    moved_rates = [rate - lr.numpy() for rate, lr in zip(rates, maml.per_step_inner_lrs)]

    def query_loss(rate_values, one):
        per_step = lambda step: [r[step] for r in rate_values]  # noqa: E731
        return loss(one["query_y"], adapt_and_predict(maml.backbone, [tf.constant(p) for p in params], [], one,
                                                      loss, per_step, 2)[0])

    analytic, numeric = directional_derivatives(mean_task_loss(episodes, query_loss), rates, moved_rates)
    print(f"per-step rates: relative error of their meta-gradient {np.abs(analytic / numeric - 1).max():.1e}")
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


def test_per_step_batch_norm_uses_each_steps_row_and_moves_its_own_statistics():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=[8, 4])
    layer = MetaBatchNormalization(steps=3, per_step_statistics=True, momentum=0.8, dtype="float64")
    layer.build(x.shape)
    gamma, beta = rng.normal(size=[3, 4]), rng.normal(size=[3, 4])
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    mean, variance = x.mean(axis=0), x.var(axis=0)
    for step, row in ((0, 0), (2, 2), (5, 2)):  # steps past the last use the last row
        expected_mean, expected_variance = layer.moving_mean.numpy(), layer.moving_variance.numpy()
        expected_mean[row] = 0.8 * expected_mean[row] + 0.2 * mean
        expected_variance[row] = 0.8 * expected_variance[row] + 0.2 * variance
        with inner_step(step):
            outputs = layer(x, training=True).numpy()
        np.testing.assert_allclose(outputs, (x - mean) / np.sqrt(variance + 1e-3) * gamma[row] + beta[row],
                                   atol=1e-12)
        np.testing.assert_allclose(layer.moving_mean.numpy(), expected_mean, atol=1e-12)
        np.testing.assert_allclose(layer.moving_variance.numpy(), expected_variance, atol=1e-12)
    moving_mean, moving_variance = layer.moving_mean.numpy()[2], layer.moving_variance.numpy()[2]
    with inner_step(2):
        inference = layer(x, training=False).numpy()
    np.testing.assert_allclose(inference, (x - moving_mean) / np.sqrt(moving_variance + 1e-3) * gamma[2] + beta[2],
                               atol=1e-12)
    clone = MetaBatchNormalization.from_config(layer.get_config())
    assert (clone.steps, clone.per_step_statistics, clone.momentum) == (3, True, 0.8)


def graph_nodes(function, *args):
    """The number of nodes of `function`'s traced graph, the functions it calls (a loop's body) included."""
    graph = tf.function(function).get_concrete_function(*args).graph.as_graph_def()
    return len(graph.node) + sum(len(f.node_def) for f in graph.library.function)


def test_inference_runs_per_step_layers_and_rates_in_a_loop_that_answers_as_the_unrolled_steps():
    """At inference, MAML++'s steps (per-step normalization weights and statistics, per-step rates) run in a
    `tf.while_loop` whose graph does not grow with the steps; a plain function of the step unrolls them."""
    keras.utils.set_random_seed(0)
    model = omniglot_cnn(3, filters=4, norm_steps=2, per_step_statistics=True)
    moved_off_initialization(model)  # each step's rows apart
    params = [tf.convert_to_tensor(v) for v in model.trainable_variables]
    state = [tf.convert_to_tensor(v) for v in model.non_trainable_variables]
    rates = [tf.constant(np.random.default_rng(i).uniform(0.05, 0.5, 2), tf.float32) for i in range(len(params))]
    looped, unrolled = PerStepRates(rates, 2), lambda step: PerStepRates(rates, 2)(step)
    one = task(random_episodes((28, 28, 1), tasks=1, ways=3, shots=2, pixels=True), 0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def adapted(inner_lrs, steps):
        return lambda x, y: adapt(model, params, state, x, y, loss, inner_lrs, steps, training=False)

    support = (one["support_x"], one["support_y"])
    for fast, reference in zip(adapted(looped, 3)(*support), adapted(unrolled, 3)(*support)):  # step 3: last row
        np.testing.assert_allclose(fast, reference, rtol=1e-5, atol=1e-6)
    assert graph_nodes(adapted(looped, 8), *support) <= graph_nodes(adapted(looped, 2), *support)
    assert graph_nodes(adapted(unrolled, 8), *support) > 3 * graph_nodes(adapted(unrolled, 2), *support)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps.*received steps=0"),
    ({"per_step_statistics": True}, "per_step_statistics=True needs.*received steps=None"),
    ({"steps": 2, "momentum": 1.0}, "momentum.*received momentum=1.0"),
])
def test_per_step_batch_norm_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MetaBatchNormalization(**kwargs)


def per_step_norm_mlp(steps=2, dtype="float64"):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,), dtype=dtype)
    x = keras.layers.Dense(4, name="dense", dtype=dtype)(inputs)
    x = MetaBatchNormalization(steps=steps, per_step_statistics=True, name="norm", dtype=dtype)(x)
    x = keras.layers.Activation("tanh", dtype=dtype)(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits", dtype=dtype)(x))
    norm = model.get_layer("norm")
    rng = np.random.default_rng(4)  # rows that differ, so that using the wrong one shows
    norm.gamma.assign(rng.uniform(0.5, 1.5, size=norm.gamma.shape))
    norm.beta.assign(rng.normal(size=norm.beta.shape))
    return model


def test_per_step_norm_weights_are_meta_learned_not_adapted_and_get_the_finite_difference_gradient():
    loss = loss_for("float64")
    backbone = per_step_norm_mlp()
    maml = MAML(backbone, inner_lr=0.3, inner_steps=2, loss=loss)
    rates = [None if v.path.startswith("norm/") else 0.3 for v in backbone.trainable_variables]
    episodes = float64_episodes(tasks=2)
    state = [v.value for v in backbone.non_trainable_variables]
    params = [v.value for v in backbone.trainable_variables]
    fast = adapt(backbone, params, state, episodes["support_x"][0], episodes["support_y"][0], loss, rates, 2)
    for variable, before, after in zip(backbone.trainable_variables, params, fast):
        assert np.array_equal(before, after) == variable.path.startswith("norm/"), variable.path
    predictions = maml(episodes, training=True)[0]  # (with training=False, normalized with the moving statistics)
    np.testing.assert_allclose(predictions,
                               adapt_and_predict(backbone, params, state, task(episodes, 0), loss, rates, 2)[0],
                               rtol=1e-12)
    adapting_norm = adapt_and_predict(backbone, params, state, task(episodes, 0), loss, [0.3] * len(params), 2)[0]
    assert np.abs(predictions - adapting_norm).max() > 1e-4

    maml.compile(optimizer=keras.optimizers.SGD(1.0))
    before, moved = fit_one_step(maml, episodes)
    norm_moved = {v.path: m for v, m in zip(maml.trainable_variables, moved) if v.path.startswith("norm/")}
    assert all(np.abs(m[row]).max() > 1e-6 for m in norm_moved.values() for row in (0, 1)), "a step's row is unused"

    def query_loss(values, one):
        return loss(one["query_y"], adapt_and_predict(backbone, values, state, one, loss, rates, 2)[0])

    analytic, numeric = directional_derivatives(mean_task_loss(episodes, query_loss), before, moved)
    print(f"per-step batch norm: relative error of the meta-gradient {np.abs(analytic / numeric - 1).max():.1e}")
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


def test_a_train_step_moves_each_steps_statistics_by_its_passes_averaged_over_tasks():
    loss = loss_for("float64")
    backbone = per_step_norm_mlp()
    maml = MAML(backbone, inner_lr=0.3, inner_steps=2, loss=loss)
    maml.compile(optimizer=keras.optimizers.SGD(0.1))
    episodes = float64_episodes(tasks=3)
    rates = [None if v.path.startswith("norm/") else 0.3 for v in backbone.trainable_variables]
    params = [v.value for v in backbone.trainable_variables]
    state = [v.value for v in backbone.non_trainable_variables]
    paths = [v.path for v in backbone.trainable_variables]

    def hidden(weights, x):  # the normalization layer's input
        return x @ weights[paths.index("dense/kernel")].numpy() + weights[paths.index("dense/bias")].numpy()

    def moved(statistics, batch):  # momentum 0.9
        mean, variance = statistics
        return 0.9 * mean + 0.1 * batch.mean(axis=0), 0.9 * variance + 0.1 * batch.var(axis=0)

    means, variances = [], []
    for t in range(3):
        support_x = episodes["support_x"][t]
        one_step, two_steps = (adapt(backbone, params, state, support_x, episodes["support_y"][t], loss, rates, k)
                               for k in (1, 2))
        initial = (np.zeros(4), np.ones(4))
        row0 = moved(initial, hidden(params, support_x))  # step 0's support pass
        # Step 1's support pass, then the query pass, normalized by the support set's statistics at the adapted
        # weights (per-query inference).
        row1 = moved(moved(initial, hidden(one_step, support_x)), hidden(two_steps, support_x))
        means.append([row0[0], row1[0]])
        variances.append([row0[1], row1[1]])
    maml.fit(tf.data.Dataset.from_tensors(episodes), verbose=0)
    norm = backbone.get_layer("norm")
    np.testing.assert_allclose(norm.moving_mean.numpy(), np.mean(means, axis=0), atol=1e-12)
    np.testing.assert_allclose(norm.moving_variance.numpy(), np.mean(variances, axis=0), atol=1e-12)


def test_derivative_order_annealing_switches_to_exact_second_order_with_one_retrace():
    loss = loss_for("float64")
    episodes = float64_episodes(tasks=2)
    stream = tf.data.Dataset.from_tensors(episodes).repeat()

    def annealed():
        maml = MAML(mlp("float64"), inner_lr=0.3, inner_steps=1, first_order_iterations=2, loss=loss)
        maml.compile(optimizer=keras.optimizers.SGD(1.0))
        return maml, traced_steps(maml)

    maml, traces = annealed()
    rates = [0.3] * 6
    traces_after = []
    for iteration in range(4):
        before = [v.numpy() for v in maml.trainable_variables]
        maml.fit(stream, steps_per_epoch=1, epochs=1, verbose=0)
        moved = [b - v.numpy() for b, v in zip(before, maml.trainable_variables)]
        traces_after.append(len(traces))
        params = [tf.constant(b) for b in before]
        if iteration < 2:  # first order: the query gradient at the fast weights
            at_fast = []
            for t in range(2):
                one = task(episodes, t)
                fast = adapt(maml.backbone, params, [], one["support_x"], one["support_y"], loss, rates, 1)
                with tf.GradientTape() as tape:
                    tape.watch(fast)
                    query_loss = loss(one["query_y"], maml.backbone.stateless_call(fast, [], one["query_x"])[0])
                at_fast.append([g.numpy() for g in tape.gradient(query_loss, fast)])
            for m, expected in zip(moved, zip(*at_fast)):
                np.testing.assert_allclose(m, np.mean(expected, axis=0), rtol=1e-9, atol=1e-15)
        else:
            meta_loss = mean_task_loss(episodes, lambda p, one: loss(
                one["query_y"], adapt_and_predict(maml.backbone, p, [], one, loss, rates, 1)[0]))
            analytic, numeric = directional_derivatives(meta_loss, before, moved)
            print(f"iteration {iteration}, second order: relative error {np.abs(analytic / numeric - 1).max():.1e}")
            np.testing.assert_allclose(analytic, numeric, rtol=1e-6)
    print(f"traces after each of 4 iterations (switch at 2): {traces_after}")
    assert traces_after[1] == traces_after[0] and traces_after[3] == traces_after[2]
    assert traces_after[2] == traces_after[1] + 1, "the switch to second order should trace the step exactly once"

    # The same four iterations in one fit call: the switch happens inside it, with the same result.
    in_one_fit, one_fit_traces = annealed()
    in_one_fit.fit(stream, steps_per_epoch=4, epochs=1, verbose=0)
    assert len(one_fit_traces) == traces_after[-1]
    for a, b in zip(in_one_fit.get_weights(), maml.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    ({"learn_inner_lr": True, "learn_per_step_inner_lr": True}, "Meta-SGD.*LSLR.*choose one"),
    ({"first_order": True, "first_order_iterations": 5}, "first_order=True.*first_order_iterations=5.*one of them"),
    ({"multi_step_loss_iterations": 0}, "multi_step_loss_iterations.*received multi_step_loss_iterations=0"),
    ({"first_order_iterations": 2.5}, "first_order_iterations.*received first_order_iterations=2.5"),
    ({"inner_steps": 0, "learn_per_step_inner_lr": True}, "need inner steps; received inner_steps=0"),
])
def test_bad_maml_plus_plus_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MAML(mlp(), **kwargs)


def test_per_step_norm_layers_must_have_one_row_per_inner_step():
    with pytest.raises(ValueError, match="'norm' has per-step weights for steps=2.*inner_steps=3"):
        MAML(per_step_norm_mlp(steps=2, dtype="float32"), inner_steps=3)


def test_the_preset_maps_the_papers_epochs_to_iterations_and_round_trips(tmp_path):
    config = maml_plus_plus_config(2000)
    assert config == {"inner_lr": 0.1, "inner_steps": 5, "eval_inner_steps": 5, "learn_per_step_inner_lr": True,
                      "multi_step_loss_iterations": 200}
    with pytest.raises(ValueError, match="received iterations=0"):
        maml_plus_plus_config(0)
    maml = MAML(per_step_norm_mlp(steps=5, dtype="float32"), **config)
    episodes = random_episodes((2,))
    maml.save(tmp_path / "maml.keras")
    restored = keras.models.load_model(tmp_path / "maml.keras")
    assert {key: restored.get_config()[key] for key in config} == config
    np.testing.assert_allclose(restored.predict(episodes, verbose=0), maml.predict(episodes, verbose=0), atol=1e-6)


def test_the_command_line_preset_sets_the_papers_combination_unless_a_flag_says_otherwise():
    from tfmeta.experiments import config as train_config
    from tfmeta.experiments.omniglot import build_model, run_name

    def resolved(*flags):
        return train_config.resolve(train_config.train_parser().parse_args(["--algorithm", "maml", *flags]))

    preset = resolved("--maml-plus-plus", "--iterations", "3000", "--meta-batch", "16")
    assert {key: vars(preset)[key] for key in (
        "meta_batch", "pooling", "inner_steps", "eval_inner_steps", "inner_lr", "learn_per_step_inner_lr",
        "multi_step_loss_iterations", "per_step_bn", "per_step_bn_statistics", "meta_lr", "cosine_lr_to",
    )} == {"meta_batch": 16, "pooling": "max", "inner_steps": 5, "eval_inner_steps": 5, "inner_lr": 0.1,
           "learn_per_step_inner_lr": True, "multi_step_loss_iterations": 300, "per_step_bn": True,
           "per_step_bn_statistics": None, "meta_lr": 1e-3, "cosine_lr_to": 1e-5}
    preset.ways = 3
    maml = build_model(preset)
    assert run_name(preset) == "MAML++" and maml.learn_per_step_inner_lr and maml.multi_step_loss_iterations == 300
    norms = [layer for layer in maml.backbone.layers if isinstance(layer, MetaBatchNormalization)]
    assert len(norms) == 4 and all(layer.steps == 5 and not layer.per_step_statistics for layer in norms)
    with pytest.raises(SystemExit, match="--per-step-bn-statistics.*add --per-step-bn"):
        resolved("--per-step-bn-statistics")
    with pytest.raises(SystemExit, match="--maml-plus-plus applies to --algorithm maml"):
        train_config.resolve(train_config.train_parser().parse_args(["--algorithm", "protonet", "--maml-plus-plus"]))
    with pytest.raises(SystemExit, match="tfmeta train: first_order=True.*first_order_iterations=5"):
        build_model(resolved("--first-order", "--first-order-iterations", "5"))
