"""ANIL and Reptile: meta-gradients against central differences, a Reptile step against NumPy, the command line."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from conftest import conv_net, directional_derivatives, float64_episodes, loss_for, mlp, random_episodes, task
from tfmeta import cli
from tfmeta.algorithms import adapt_and_predict
from tfmeta.experiments import config as run_config
from tfmeta.experiments.omniglot import run_name
from tfmeta.layers import MetaBatchNormalization


def one_step_update(model, episodes, learning_rate=1.0):
    """The change of the model's weights in one `fit` step with SGD(`learning_rate`), as arrays."""
    before = [v.numpy() for v in model.trainable_variables]
    model.compile(optimizer=keras.optimizers.SGD(learning_rate))
    model.fit(tf.data.Dataset.from_tensors(episodes), verbose=0)
    return before, [v.numpy() for v in model.trainable_variables]


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("network, shape", [(mlp, (2,)), (conv_net, (6, 6, 1))])
def test_anil_meta_gradient_of_a_training_step_matches_finite_differences(network, shape, steps):
    anil = tfmeta.ANIL(network("float64"), inner_lr=0.3, inner_steps=steps, loss=loss_for("float64"))
    assert anil.reuses_features  # the inner loop runs the head alone on features computed once
    episodes = random_episodes(shape, dtype="float64")

    def mean_query_loss(values):
        for variable, value in zip(anil.trainable_variables, values):
            variable.assign(value)
        return float(anil.mean_loss(episodes["query_y"], anil(episodes, inner_steps=steps)))

    before, after = one_step_update(anil, episodes)  # SGD(1.0): the step is minus the meta-gradient
    gradient = [b - a for b, a in zip(before, after)]
    analytic, numeric = directional_derivatives(mean_query_loss, before, gradient)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)
    # The body gets a meta-gradient too (its first kernel here): the outer loop learns it.
    assert np.abs(gradient[0]).max() > 1e-6


@pytest.mark.parametrize("inference", ["per-query", "transductive"])
def test_anil_on_features_computed_once_equals_the_whole_network_at_every_step(inference):
    loss = loss_for("float64")
    anil = tfmeta.ANIL(conv_net("float64"), inner_lr=0.3, inner_steps=2, loss=loss, inference=inference)
    backbone = anil.backbone
    head = backbone.get_layer(anil.head[0]).trainable_variables
    rates = [0.3 if any(v is w for w in head) else None for v in backbone.trainable_variables]
    params = [v.value for v in backbone.trainable_variables]
    episodes = float64_episodes(2, (6, 6, 1))

    def whole_network(t):  # every inner step and the query pass run the whole backbone (MAML's adapt_and_predict)
        with tf.GradientTape() as tape:
            tape.watch(params)
            predictions, _ = adapt_and_predict(backbone, params, [], task(episodes, t), loss, rates, 2,
                                               inference=inference)
            query_loss = loss(episodes["query_y"][t], predictions)
        return predictions.numpy(), [g.numpy() for g in tape.gradient(query_loss, params)]

    predictions, gradients = zip(*[whole_network(t) for t in range(2)])
    np.testing.assert_allclose(anil(episodes, training=True, inner_steps=2), predictions, rtol=1e-10, atol=1e-13)
    before, after = one_step_update(anil, episodes)  # SGD(1.0): the step is minus the meta-gradient
    for got, want in zip([b - a for b, a in zip(before, after)], zip(*gradients)):
        np.testing.assert_allclose(got, np.mean(want, axis=0), rtol=1e-10, atol=1e-13)


def test_anil_runs_the_whole_network_where_the_body_changes_from_step_to_step():
    inputs = keras.Input((2,))
    per_step = MetaBatchNormalization(steps=2)(keras.layers.Dense(4)(inputs))
    assert not tfmeta.ANIL(keras.Model(inputs, keras.layers.Dense(3)(per_step)), inner_steps=2).reuses_features

    # A head layer nested in another layer: the backbone's graph has no tensor below it to cut at.
    nested = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="nested_logits")])
    backbone = keras.Model(inputs, nested(keras.layers.Dense(4)(inputs)))
    anil = tfmeta.ANIL(backbone, head=["nested_logits"], inner_lr=0.5, eval_inner_steps=2)
    assert not anil.reuses_features
    assert anil.predict(random_episodes((2,), tasks=1), verbose=0).shape == (1, 9, 3)
    assert tfmeta.ANIL(backbone, inner_lr=0.5).reuses_features  # the nested model as the head


def test_anil_adapts_the_head_alone():
    episodes = random_episodes((2,), tasks=1)
    anil = tfmeta.ANIL(mlp(), inner_lr=0.5, eval_inner_steps=2)
    assert anil.head == [anil.backbone.layers[-1].name]
    # Two SGD steps on the support set by hand, on the output layer's weights alone.
    by_hand = mlp()
    head = by_hand.layers[-1].trainable_variables
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = anil.task_loss(episodes["support_y"][0], by_hand(episodes["support_x"][0]))
        for variable, gradient in zip(head, tape.gradient(loss, head)):
            variable.assign(variable - 0.5 * gradient)
    expected = by_hand(episodes["query_x"][0]).numpy()
    np.testing.assert_allclose(anil.predict(episodes, verbose=0)[0], expected, rtol=1e-5, atol=1e-6)
    maml = tfmeta.MAML(mlp(), inner_lr=0.5, eval_inner_steps=2)
    assert np.abs(maml.predict(episodes, verbose=0)[0] - expected).max() > 1e-3
    # Learned inner rates (Meta-SGD) exist for the head's weights alone.
    meta_sgd = tfmeta.ANIL(mlp(), learn_inner_lr=True)
    assert [rate.shape for rate in meta_sgd.inner_lrs] == [v.shape for v in meta_sgd.backbone.layers[-1].weights]


def test_anil_head_by_name_and_its_errors():
    episodes = random_episodes((2,), tasks=1)
    network = mlp()
    last_two = [layer.name for layer in network.layers[-2:]]
    two_layers = tfmeta.ANIL(network, inner_lr=0.5, head=last_two)
    one_layer = tfmeta.ANIL(mlp(), inner_lr=0.5)
    assert np.abs(two_layers.predict(episodes, verbose=0) - one_layer.predict(episodes, verbose=0)).max() > 1e-4
    assert tfmeta.ANIL.from_config(two_layers.get_config()).head == last_two
    with pytest.raises(ValueError, match=r"names layers \['no_such_layer'\] that backbone .* does not have"):
        tfmeta.ANIL(mlp(), head=["no_such_layer"])
    with pytest.raises(ValueError, match=r"non-empty list of layer names; received head='logits'"):
        tfmeta.ANIL(mlp(), head="logits")
    inputs = keras.Input((2,))
    flat = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten(name="flat")(inputs)))
    with pytest.raises(ValueError, match=r"\['flat'\] have no trainable weights"):
        tfmeta.ANIL(flat, head=["flat"])


def tiny_tanh_net():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((2,), dtype="float64")
    hidden = keras.layers.Dense(4, activation="tanh", dtype="float64")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, dtype="float64")(hidden))


def numpy_reptile_step(weights, episodes, inner_lr, steps, epsilon, batch_size=None):
    """Nichol et al.'s Algorithm 2 for `tiny_tanh_net`: SGD on each task, then θ + ε (mean θ' − θ).

    Each SGD step takes the whole task, or the next `batch_size` examples (support then query), wrapping around.
    """
    def gradients(w, x, y):
        kernel1, bias1, kernel2, bias2 = w
        hidden = np.tanh(x @ kernel1 + bias1)
        logits = hidden @ kernel2 + bias2
        probabilities = np.exp(logits - logits.max(-1, keepdims=True))
        probabilities /= probabilities.sum(-1, keepdims=True)
        d_logits = (probabilities - np.eye(3)[y]) / len(y)
        d_hidden = d_logits @ kernel2.T * (1 - hidden ** 2)
        return [x.T @ d_hidden, d_hidden.sum(0), hidden.T @ d_logits, d_logits.sum(0)]

    adapted = []
    for t in range(len(episodes["support_x"])):
        x = np.concatenate([episodes["support_x"][t], episodes["query_x"][t]])
        y = np.concatenate([episodes["support_y"][t], episodes["query_y"][t]])
        w = [np.array(v) for v in weights]
        for step in range(steps):
            rows = np.arange(len(y)) if batch_size is None else (np.arange(batch_size) + step * batch_size) % len(y)
            w = [v - inner_lr * g for v, g in zip(w, gradients(w, x[rows], y[rows]))]
        adapted.append(w)
    mean = [np.mean(values, axis=0) for values in zip(*adapted)]
    return [v + epsilon * (m - v) for v, m in zip(weights, mean)]


@pytest.mark.parametrize("batch_size", [None, 6])  # 6: the third batch of a task's 15 examples wraps around
def test_reptile_step_with_sgd_equals_numpy_reptile(batch_size):
    episodes = random_episodes((2,), tasks=3, dtype="float64")
    # 0.25: MAML casts the Python rate to the weights' dtype through float32, exact for 0.25.
    reptile = tfmeta.Reptile(tiny_tanh_net(), inner_lr=0.25, inner_steps=3, loss=loss_for("float64"),
                             inner_batch_size=batch_size)
    before, after = one_step_update(reptile, episodes, learning_rate=0.5)
    expected = numpy_reptile_step(before, episodes, inner_lr=0.25, steps=3, epsilon=0.5, batch_size=batch_size)
    for got, want in zip(after, expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert max(np.abs(a - b).max() for a, b in zip(after, before)) > 1e-3


def test_reptile_adapts_on_the_support_set_at_test_time_and_round_trips():
    episodes = random_episodes((2,), tasks=2)
    reptile = tfmeta.Reptile(mlp(), inner_lr=0.3, inner_steps=2, eval_inner_steps=4)
    maml = tfmeta.MAML(mlp(), inner_lr=0.3, eval_inner_steps=4)  # the same weights (seeded)
    np.testing.assert_allclose(reptile.predict(episodes, verbose=0), maml.predict(episodes, verbose=0), rtol=1e-6)
    restored = tfmeta.Reptile.from_config(tfmeta.Reptile(mlp(), 0.3, 2, 4, inner_batch_size=10).get_config())
    assert (restored.inner_lr, restored.inner_steps, restored.eval_inner_steps, restored.inner_batch_size) == \
        (0.3, 2, 4, 10)


def test_reptile_undoes_a_non_finite_step_and_names_it():
    episodes = random_episodes((2,), tasks=2)
    episodes["query_x"][1, 0, 0] = np.nan  # the query set is part of Reptile's training set
    reptile = tfmeta.Reptile(mlp(), inner_lr=0.25, inner_steps=2)
    reptile.compile(optimizer=keras.optimizers.SGD(0.5))
    before = reptile.get_weights()
    with pytest.raises(FloatingPointError, match="Non-finite meta-loss or gradient at training step 1"):
        reptile.fit(tf.data.Dataset.from_tensors(episodes), verbose=0)
    for weights, old in zip(reptile.get_weights(), before):
        np.testing.assert_array_equal(weights, old)


def test_reptile_refuses_what_it_cannot_train():
    with pytest.raises(ValueError, match=r"Reptile has no \['first_order', 'learn_inner_lr'\]"):
        tfmeta.Reptile(mlp(), first_order=True, learn_inner_lr=True)
    with pytest.raises(ValueError, match="`inner_batch_size` must be None or a positive integer; received "
                                         "inner_batch_size=0"):
        tfmeta.Reptile(mlp(), inner_batch_size=0)
    inputs = keras.Input((2,))
    per_step = keras.Model(inputs, keras.layers.Dense(3)(MetaBatchNormalization(steps=5, name="bn")(inputs)))
    with pytest.raises(ValueError, match=r"per-step batch-norm weights \(layers \['bn'\]\)"):
        tfmeta.Reptile(per_step)
    with pytest.raises(ValueError, match="would never train; received adapt_normalization=False"):
        tfmeta.Reptile(mlp(), adapt_normalization=False)
    # Its inner loop adapts the normalization weights, which its outer update then trains.
    normalized = keras.Model(inputs, keras.layers.Dense(3)(MetaBatchNormalization(name="bn")(inputs)))
    reptile = tfmeta.Reptile(normalized)
    assert all(reptile._adapted) and "adapt_normalization" not in reptile.get_config()
    assert all(tfmeta.Reptile.from_config(reptile.get_config())._adapted)


def resolved(*flags):
    return run_config.resolve(run_config.train_parser().parse_args(list(flags)))


@pytest.mark.parametrize("flags, name", [
    (["--algorithm", "anil"], "ANIL"),
    (["--algorithm", "anil", "--first-order"], "first-order ANIL"),
    (["--algorithm", "reptile"], "Reptile"),
])
def test_run_names_of_anil_and_reptile(flags, name):
    assert run_name(resolved(*flags)) == name


def test_reptile_takes_the_papers_omniglot_defaults_and_outer_sgd():
    config = resolved("--algorithm", "reptile")
    assert (config.inner_steps, config.eval_inner_steps, config.meta_batch, config.meta_lr, config.inner_batch) == \
        (5, 50, 5, 1.0, 10)
    model = tfmeta.experiments.build_model(config)
    assert model.inner_batch_size == 10
    run_config.compile_for_training(model, config)
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    schedule = keras.optimizers.schedules.deserialize(model.optimizer.get_config()["learning_rate"])
    # Annealed linearly from 1.0 to 0 over the run.
    assert [float(schedule(step)) for step in (0, config.iterations // 2, config.iterations)] == [1.0, 0.5, 0.0]
    with pytest.raises(SystemExit, match=r"Reptile has no \['first_order'\]"):
        tfmeta.experiments.build_model(resolved("--algorithm", "reptile", "--first-order"))
    with pytest.raises(SystemExit, match="--algorithm anil trains on omniglot; received --dataset sinusoid"):
        resolved("--algorithm", "anil", "--dataset", "sinusoid")
    with pytest.raises(SystemExit, match="--inner-batch applies to --algorithm reptile; received --algorithm maml"):
        resolved("--algorithm", "maml", "--inner-batch", "10")
    with pytest.raises(SystemExit, match="`inner_batch_size` must be None or a positive integer; received "
                                         "inner_batch_size=0"):
        tfmeta.experiments.build_model(resolved("--algorithm", "reptile", "--inner-batch", "0"))


def test_reptile_trains_from_the_command_line_and_exports_with_its_name(omniglot_dir, tmp_path):
    run = tmp_path / "run"
    # In process: the Omniglot read is shared with the suite's other tests.
    assert cli.main(list(map(str, [
        "train", "--algorithm", "reptile", "--ways", 3, "--meta-batch", 2, "--queries", 2, "--inner-steps", 1,
        "--inner-batch", 3, "--eval-inner-steps", 2, "--iterations", 2, "--iterations-per-epoch", 1, "--val-episodes", 2,
        "--test-episodes", 5, "--data-dir", omniglot_dir, "--output-dir", run]))) == 0
    cli.main(["export", str(run / "model.keras"), str(tmp_path / "served")])
    card = json.loads((tmp_path / "served" / "model.json").read_text())
    assert (card["algorithm"], card["class"], card["maml"]["inner_steps"]) == ("Reptile", "tfmeta.Reptile", 2)
    assert (card["maml"]["training_inner_steps"], card["maml"]["training_inner_batch_size"]) == (1, 3)
    model = keras.models.load_model(run / "model.keras")
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    episodes = random_episodes((28, 28, 1), ways=3, shots=1, pixels=True)
    request = {key: tf.constant(episodes[key][0]) for key in ("support_x", "support_y", "query_x")}
    served = tf.saved_model.load(str(tmp_path / "served" / "1")).signatures["serving_default"](**request)
    np.testing.assert_allclose(served["probabilities"], tf.nn.softmax(model.predict(episodes, verbose=0)[0]),
                               atol=1e-5)


def test_anil_from_the_command_line_adapts_the_omniglot_cnns_logits_alone():
    anil = tfmeta.experiments.build_model(resolved("--algorithm", "anil"))
    assert isinstance(anil, tfmeta.ANIL) and anil.head == ["logits"]
    assert [v.path for v, adapts in zip(anil.backbone.trainable_variables, anil._adapted) if adapts] == \
        ["logits/kernel", "logits/bias"]
