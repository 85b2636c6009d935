"""The tutorial's code, corrected (examples/tutorial/), agrees with tfmeta; each of its bugs is pinned."""

import importlib.util
import json
import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from conftest import REPO, random_episodes


def load_tutorial(name):
    sys.path.insert(0, str(REPO / "examples" / "tutorial"))  # as when run as a script: beside its harness
    spec = importlib.util.spec_from_file_location(f"tutorial_{name}", REPO / "examples" / "tutorial" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


maml_example = load_tutorial("maml")
matching_example = load_tutorial("matching_networks")

WAYS, SHOTS, QUERIES, TASKS = 5, 1, 3, 2


def tutorial_episodes(example_shape, seed=0):
    """`TASKS` episodes with int labels (tfmeta's form); `tutorial_tasks` gives the tutorial's."""
    return random_episodes(example_shape, tasks=TASKS, ways=WAYS, shots=SHOTS, queries=QUERIES, seed=seed,
                           pixels=True)


def tutorial_tasks(episodes):
    """The same episodes as the tutorial's tuples, one-hot labels, leading task axis."""
    return (tf.constant(episodes["support_x"]), tf.one_hot(episodes["support_y"], WAYS),
            tf.constant(episodes["query_x"]), tf.one_hot(episodes["query_y"], WAYS))


def task(tasks, t):
    return [x[t] for x in tasks]


def relative_error(a, b):
    return float(tf.norm(a - b) / tf.norm(b))


# ---------------------------------------------------------------------------
# tfmeta.models.tutorial_cnn
# ---------------------------------------------------------------------------

def test_tutorial_cnn_is_the_tutorials_network_with_logits():
    model = tfmeta.models.tutorial_cnn(5)
    assert model.output_shape == (None, 5) and model.input_shape == (None, 28, 28, 1)
    assert [layer.name for layer in model.layers[1:]] == [
        "conv1", "pool1", "conv2", "pool2", "flatten", "dense1", "logits"]
    assert [model.get_layer(name).filters for name in ("conv1", "conv2")] == [32, 64]
    assert model.get_layer("flatten").output.shape == (None, 1600)  # "valid" padding: 28-26-13-11-5
    assert model.get_layer("dense1").units == 128 and model.count_params() == 224_389
    assert model.get_layer("logits").activation is keras.activations.linear
    assert not any("normalization" in type(layer).__name__.lower() for layer in model.layers)
    assert tfmeta.models.tutorial_cnn(3, input_shape=(10, 10, 1)).output_shape == (None, 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_classes": 0}, r"`num_classes` must be a positive integer; received num_classes=0\."),
    ({"num_classes": 5.0}, r"received num_classes=5\.0\."),
    ({"num_classes": True}, r"received num_classes=True\."),
    ({"num_classes": 5, "input_shape": (28, 28)}, r"three positive integers; received input_shape=\(28, 28\)\."),
    ({"num_classes": 5, "input_shape": 28}, r"received input_shape=28\."),
    ({"num_classes": 5, "input_shape": (9, 28, 1)}, r"at least 10x10.*received input_shape=\(9, 28, 1\)\."),
])
def test_tutorial_cnn_names_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tfmeta.models.tutorial_cnn(**kwargs)


def test_tutorial_cnn_trains_with_second_order_maml():
    keras.utils.set_random_seed(0)
    maml = tfmeta.MAML(tfmeta.models.tutorial_cnn(WAYS, input_shape=(12, 12, 1)), inner_lr=0.4, inner_steps=1)
    assert not maml.first_order
    maml.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = maml.fit(tf.data.Dataset.from_tensors(tutorial_episodes((12, 12, 1))), verbose=0)
    assert np.isfinite(history.history["loss"]).all()


# ---------------------------------------------------------------------------
# MAML: the corrected tutorial agrees with tfmeta.MAML
# ---------------------------------------------------------------------------

def tutorial_and_tfmeta_maml(inner_lr, steps, seed=0):
    """The tutorial's MAML model and tfmeta.MAML over tutorial_cnn, on the same weights."""
    tf.keras.utils.set_random_seed(seed)
    tutorial = maml_example.MAML(input_shape=(28, 28, 1), num_classes=WAYS)
    backbone = tfmeta.models.tutorial_cnn(WAYS)
    assert [w.shape for w in backbone.weights] == [w.shape for w in tutorial.weights]
    backbone.set_weights(tutorial.get_weights())
    return tutorial, tfmeta.MAML(backbone, inner_lr=inner_lr, inner_steps=steps)


def tfmeta_meta_gradient(maml, episodes):
    """The meta-gradient of tfmeta.MAML's train step: the mean over tasks of each task's
    query-loss gradient through `adapt_and_predict` (tests/test_maml.py pins that the train
    step applies exactly this)."""
    params = [v.value for v in maml.backbone.trainable_variables]
    with tf.GradientTape() as tape:
        tape.watch(params)
        losses = []
        for t in range(TASKS):
            episode = {key: tf.constant(value[t]) for key, value in episodes.items()}
            predictions, _ = tfmeta.algorithms.adapt_and_predict(
                maml.backbone, params, [], episode, maml.task_loss, [maml.inner_lr] * len(params),
                maml.inner_steps)
            losses.append(maml.task_loss(episode["query_y"], predictions))
        loss = tf.reduce_mean(losses)
    return tape.gradient(loss, params)


def tutorial_meta_gradient(model, tasks, inner_lr, steps, task_loss=None):
    """The gradient of train_maml's outer loss: the sum of the task losses."""
    task_loss = task_loss or maml_example.maml_task_loss
    with tf.GradientTape() as tape:
        meta_loss = sum(task_loss(model, *task(tasks, t), inner_lr, steps)[0] for t in range(TASKS))
    return tape.gradient(meta_loss, model.trainable_variables)


@pytest.mark.parametrize("steps", [1, 3])
def test_corrected_tutorial_maml_gives_tfmetas_meta_gradient(steps):
    episodes = tutorial_episodes((28, 28, 1))
    tutorial, maml = tutorial_and_tfmeta_maml(0.4, steps)
    expected = tfmeta_meta_gradient(maml, episodes)
    # The tutorial sums the task losses where tfmeta averages them.
    gradient = [g / TASKS for g in tutorial_meta_gradient(tutorial, tutorial_tasks(episodes), 0.4, steps)]
    for g, e, v in zip(gradient, expected, tutorial.trainable_variables):
        assert float(tf.norm(e)) > 0, v.path
        assert relative_error(g, e) < 1e-5, (v.path, relative_error(g, e))


def assert_first_adam_step(model, gradients, train):
    """`train()` moves `model`'s weights as Adam's first step on `gradients` would."""
    reference = [keras.Variable(v.numpy()) for v in model.trainable_variables]
    keras.optimizers.Adam(1e-3).apply_gradients(zip(gradients, reference))
    train()
    for v, r in zip(model.trainable_variables, reference):
        # Adam's first step is ±1e-3 wherever the gradient is not tiny: a wrong gradient shows.
        np.testing.assert_allclose(v.numpy(), r.numpy(), rtol=0, atol=2e-6, err_msg=v.path)


def test_train_maml_takes_adams_first_step_on_tfmetas_meta_gradient():
    episodes = tutorial_episodes((28, 28, 1), seed=1)
    tutorial, maml = tutorial_and_tfmeta_maml(0.4, 1, seed=1)
    summed = [g * TASKS for g in tfmeta_meta_gradient(maml, episodes)]  # train_maml sums the task losses
    dataset = tf.data.Dataset.from_tensors(tutorial_tasks(episodes))
    assert_first_adam_step(tutorial, summed, lambda: maml_example.train_maml(
        tutorial, dataset, inner_lr=0.4, outer_lr=1e-3, num_inner_steps=1, num_outer_steps=1))


# ---------------------------------------------------------------------------
# MAML: each bug of the tutorial, measured
# ---------------------------------------------------------------------------

def test_original_maml_step_is_plain_multi_task_training():
    """Fast weights unused: the tutorial's meta-gradient is the query-loss gradient at θ, whatever
    num_inner_steps says, and far from MAML's."""
    episodes = tutorial_episodes((28, 28, 1), seed=2)
    tasks = tutorial_tasks(episodes)
    tutorial, _ = tutorial_and_tfmeta_maml(0.4, 1, seed=2)
    original = {steps: tutorial_meta_gradient(tutorial, tasks, 0.4, steps, maml_example.original_task_loss)
                for steps in (1, 5)}
    with tf.GradientTape() as tape:  # the query losses at θ, no adaptation
        multi_task = sum(maml_example.loss_fn(tasks[3][t], tutorial(tasks[2][t])) for t in range(TASKS))
    plain = tape.gradient(multi_task, tutorial.trainable_variables)
    corrected = tutorial_meta_gradient(tutorial, tasks, 0.4, 1)
    for o1, o5, p, c in zip(original[1], original[5], plain, corrected):
        np.testing.assert_array_equal(o1.numpy(), o5.numpy())  # num_inner_steps is ignored
        assert relative_error(o1, p) < 1e-4
        assert relative_error(o1, c) > 0.05  # not MAML's meta-gradient, by far
    # And train_maml(original=True) steps on it.
    dataset = tf.data.Dataset.from_tensors(tasks)
    assert_first_adam_step(tutorial, plain, lambda: maml_example.train_maml(
        tutorial, dataset, inner_lr=0.4, outer_lr=1e-3, num_inner_steps=5, num_outer_steps=1, original=True))


def test_the_corrected_inner_loop_takes_num_inner_steps_steps():
    """The tutorial took one step whatever num_inner_steps said; `adapt` takes them all."""
    episodes = tutorial_episodes((28, 28, 1), seed=4)
    support_images, support_labels = (x[0] for x in tutorial_tasks(episodes)[:2])
    tutorial, _ = tutorial_and_tfmeta_maml(0.4, 1, seed=4)
    copy = maml_example.MAML(input_shape=(28, 28, 1), num_classes=WAYS)
    copy.set_weights(tutorial.get_weights())
    before = tutorial.get_weights()
    by_steps = {}
    for steps in (1, 2, 3):
        with tf.GradientTape() as tape:  # one plain SGD step on the copy
            loss = maml_example.loss_fn(support_labels, copy(support_images))
        for v, g in zip(copy.trainable_variables, tape.gradient(loss, copy.trainable_variables)):
            v.assign(v - 0.4 * g)
        by_steps[steps] = maml_example.adapt(tutorial, support_images, support_labels, 0.4, steps)
        for fast, v in zip(by_steps[steps], copy.trainable_variables):
            np.testing.assert_allclose(fast.numpy(), v.numpy(), rtol=1e-4, atol=1e-6)
    assert relative_error(by_steps[3][-2], by_steps[1][-2]) > 1e-3
    for w, b in zip(tutorial.get_weights(), before):  # the model's own weights are untouched
        np.testing.assert_array_equal(w, b)


def test_swapped_loss_arguments_are_a_different_loss():
    """CategoricalCrossentropy()(predictions, labels) treats the predictions as the targets: with
    Keras's clipping to [1e-7, 1 - 1e-7] it is -log(1e-7) (1 - p_label) ≈ 16.1 (1 - p_label), not
    -log p_label, and its gradient vanishes where p_label is small."""
    probabilities = tf.constant([[0.7, 0.2, 0.1], [0.05, 0.9, 0.05], [0.01, 0.01, 0.98]])
    labels = tf.one_hot([0, 0, 1], 3)
    loss = keras.losses.CategoricalCrossentropy(reduction=None)
    p_label = tf.reduce_sum(probabilities * labels, -1)
    np.testing.assert_allclose(loss(labels, probabilities), -np.log(p_label), rtol=1e-5)
    swapped = -(p_label * np.log(1 - 1e-7) + (1 - p_label) * np.log(1e-7))
    np.testing.assert_allclose(loss(probabilities, labels), swapped, rtol=1e-4)
    # On the network: the inner step with the swapped loss moves the weights elsewhere.
    episodes = tutorial_episodes((28, 28, 1), seed=3)
    tutorial, _ = tutorial_and_tfmeta_maml(0.4, 1, seed=3)
    support_images, support_labels = tutorial_tasks(episodes)[0][0], tutorial_tasks(episodes)[1][0]
    with tf.GradientTape(persistent=True) as tape:
        probabilities = tf.nn.softmax(tutorial(support_images))
        right = keras.losses.CategoricalCrossentropy()(support_labels, probabilities)
        wrong = keras.losses.CategoricalCrossentropy()(probabilities, support_labels)
    for v in tutorial.trainable_variables:
        g_right, g_wrong = tape.gradient(right, v), tape.gradient(wrong, v)
        cosine = float(tf.reduce_sum(g_right * g_wrong) / (tf.norm(g_right) * tf.norm(g_wrong)))
        assert cosine < 0.99, (v.path, cosine)


# ---------------------------------------------------------------------------
# Matching Networks: the corrected tutorial agrees with tfmeta.MatchingNetwork
# ---------------------------------------------------------------------------

def tutorial_and_tfmeta_matching(seed=0, **flags):
    tf.keras.utils.set_random_seed(seed)
    embedding = matching_example.EmbeddingFunction(64)
    embedding(tf.zeros([1, 784]))
    tutorial = matching_example.MatchingNetworks(embedding, num_classes=WAYS, **flags)
    dense = tfmeta.models.dense_embedding(784, units=(128, 64))
    dense.set_weights(embedding.get_weights())
    return tutorial, tfmeta.MatchingNetwork(dense)  # temperature 1: plain cosines, as the tutorial


def test_corrected_tutorial_matching_network_gives_tfmetas_log_probabilities():
    episodes = tutorial_episodes((784,))
    tutorial, matching = tutorial_and_tfmeta_matching()
    expected = matching(episodes).numpy()
    tasks = tutorial_tasks(episodes)
    for t in range(TASKS):
        probabilities = tutorial(*task(tasks, t)[:3])
        np.testing.assert_allclose(probabilities.numpy().sum(-1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(np.log(probabilities.numpy()), expected[t], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# Matching Networks: each bug of the tutorial, measured
# ---------------------------------------------------------------------------

def test_original_similarity_is_not_a_cosine():
    """Normalising the similarity matrix leaves each support example's length in its score."""
    rng = np.random.default_rng(4)
    support, query = rng.normal(size=[5, 8]).astype(np.float32), rng.normal(size=[6, 8]).astype(np.float32)
    labels = tf.one_hot(np.arange(5), 5)
    identity = keras.layers.Identity()
    corrected = matching_example.MatchingNetworks(identity, 5)
    original = matching_example.MatchingNetworks(identity, 5, original_similarity=True)
    longer = support * np.array([[3.0], [1], [1], [1], [1]], np.float32)  # one support example 3x as long
    np.testing.assert_allclose(corrected(longer, labels, query), corrected(support, labels, query), rtol=1e-5)
    changed = np.abs(original(longer, labels, query) - original(support, labels, query)).max()
    assert changed > 0.01, changed
    cosine = tf.matmul(tf.math.l2_normalize(query, 1), tf.math.l2_normalize(support, 1), transpose_b=True)
    np.testing.assert_allclose(corrected(support, labels, query), tf.nn.softmax(cosine), rtol=1e-5)
    assert np.abs(original(support, labels, query) - tf.nn.softmax(cosine)).max() > 0.01


def test_original_head_ignores_the_support_labels():
    """The tutorial's head averages support embeddings: relabelling the support set cannot change
    its prediction, so on new classes in a random label order it is at chance."""
    episodes = tutorial_episodes((784,), seed=5)
    support_x, support_y, query_x, _ = task(tutorial_tasks(episodes), 0)
    relabelled = tf.gather(support_y, [1, 2, 3, 4, 0], axis=1)  # class c becomes class c - 1
    original, _ = tutorial_and_tfmeta_matching(original_similarity=True, original_head=True)
    np.testing.assert_array_equal(original(support_x, support_y, query_x), original(support_x, relabelled, query_x))
    corrected, _ = tutorial_and_tfmeta_matching()
    np.testing.assert_allclose(corrected(support_x, relabelled, query_x),
                               tf.gather(corrected(support_x, support_y, query_x), [1, 2, 3, 4, 0], axis=1),
                               rtol=1e-6)


@pytest.mark.parametrize("flags", [{}, {"original_similarity": True, "original_head": True}])
def test_train_matching_networks_lowers_the_training_loss(flags):
    tasks = tutorial_tasks(tutorial_episodes((784,), seed=6))
    model, _ = tutorial_and_tfmeta_matching(**flags)
    history = matching_example.train_matching_networks(model, tf.data.Dataset.from_tensors(tasks).repeat(), lr=1e-3,
                                                       num_steps=20)
    assert len(history["loss"]) == 20 and history["loss"][-1] < history["loss"][0]


# ---------------------------------------------------------------------------
# The scripts, end to end on tiny budgets
# ---------------------------------------------------------------------------

SUMMARY = re.compile(r"accuracy \d+\.\d\d ± \d+\.\d\d% over 4 episodes$")


@pytest.mark.parametrize("example, family, flags", [
    (maml_example, "maml", ["--inner-steps", "1", "--inner-lr", "0.4"]),
    (matching_example, "matching", ["--original-similarity"]),
])
def test_scripts_train_test_and_write_results(omniglot_dir, tmp_path, capsys, example, family, flags):
    pytest.importorskip("matplotlib")
    output = tmp_path / f"{family}-run.json"
    results = example.main(["--data-dir", str(omniglot_dir), "--ways", "3", "--meta-batch", "2", "--queries", "2",
                            "--iterations", "3", "--val-every", "2", "--val-episodes", "2", "--test-episodes", "4",
                            "--output", str(output), *flags])
    assert SUMMARY.search(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads(output.read_text())
    assert saved["accuracy"] == results["accuracy"] and 0 <= results["accuracy"] <= 1 and results["ci95"] >= 0
    assert saved["test_episodes"] == 4 and saved["ways"] == 3
    assert saved["curve"]["iteration"] == [1, 2, 3] and len(saved["curve"]["loss"]) == 3
    assert saved["curve"]["val_iteration"] == [2, 3] and len(saved["curve"]["val_accuracy"]) == 2
    assert saved["command"].startswith(f"python examples/tutorial/{example.__file__.split('/')[-1]} --data-dir ")
    # The docs' figures and table come from such files.
    assert load_tutorial("report").main(["--results-dir", str(tmp_path), "--figures-dir", str(tmp_path)]) == [
        tmp_path / f"{family}-curves.png"]
    assert f"| {100 * results['accuracy']:.2f} ± {100 * results['ci95']:.2f}% |" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# docs/tutorial.md: its tables are the committed results, and they say what the page says
# ---------------------------------------------------------------------------

RESULTS = REPO / "results" / "tutorial"


@pytest.mark.parametrize("page, language", [("tutorial.md", "en"), ("tutorial.zh-CN.md", "zh-CN")])
def test_the_pages_tables_are_generated_from_the_results(page, language):
    text = (REPO / "docs" / page).read_text()
    tables = load_tutorial("report").tables(RESULTS, language)
    assert set(tables) == {"maml", "matching"}
    for markdown in tables.values():
        assert markdown in text, f"docs/{page} lacks the table of python examples/tutorial/report.py --language {language}"
    for family in ("maml", "matching"):
        assert f"figures/tutorial/{family}-curves.png" in text
        assert (REPO / "docs" / "figures" / "tutorial" / f"{family}-curves.png").is_file()


def test_the_results_support_what_the_page_says():
    runs = {path.stem: json.loads(path.read_text()) for path in RESULTS.glob("*.json")}
    for name, results in runs.items():
        assert results["test_episodes"] == 1000 and results["ways"] == 5 and results["shots"] == 1, name
        assert re.fullmatch(r"python examples/tutorial/\S+\.py( --?[\w-]+(=| )?[\w./-]*)*", results["command"]), name
        assert "--data-dir" not in results["command"] and f"--output results/tutorial/{name}.json" in results["command"]

    def interval(name):
        return runs[name]["accuracy"] - runs[name]["ci95"], runs[name]["accuracy"] + runs[name]["ci95"]

    # MAML: the tutorial's step learns nothing a test-time adaptation can use; the fixes do, and
    # five inner steps beat one at the same rate.
    assert interval("maml-original")[1] < 0.25 < 0.7 < interval("maml-1-step")[0]
    assert interval("maml-1-step")[1] < interval("maml-5-steps")[0]
    # Matching Networks: the tutorial's head is at chance; attention over the labels is not.
    assert abs(runs["matching-original-head"]["accuracy"] - 0.2) < 0.005
    assert min(r["accuracy"] for n, r in runs.items() if n.startswith("matching-corrected")) > 0.8
