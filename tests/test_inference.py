"""Per-query inference: a query's answer depends only on the support set and that query, in process (served: in
tests/test_serving.py, on its exported models)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_per_query, conv_net, one_by_one, random_episodes

import tfmeta
from tfmeta.layers import MetaBatchNormalization, statistics_of_first


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
    episodes = random_episodes((16, 16, 1), tasks=1, ways=5, shots=1, queries=2, pixels=True)
    return {key: value for key, value in episodes.items() if key != "query_y"}


@pytest.mark.parametrize("name", LEARNERS)
def test_in_process_answers_depend_only_on_the_support_set_and_the_query(name):
    keras.utils.set_random_seed(0)
    model = LEARNERS[name]()
    episodes = episode()
    assert_per_query(lambda e: model(e, training=False).numpy(), episodes, tasks=True)
    np.testing.assert_allclose(model.predict(episodes, verbose=0), model(episodes), rtol=1e-5, atol=1e-5)
    if name in MAML_FAMILY:  # the transductive mode does depend on the other queries: the check can fail
        transductive = model(episodes, inference="transductive").numpy()[0]
        alone = one_by_one(lambda e: model(e, inference="transductive").numpy(), episodes, tasks=True)
        assert np.abs(transductive - alone).max() > 1e-2


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
