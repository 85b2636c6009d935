import io
import json
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from conftest import random_episodes
from tfmeta.algorithms import MatchingNetwork, PrototypicalNetwork, cosine_similarity
from tfmeta.baselines import pixel_nearest_neighbour
from tfmeta.evaluation import episode_accuracies


def identity_embedding(size=4):
    inputs = keras.Input((size,))
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def numpy_matching_probabilities(support, support_y, query, ways, temperature=1.0):
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)
    cosine = unit(query) @ unit(support).T
    attention = np.exp(temperature * cosine)
    attention /= attention.sum(axis=1, keepdims=True)
    return attention @ np.eye(ways)[support_y]


def test_matching_predictions_equal_a_numpy_reference():
    episodes = random_episodes((4,), queries=4)
    model = MatchingNetwork(identity_embedding(), temperature=3.0)
    log_probabilities = model.predict(episodes, verbose=0)
    for t in range(2):
        expected = numpy_matching_probabilities(episodes["support_x"][t], episodes["support_y"][t],
                                                episodes["query_x"][t], 3, temperature=3.0)
        np.testing.assert_allclose(np.exp(log_probabilities[t]), expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(np.exp(log_probabilities[t]).sum(axis=-1), 1.0, rtol=1e-6)


def test_prototype_predictions_equal_a_numpy_reference():
    episodes = random_episodes((4,), queries=4)
    logits = PrototypicalNetwork(identity_embedding()).predict(episodes, verbose=0)
    for t in range(2):
        support, labels = episodes["support_x"][t], episodes["support_y"][t]
        centres = np.stack([support[labels == c].mean(axis=0) for c in range(3)])
        distances = ((episodes["query_x"][t][:, None, :] - centres[None]) ** 2).sum(-1)
        np.testing.assert_allclose(logits[t], -distances, rtol=1e-5, atol=1e-5)


def test_cosine_prototype_predictions_equal_a_numpy_reference():
    episodes = random_episodes((4,), queries=4)
    logits = PrototypicalNetwork(identity_embedding(), distance="cosine", temperature=3.0).predict(episodes, verbose=0)
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)
    for t in range(2):
        support, labels = episodes["support_x"][t], episodes["support_y"][t]
        centres = np.stack([support[labels == c].mean(axis=0) for c in range(3)])
        np.testing.assert_allclose(logits[t], 3.0 * unit(episodes["query_x"][t]) @ unit(centres).T,
                                   rtol=1e-5, atol=1e-6)


def test_a_learned_temperature_steps_along_its_logarithm_and_stays_positive():
    episodes = random_episodes((4,), queries=4)
    episodes["query_y"] = (episodes["query_y"] + 1) % 3  # wrong labels: a sharper softmax raises the loss

    def loss(temperature):  # in float64
        return np.mean([-np.log(numpy_matching_probabilities(
            episodes["support_x"][t].astype(np.float64), episodes["support_y"][t],
            episodes["query_x"][t].astype(np.float64), 3, temperature)[np.arange(12), episodes["query_y"][t]])
            for t in range(2)])

    h = 1e-5
    slope = (loss(5.0 + h) - loss(5.0 - h)) / (2 * h)  # dL/dT at T = 5
    assert slope > 0
    rate = 1.2 * 5.0 / slope  # a plain SGD step on T would land at 5 - 6 = -1
    model = MatchingNetwork(identity_embedding(), temperature=5.0, learn_temperature=True)
    model.compile(optimizer=keras.optimizers.SGD(rate))
    model.fit(tf.data.Dataset.from_tensors(episodes), verbose=0)
    # On log T the gradient is T dL/dT: log T' = log 5 - rate * 5 * dL/dT.
    np.testing.assert_allclose(float(model.temperature), 5.0 * np.exp(-rate * 5.0 * slope), rtol=1e-3)


def test_a_keras_file_that_stored_the_temperature_itself_loads_with_that_temperature(tmp_path):
    model = MatchingNetwork(identity_embedding(), temperature=5.0, learn_temperature=True)
    episodes = random_episodes((4,), queries=4)
    expected = model.predict(episodes, verbose=0)
    model.save(tmp_path / "new.keras")
    # The file as tfmeta wrote it before: the weight is the temperature, the config has no temperature_weight.
    with zipfile.ZipFile(tmp_path / "new.keras") as new, zipfile.ZipFile(tmp_path / "old.keras", "w") as old:
        for name in new.namelist():
            content = new.read(name)
            if name == "config.json":
                config = json.loads(content)
                del config["config"]["temperature_weight"]
                content = json.dumps(config).encode()
            elif name == "model.weights.h5":
                buffer = io.BytesIO(content)
                with h5py.File(buffer, "r+") as weights:
                    weights["vars/0"][()] = 5.0
                content = buffer.getvalue()
            old.writestr(name, content)
    restored = keras.models.load_model(tmp_path / "old.keras")
    assert float(restored.temperature) == pytest.approx(5.0, rel=1e-6)
    np.testing.assert_allclose(restored.predict(episodes, verbose=0), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("model_class", [MatchingNetwork, PrototypicalNetwork])
def test_predictions_do_not_depend_on_support_order(model_class):
    episodes = random_episodes((4,), queries=4)
    model = model_class(identity_embedding())
    order = np.random.default_rng(1).permutation(6)
    shuffled = dict(episodes, support_x=episodes["support_x"][:, order],
                    support_y=episodes["support_y"][:, order])
    np.testing.assert_allclose(model.predict(episodes, verbose=0), model.predict(shuffled, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_matching_attention_is_the_cosine_of_the_embeddings():
    """Regression for the tutorial's first bug: it normalised the similarity matrix."""
    episodes = random_episodes((4,), tasks=1, queries=4)
    query, support = episodes["query_x"][0], episodes["support_x"][0]
    ours = cosine_similarity(query, support).numpy()
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)
    np.testing.assert_allclose(ours, unit(query) @ unit(support).T, rtol=1e-5)
    tutorial = tf.math.l2_normalize(query @ support.T, axis=-1).numpy()
    assert np.abs(ours - tutorial).max() > 0.1
    # A cosine ignores the length of an embedding; the tutorial's matrix does not.
    longer = support.copy()
    longer[0] *= 5.0
    np.testing.assert_allclose(cosine_similarity(query, longer), ours, rtol=1e-5)
    assert np.abs(tf.math.l2_normalize(query @ longer.T, axis=-1).numpy() - tutorial).max() > 0.1
    model = MatchingNetwork(identity_embedding())
    rescaled = dict(episodes, support_x=episodes["support_x"] * np.float32(7.0))
    np.testing.assert_allclose(model.predict(episodes, verbose=0), model.predict(rescaled, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_matching_predicts_attention_over_support_labels_without_a_classifier_head():
    """Regression for the tutorial's second bug: a dense softmax on an attended embedding."""
    embedding = tfmeta.models.dense_embedding(4, units=(8, 6))
    model = MatchingNetwork(embedding)
    assert {id(v) for v in model.trainable_variables} == {id(v) for v in embedding.trainable_variables}
    episodes = random_episodes((4,), tasks=1, queries=4)
    support = embedding(episodes["support_x"][0]).numpy()
    query = embedding(episodes["query_x"][0]).numpy()
    expected = numpy_matching_probabilities(support, episodes["support_y"][0], query, 3)
    np.testing.assert_allclose(np.exp(model.predict(episodes, verbose=0)[0]), expected,
                               rtol=1e-5, atol=1e-7)
    # Relabelling the support set permutes the predicted distribution the same way.
    relabel = np.array([2, 0, 1])
    relabelled = dict(episodes, support_y=relabel[episodes["support_y"]])
    np.testing.assert_allclose(np.exp(model.predict(relabelled, verbose=0)[0])[:, relabel], expected,
                               rtol=1e-5, atol=1e-7)


def test_full_context_embeddings_give_distributions_that_depend_on_support_order():
    episodes = random_episodes((4,), queries=4)
    model = MatchingNetwork(identity_embedding(), fce=True, fce_steps=3)
    log_probabilities = model.predict(episodes, verbose=0)
    np.testing.assert_allclose(np.exp(log_probabilities).sum(-1), 1.0, rtol=1e-5)
    reversed_support = dict(episodes, support_x=episodes["support_x"][:, ::-1],
                            support_y=episodes["support_y"][:, ::-1])
    assert np.abs(model.predict(reversed_support, verbose=0) - log_probabilities).max() > 1e-4
    assert len(model.trainable_variables) > 0  # the LSTMs are trained


@pytest.mark.parametrize("model_class", [MatchingNetwork, PrototypicalNetwork])
def test_dense_embedding_learns_episodes_of_vectors(model_class):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=[40, 16]) * 2.0
    labels = np.repeat(np.arange(40), 10)
    vectors = centres[labels] + rng.normal(size=[400, 16])
    data = tfmeta.data.LabelledData(vectors.astype(np.float32), labels)
    train = data.select_classes([str(c) for c in range(30)])
    test = data.select_classes([str(c) for c in range(30, 40)])
    keras.utils.set_random_seed(0)
    model = model_class(tfmeta.models.dense_embedding(16, units=(32, 16)))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(tfmeta.data.episodes(train, 5, 1, 5, seed=0, meta_batch_size=8), steps_per_epoch=60,
              verbose=0)
    result = model.evaluate(tfmeta.data.evaluation_episodes(test, 5, 1, 5, 100, meta_batch_size=25),
                            verbose=0, return_dict=True)
    assert result["accuracy"] > 0.8, result


@pytest.fixture(scope="module")
def omniglot_train_and_test(omniglot_dir):
    return [tfmeta.data.load_omniglot(split, omniglot_dir) for split in ("vinyals-train", "vinyals-test")]


# Cosines lie in [-1, 1]: at temperature 1 the attention is nearly flat, so the Matching Network starts its learned
# temperature at 10, as a few hundred episodes are too few to learn the scale from 1.
@pytest.mark.parametrize("model_class, options", [(PrototypicalNetwork, {}),
                                                  (MatchingNetwork, {"learn_temperature": True, "temperature": 10.0})])
def test_a_few_hundred_omniglot_episodes_beat_raw_pixel_nearest_neighbour(omniglot_train_and_test, model_class,
                                                                          options):
    train, test = omniglot_train_and_test
    keras.utils.set_random_seed(0)
    # Half the published width: a quarter of the convolutions' cost, and still far above pixels.
    model = model_class(tfmeta.models.conv4_embedding(filters=32), **options)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(tfmeta.data.episodes(train, 5, 1, 2, seed=0, meta_batch_size=4), steps_per_epoch=80,
              verbose=0)  # 320 episodes, 2 queries per class
    learned = model.evaluate(tfmeta.data.evaluation_episodes(test, 5, 1, 5, 200, meta_batch_size=25),
                             verbose=0, return_dict=True)["accuracy"]
    pixels = episode_accuracies(pixel_nearest_neighbour,
                                tfmeta.data.evaluation_episodes(test, 5, 1, 5, 200, meta_batch_size=25),
                                verbose=0).mean()
    assert learned > pixels + 0.2, (learned, pixels)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: e.update(support_y=e["support_y"] * 2), r"exactly 0..ways-1.*missing \[1, 3\]"),
        (lambda e: e.update(query_y=e["query_y"] + 1), r"query labels must refer to its 3 support classes"),
        (lambda e: e.update(support_x=e["support_x"][:, :0], support_y=e["support_y"][:, :0]),
         "support_x is empty"),
    ],
)
@pytest.mark.parametrize("model_class", [MatchingNetwork, PrototypicalNetwork])
def test_bad_support_sets_are_named(model_class, change, message):
    episodes = random_episodes((4,), queries=4)
    change(episodes)
    model = model_class(identity_embedding())
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=message):
        model.fit(tf.data.Dataset.from_tensors(episodes), verbose=0)


def test_a_support_class_without_examples_fails_inside_the_graph_too():
    episodes = random_episodes((4,), queries=4)
    episodes["support_y"][:, 2:4] = 0  # class 1 has no support example
    with pytest.raises(tf.errors.InvalidArgumentError, match="a class has no support example"):
        PrototypicalNetwork(identity_embedding())(episodes)


@pytest.mark.parametrize("model", [
    lambda: PrototypicalNetwork(tfmeta.models.dense_embedding(4, units=(8, 6))),
    lambda: PrototypicalNetwork(tfmeta.models.dense_embedding(4, units=(8, 6)), distance="cosine",
                                temperature=5.0, learn_temperature=True),
    lambda: MatchingNetwork(tfmeta.models.dense_embedding(4, units=(8, 6)), fce=True, fce_steps=2,
                            temperature=5.0, learn_temperature=True),
])
def test_keras_saving_round_trip(tmp_path, model):
    model = model()
    model.compile(optimizer="adam")
    episodes = random_episodes((4,), queries=4)
    model.fit(tf.data.Dataset.from_tensors(episodes), verbose=0)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    assert type(restored) is type(model)
    np.testing.assert_allclose(restored.predict(episodes, verbose=0), model.predict(episodes, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_bad_constructor_arguments_are_named():
    with pytest.raises(ValueError, match="fce_steps.*received fce_steps=0"):
        MatchingNetwork(identity_embedding(), fce_steps=0)
    with pytest.raises(ValueError, match="temperature.*received temperature=-1"):
        MatchingNetwork(identity_embedding(), temperature=-1)
    with pytest.raises(ValueError, match="distance.*received distance='manhattan'"):
        PrototypicalNetwork(identity_embedding(), distance="manhattan")
    with pytest.raises(ValueError, match="need distance='cosine'.*temperature=5.0"):
        PrototypicalNetwork(identity_embedding(), temperature=5.0)
    with pytest.raises(ValueError, match="temperature.*received temperature=0"):
        PrototypicalNetwork(identity_embedding(), distance="cosine", temperature=0)
    with pytest.raises(ValueError, match=r"vector outputs.*\(None, 4, 4, 2\)"):
        PrototypicalNetwork(keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3)]))
