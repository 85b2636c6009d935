"""Per-query inference: a query's answer depends only on the support set and that query, in process and served."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import conv_net, random_episodes

import tfmeta
from tfmeta.layers import MetaBatchNormalization, statistics_of_first
from tfmeta.serving import export_saved_model

QUERIES = 10  # 2 per class over 5 ways


def small_cnn(norm_steps=None):
    return tfmeta.models.omniglot_cnn(5, input_shape=(16, 16, 1), filters=4, norm_steps=norm_steps)


LEARNERS = {
    "maml": lambda: tfmeta.MAML(small_cnn(), inner_lr=0.4, inner_steps=1, eval_inner_steps=2),
    "meta-sgd": lambda: tfmeta.MAML(small_cnn(), inner_lr=0.4, learn_inner_lr=True),
    "maml-plus-plus": lambda: tfmeta.MAML(small_cnn(norm_steps=2),
                                          **tfmeta.algorithms.maml_plus_plus_config(10) | {"inner_steps": 2,
                                                                                           "eval_inner_steps": 2}),
    "anil": lambda: tfmeta.ANIL(small_cnn(), inner_lr=0.4, inner_steps=1),
    "reptile": lambda: tfmeta.Reptile(small_cnn(), inner_lr=0.1, inner_steps=2, eval_inner_steps=3),
    "matching": lambda: tfmeta.MatchingNetwork(tfmeta.models.conv4_embedding((16, 16, 1), filters=4)),
    "matching-fce": lambda: tfmeta.MatchingNetwork(tfmeta.models.conv4_embedding((16, 16, 1), filters=4), fce=True),
    "protonet": lambda: tfmeta.PrototypicalNetwork(tfmeta.models.conv4_embedding((16, 16, 1), filters=4)),
}
MAML_FAMILY = ("maml", "meta-sgd", "maml-plus-plus", "anil", "reptile")


def episode():
    episodes = random_episodes((16, 16, 1), tasks=1, ways=5, shots=1, queries=QUERIES // 5, pixels=True)
    return {key: value for key, value in episodes.items() if key != "query_y"}


def one_by_one(predict, episodes, tasks=False):
    """Each query's answer asked alone: a request each, or (`tasks`) a task each of one request."""
    if tasks:
        alone = {key: np.repeat(value, QUERIES, axis=0) for key, value in episodes.items() if key != "query_x"}
        return predict({**alone, "query_x": np.swapaxes(episodes["query_x"], 0, 1)})[:, 0]
    return np.stack([predict({**episodes, "query_x": episodes["query_x"][:, q:q + 1]})[0, 0]
                     for q in range(QUERIES)])


def assert_per_query(predict, episodes, tasks=False):
    """`predict(episodes) -> [1, Q, N]` answers each query alike alone, in the batch, and shuffled."""
    together = predict(episodes)[0]
    order = np.random.default_rng(1).permutation(QUERIES)
    shuffled = predict({**episodes, "query_x": episodes["query_x"][:, order]})[0]
    np.testing.assert_allclose(one_by_one(predict, episodes, tasks), together, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(shuffled, together[order], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module", params=list(LEARNERS))
def learner(request):
    keras.utils.set_random_seed(0)
    return request.param, LEARNERS[request.param]()


def test_in_process_answers_depend_only_on_the_support_set_and_the_query(learner):
    name, model = learner
    episodes = episode()
    assert_per_query(lambda e: model(e, training=False).numpy(), episodes, tasks=True)
    np.testing.assert_allclose(model.predict(episodes, verbose=0), model(episodes), rtol=1e-5, atol=1e-5)
    if name in MAML_FAMILY:  # the transductive mode does depend on the other queries: the check can fail
        transductive = model(episodes, inference="transductive").numpy()[0]
        alone = one_by_one(lambda e: model(e, inference="transductive").numpy(), episodes, tasks=True)
        assert np.abs(transductive - alone).max() > 1e-2


def test_served_answers_depend_only_on_the_support_set_and_the_query(learner, tmp_path):
    name, model = learner
    loaded = tf.saved_model.load(str(export_saved_model(model, tmp_path / name, input_range=(0.0, 1.0))))
    episodes = episode()

    def served(signature):
        serve = loaded.signatures[signature]
        return lambda e: serve(support_x=e["support_x"][0], support_y=e["support_y"][0],
                               query_x=e["query_x"][0])["probabilities"].numpy()[np.newaxis]

    assert_per_query(served("serving_default"), episodes)
    tasks = loaded.signatures["serving_tasks"](support_x=episodes["support_x"], support_y=episodes["support_y"],
                                               query_x=episodes["query_x"])["probabilities"]
    np.testing.assert_allclose(tasks[0], served("serving_default")(episodes)[0], rtol=1e-5, atol=1e-6)
    in_process = tf.nn.softmax(model(episodes), axis=-1)[0]
    np.testing.assert_allclose(tasks[0], in_process, rtol=1e-4, atol=1e-5)
    if name in MAML_FAMILY:
        transductive = served("serving_transductive")
        np.testing.assert_allclose(transductive(episodes)[0],
                                   tf.nn.softmax(model(episodes, inference="transductive"), -1)[0], atol=1e-5)
        assert np.abs(transductive(episodes)[0] - one_by_one(transductive, episodes)).max() > 1e-3
    else:
        assert set(loaded.signatures) == {"serving_default", "serving_tasks", "embed"}


def test_queries_are_normalized_with_the_support_moments():
    """`statistics_of_first`: against a NumPy normalization with the first rows' moments."""
    layer = MetaBatchNormalization(epsilon=1e-3)
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(7, 4, 4, 3)).astype(np.float32)
    layer.build(x.shape)
    layer.gamma.assign([1.0, 2.0, 0.5])
    layer.beta.assign([0.0, -1.0, 1.0])
    support = x[:3].reshape(-1, 3)
    expected = (x - support.mean(0)) / np.sqrt(support.var(0) + 1e-3) * [1.0, 2.0, 0.5] + [0.0, -1.0, 1.0]
    with statistics_of_first(3):
        np.testing.assert_allclose(layer(x, training=True), expected, rtol=1e-4, atol=1e-4)
    with statistics_of_first(tf.constant(3)):  # a traced support size
        np.testing.assert_allclose(tf.function(lambda v: layer(v))(x), expected, rtol=1e-4, atol=1e-4)


def test_training_runs_in_the_inference_mode():
    """The query loss a training step reports is that of the queries normalized as the model serves them."""
    episodes = random_episodes((6, 6, 1), tasks=2)
    losses = {}
    for inference in ("per-query", "transductive"):
        maml = tfmeta.MAML(conv_net(), inner_lr=0.3, inference=inference)
        maml.compile(optimizer=keras.optimizers.SGD(0.0))
        predictions = maml(episodes, training=True)
        expected = maml.mean_loss(tf.constant(episodes["query_y"]), predictions)
        losses[inference] = maml.train_on_batch(episodes, return_dict=True)["loss"]
        assert losses[inference] == pytest.approx(float(expected), rel=1e-5)
    assert abs(losses["per-query"] - losses["transductive"]) > 1e-4


def test_inference_is_validated_and_saved(tmp_path):
    with pytest.raises(ValueError, match=r"`inference` must be one of \('per-query', 'transductive'\); "
                                         r"received inference='batch'"):
        tfmeta.MAML(conv_net(), inference="batch")
    maml = tfmeta.MAML(conv_net(), inference="transductive")
    maml.save(tmp_path / "maml.keras")
    assert keras.models.load_model(tmp_path / "maml.keras").inference == "transductive"
