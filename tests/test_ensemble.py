"""tfmeta.Ensemble averages its members' class probabilities; `tfmeta train --ensemble K` tests the K best
validation checkpoints together (MAML++'s test), and the ensemble saves, loads, evaluates and exports."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from conftest import conv_net, image_folder, random_episodes
from tfmeta import cli
from tfmeta.experiments import parse_train_config
from tfmeta.serving import export_saved_model


def softmax(scores):
    scores = np.asarray(scores, np.float64)
    exponentials = np.exp(scores - scores.max(-1, keepdims=True))
    return exponentials / exponentials.sum(-1, keepdims=True)


def mean_probabilities(members, episodes, **call_kwargs):
    """The NumPy reference: each member's softmax, averaged."""
    return np.mean([softmax(member(episodes, training=False, **call_kwargs)) for member in members], axis=0)


def maml_members():
    return [tfmeta.MAML(conv_net(seed=seed), inner_lr=0.5, eval_inner_steps=1) for seed in (0, 1)]


def test_ensemble_log_probabilities_are_the_log_of_the_mean_probabilities():
    scores = [np.random.default_rng(seed).normal(size=(2, 4, 3)).astype(np.float32) for seed in range(3)]
    expected = np.log(np.mean([softmax(s) for s in scores], axis=0))
    np.testing.assert_allclose(tfmeta.algorithms.ensemble_log_probabilities(scores), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="at least one member"):
        tfmeta.algorithms.ensemble_log_probabilities([])
    # Confident members that disagree: finite log-probabilities, in the members' dtype.
    confident = [np.array([[[800.0, 0.0, -800.0]]]), np.array([[[0.0, 800.0, -700.0]]])]
    combined = tfmeta.algorithms.ensemble_log_probabilities(confident)
    assert combined.dtype == tf.float64
    np.testing.assert_allclose(combined, [[[np.log(0.5), np.log(0.5), -1500 - np.log(2)]]], rtol=1e-12)


def test_a_maml_ensemble_adapts_each_member_and_averages_their_probabilities():
    members = maml_members()
    episodes = {key: tf.constant(value) for key, value in random_episodes((6, 6, 1), pixels=True).items()}
    ensemble = tfmeta.Ensemble(members)
    for steps in (None, 3):
        kwargs = {} if steps is None else {"inner_steps": steps}
        probabilities = tf.nn.softmax(ensemble(episodes, **kwargs)).numpy()
        np.testing.assert_allclose(probabilities, mean_probabilities(members, episodes, **kwargs), atol=1e-6)
    # More inner steps change each member's adaptation, hence the ensemble's output.
    assert not np.allclose(ensemble(episodes), ensemble(episodes, inner_steps=3))


def test_an_ensemble_saves_loads_and_exports_with_its_card(tmp_path):
    members = maml_members()
    episodes = random_episodes((6, 6, 1), tasks=1, pixels=True)
    ensemble = tfmeta.Ensemble(members)
    ensemble.save(tmp_path / "ensemble.keras")
    loaded = keras.models.load_model(tmp_path / "ensemble.keras")
    assert isinstance(loaded, tfmeta.Ensemble) and len(loaded.members) == 2
    np.testing.assert_allclose(loaded(episodes), ensemble(episodes), atol=1e-6)

    path = export_saved_model(loaded, tmp_path / "served", inner_steps=2, input_range=(0.0, 1.0))
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    request = {key: tf.constant(episodes[key][0]) for key in ("support_x", "support_y", "query_x")}
    np.testing.assert_allclose(serve(**request)["probabilities"],
                               mean_probabilities(members, episodes, inner_steps=2)[0], atol=1e-5)
    card = json.loads((tmp_path / "served" / "model.json").read_text())
    assert card["class"] == "tfmeta.Ensemble" and card["algorithm"] == "MAML, ensemble of 2"
    assert card["maml"]["inner_steps"] == 2 and "embed" not in card["signatures"]
    assert card["ensemble"] == {"members": 2, "member_class": "tfmeta.MAML",
                                "combination": "the mean of the members' class probabilities"}


def test_an_ensemble_refuses_members_that_cannot_predict_together():
    maml = maml_members()[0]
    protonet = tfmeta.PrototypicalNetwork(tfmeta.models.dense_embedding(4))
    with pytest.raises(ValueError, match="non-empty list of tfmeta classifiers; received \\[\\]"):
        tfmeta.Ensemble([])
    with pytest.raises(ValueError, match="must be a tfmeta classifier.*Sequential"):
        tfmeta.Ensemble([maml, keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])])
    with pytest.raises(ValueError, match=r"agree on their ways; received \[3, 5\]"):
        tfmeta.Ensemble([maml, tfmeta.MAML(conv_net(ways=5))])
    with pytest.raises(ValueError, match=r"all of the MAML family .* or all metric models.*'MAML', 'PrototypicalNet"):
        tfmeta.Ensemble([maml, protonet])
    with pytest.raises(ValueError, match="agree on their example_shape"):
        tfmeta.Ensemble([protonet, tfmeta.PrototypicalNetwork(tfmeta.models.dense_embedding(3))])
    episodes = random_episodes((4,))
    with pytest.raises(ValueError, match="inner_steps` applies to MAML members only"):
        tfmeta.Ensemble([protonet])(episodes, inner_steps=2)


def test_tfmeta_train_ensemble_tests_the_best_validated_checkpoints_together(tmp_path, monkeypatch):
    image_folder(tmp_path / "photos", per_class=4, classes={
        f"c{i}": tuple(int(v) for v in np.random.default_rng(i).integers(0, 256, 3)) for i in range(10)})
    monkeypatch.chdir(tmp_path)
    cli.main(["train", "--algorithm", "protonet", "--dataset", "images:photos", "--image-size", "16",
              "16", "--ways", "2", "--shots", "1", "--queries", "1", "--meta-batch", "2", "--iterations", "3",
              "--iterations-per-epoch", "1", "--val-episodes", "4", "--test-episodes", "2", "--ensemble", "2",
              "--output-dir", "run"])
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    val = results["curve"]["val_accuracy"]
    best = sorted(range(1, 4), key=lambda epoch: (-val[epoch - 1], epoch))[:2]
    assert results["ensemble_iterations"] == best and results["selected_iteration"] == best[0]
    assert results["selected_by"] == "ensemble of the 2 best val_accuracy"
    assert results["algorithm"] == "Prototypical Networks, ensemble of 2 checkpoints"
    kept = sorted(path.name for path in (tmp_path / "run" / "checkpoints").glob("epoch-*.keras"))
    assert kept == sorted({f"epoch-{epoch:04d}.keras" for epoch in [*best, 3]})
    ensemble = keras.models.load_model(tmp_path / "run" / "model.keras")
    members = [keras.models.load_model(tmp_path / "run" / "checkpoints" / f"epoch-{epoch:04d}.keras")
               for epoch in best]
    episodes = random_episodes((16, 16, 3), ways=2, shots=1, pixels=True)
    np.testing.assert_allclose(tf.nn.softmax(ensemble(episodes)), mean_probabilities(members, episodes), atol=1e-6)
    cli.main(["export", "run/model.keras", "served"])
    card = json.loads((tmp_path / "served" / "model.json").read_text())
    assert card["class"] == "tfmeta.Ensemble" and card["ensemble_iterations"] == best
    assert card["algorithm"] == results["algorithm"] and card["accuracy"] == results["accuracy"]
    for flags, message in ((["--ensemble", "1"], r"needs K in \[2, 20\]"),
                           (["--ensemble", "5", "--early-stopping", "3"], r"needs K in \[2, 4\]"),
                           (["--ensemble", "3", "--test-last"], "test-last"),
                           (["--dataset", "sinusoid", "--ensemble", "2"], "sinusoid")):
        with pytest.raises(SystemExit, match=message):
            parse_train_config(["--algorithm", "maml", "--iterations", "2000", "--iterations-per-epoch", "100",
                                *flags])
