import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import tfmeta
from conftest import (REQUEST_KEYS, assert_per_query, loaded_exports, mlp, moved_off_initialization, one_by_one,
                      random_episodes)
from tfmeta import cli
from tfmeta.serving import MODEL_CARD, export_saved_model

REPO = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE_SHAPE = (28, 28, 1)


def omniglot_like_episodes(tasks=2, ways=5, shots=1, queries=3, seed=0):
    return random_episodes(EXAMPLE_SHAPE, tasks, ways, shots, queries, seed, pixels=True)


def small_embedding():
    return tfmeta.models.conv4_embedding(EXAMPLE_SHAPE, filters=8)


MODELS = {
    "maml-second-order-meta-sgd": lambda: tfmeta.MAML(tfmeta.models.omniglot_cnn(5, filters=8), inner_lr=0.4,
                                                      inner_steps=2, learn_inner_lr=True),
    "maml-first-order": lambda: tfmeta.MAML(tfmeta.models.omniglot_cnn(5, filters=8, pooling="max"),
                                            inner_steps=1, eval_inner_steps=3, first_order=True),
    # MAML++: per-step batch-norm weights and moving statistics (used in serving), per-step learned rates.
    "maml-plus-plus": lambda: tfmeta.MAML(
        tfmeta.models.omniglot_cnn(5, filters=8, norm_steps=2, per_step_statistics=True), inner_lr=0.1,
        inner_steps=2, learn_per_step_inner_lr=True),
    "anil": lambda: tfmeta.ANIL(tfmeta.models.omniglot_cnn(5, filters=8), inner_lr=0.4, inner_steps=2),
    "reptile": lambda: tfmeta.Reptile(tfmeta.models.omniglot_cnn(5, filters=8), inner_lr=0.1, inner_steps=2,
                                      eval_inner_steps=3),
    "matching": lambda: tfmeta.MatchingNetwork(small_embedding(), temperature=5.0, learn_temperature=True),
    "matching-fce": lambda: tfmeta.MatchingNetwork(small_embedding(), fce=True, fce_steps=2),
    "protonet": lambda: tfmeta.PrototypicalNetwork(small_embedding()),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each model, its weights moved off their initial values, exported; with the episodes it was built on."""
    root = tmp_path_factory.mktemp("savedmodels")
    episodes = omniglot_like_episodes()
    models = {}
    for name, build in MODELS.items():
        keras.utils.set_random_seed(0)
        model = build()
        model(episodes)
        moved_off_initialization(model)
        path = export_saved_model(model, root / name, input_range=(0.0, 1.0), metadata={"shots": 1})
        models[name] = (model, path)
    return models, episodes


@pytest.fixture(scope="module")
def loaded(exported):
    return loaded_exports(exported[0])


def in_process_probabilities(model, episodes):
    return tf.nn.softmax(model.predict(episodes, verbose=0), axis=-1).numpy()


def single_task_request(episodes, task=0):
    return {key: tf.constant(episodes[key][task]) for key in REQUEST_KEYS}


CLIENT = """
import sys
sys.modules["keras"] = None  # importing them now raises ImportError
sys.modules["tfmeta"] = None
import numpy as np
import tensorflow as tf
for module in ("keras", "tfmeta"):
    try:
        __import__(module)
        raise SystemExit(module + " is importable")
    except ImportError:
        pass
request = dict(np.load(sys.argv[1]))
outputs = {}
for index, path in enumerate(sys.argv[3:]):
    serve = tf.saved_model.load(path).signatures["serving_default"]
    result = serve(**{key: tf.constant(value) for key, value in request.items()})
    outputs[f"probabilities_{index}"] = result["probabilities"].numpy()
    outputs[f"classes_{index}"] = result["classes"].numpy()
np.savez(sys.argv[2], **outputs)
"""


def test_served_predictions_equal_in_process_ones_in_a_process_without_tfmeta_or_keras(exported, tmp_path):
    models, episodes = exported
    request = single_task_request(episodes)
    np.savez(tmp_path / "request.npz", **{key: value.numpy() for key, value in request.items()})
    paths = [str(path) for _, path in models.values()]
    subprocess.run([sys.executable, "-c", CLIENT, tmp_path / "request.npz", tmp_path / "outputs.npz", *paths],
                   check=True, cwd=tmp_path, timeout=300)
    outputs = np.load(tmp_path / "outputs.npz")
    for index, (name, (model, _)) in enumerate(models.items()):
        expected = in_process_probabilities(model, episodes)[0]
        served = outputs[f"probabilities_{index}"]
        assert served.shape == (15, 5) and served.dtype == np.float32, name
        np.testing.assert_allclose(served, expected, atol=1e-5, rtol=0, err_msg=name)
        np.testing.assert_array_equal(outputs[f"classes_{index}"], expected.argmax(-1), err_msg=name)
        assert outputs[f"classes_{index}"].dtype == np.int64


def test_batched_signature_and_embed_match_the_model(exported, loaded):
    models, episodes = exported
    for name, (model, _) in models.items():
        request = {key: tf.constant(episodes[key]) for key in ("support_x", "support_y", "query_x")}
        served = loaded[name].signatures["serving_tasks"](**request)["probabilities"].numpy()
        np.testing.assert_allclose(served, in_process_probabilities(model, episodes), atol=1e-5, err_msg=name)
        if isinstance(model, tfmeta.algorithms.MetricLearner):
            x = tf.constant(episodes["query_x"][0])
            np.testing.assert_allclose(loaded[name].signatures["embed"](x=x)["embeddings"].numpy(),
                                       model.embed(x).numpy(), atol=1e-5, err_msg=name)
        else:
            assert "embed" not in loaded[name].signatures


@pytest.mark.parametrize("name", MODELS)
def test_served_answers_depend_only_on_the_support_set_and_the_query(exported, loaded, name):
    """One query per request, all in one, shuffled: the same answers; a 1-query request is its row of the task."""
    models, episodes = exported
    model, path = models[name]
    signatures = loaded[name].signatures
    task = {key: value[:1] for key, value in episodes.items()}

    def served(signature):
        serve = signatures[signature]
        return lambda e: serve(**single_task_request(e))["probabilities"].numpy()[np.newaxis]

    assert_per_query(served("serving_default"), task)
    if isinstance(model, tfmeta.algorithms.MetricLearner):
        assert set(signatures) == {"serving_default", "serving_tasks", "embed"}
        return
    transductive = served("serving_transductive")
    whole_request = transductive(task)[0]
    np.testing.assert_allclose(whole_request, tf.nn.softmax(model(task, inference="transductive"), -1)[0], atol=1e-5)
    card = json.loads((path.parent / MODEL_CARD).read_text())
    alone = np.abs(whole_request - one_by_one(transductive, task)).max()
    if card["maml"]["inference_uses_batch_statistics"]:
        # The transductive mode, by name, does depend on the other queries: the check above can fail.
        assert alone > 1e-3
    else:  # MAML++ with its moving per-step statistics: the card says both modes answer alike, and they do
        assert name == "maml-plus-plus" and alone < 1e-5


def test_maml_inner_steps_and_learned_rates_are_baked_in(exported, loaded, tmp_path):
    models, episodes = exported
    model, _ = models["maml-second-order-meta-sgd"]
    rates = np.concatenate([rate.numpy().ravel() for rate in model.inner_lrs])
    assert np.ptp(rates) > 0, "the learned inner rates should differ from one another"
    request = single_task_request(episodes)
    served = loaded["maml-second-order-meta-sgd"].signatures["serving_default"](**request)["probabilities"]
    one_step = export_saved_model(model, tmp_path / "one-step", inner_steps=1)
    served_one_step = tf.saved_model.load(str(one_step)).signatures["serving_default"](**request)
    expected_one_step = tf.nn.softmax(model({k: v[tf.newaxis] for k, v in request.items()}, inner_steps=1))[0]
    np.testing.assert_allclose(served_one_step["probabilities"], expected_one_step, atol=1e-5)
    assert np.abs(served.numpy() - served_one_step["probabilities"].numpy()).max() > 1e-4


def test_maml_plus_plus_serves_with_its_per_step_statistics(exported, loaded):
    models, episodes = exported
    model, _ = models["maml-plus-plus"]
    request = single_task_request(episodes)
    served = loaded["maml-plus-plus"].signatures["serving_default"](**request)["probabilities"].numpy()
    np.testing.assert_allclose(served, in_process_probabilities(model, episodes)[0], atol=1e-5)
    with_batch_statistics = tf.nn.softmax(model({k: v[tf.newaxis] for k, v in request.items()}, training=True))[0]
    assert np.abs(served - with_batch_statistics).max() > 1e-3, "the served graph ignores the moving statistics"


def test_saved_model_cli_lists_the_serving_contract(exported):
    models, _ = exported
    cli = shutil.which("saved_model_cli", path=str(pathlib.Path(sys.executable).parent)) or \
        shutil.which("saved_model_cli")
    command = [cli] if cli else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    for name, signatures in (("maml-first-order", ("serving_default", "serving_tasks")),
                             ("protonet", ("serving_default", "serving_tasks", "embed"))):
        shown = subprocess.run([*command, "show", "--dir", str(models[name][1]), "--all"], check=True,
                               capture_output=True, text=True, timeout=120).stdout
        blocks = dict(re.findall(r"signature_def\['(\w+)'\]:(.*?)(?=signature_def|\Z)", shown, re.S))
        assert set(signatures) <= set(blocks), shown
        default = blocks["serving_default"]
        for key, dtype, shape in (("support_x", "DT_FLOAT", "(-1, 28, 28, 1)"), ("support_y", "DT_INT32", "(-1)"),
                                  ("query_x", "DT_FLOAT", "(-1, 28, 28, 1)"), ("classes", "DT_INT64", "(-1)")):
            assert re.search(rf"\['{key}'\] tensor_info:\s+dtype: {dtype}\s+shape: {re.escape(shape)}",
                             default), (key, default)
        ways = "5" if name.startswith("maml") else "-1"
        assert re.search(rf"\['probabilities'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1, {ways}\)", default)


BAD_REQUESTS = [
    ("rank", lambda r: r.update(support_x=r["support_x"][..., 0]),
     r"Shape of tensor support_x \[5,28,28\] is not compatible with expected shape \[\?,28,28,1\]"),
    ("image size", lambda r: r.update(query_x=tf.zeros([3, 32, 32, 1])),
     r"Shape of tensor query_x \[3,32,32,1\] is not compatible"),
    # MAML's range is its head's [0, 5); a metric model's N = 10 leaves classes 4..8 without support.
    ("support labels out of range", lambda r: r.update(support_y=tf.constant([0, 1, 2, 3, 9])),
     r"support_y holds a label outside \[0, ways=5\)|a class has no support example"),
    ("negative label", lambda r: r.update(support_y=tf.constant([0, 1, -2, 3, 4])),
     r"support_y holds a negative label"),
    ("one label per example", lambda r: r.update(support_y=tf.constant([0, 1, 2, 3])),
     r"support_y must hold one label per support_x example"),
    ("NaN pixels", lambda r: r.update(query_x=tf.fill([3, 28, 28, 1], float("nan"))),
     r"query_x holds NaN or infinite values"),
    ("infinite pixels", lambda r: r.update(support_x=tf.fill([5, 28, 28, 1], float("inf"))),
     r"support_x holds NaN or infinite values"),
    ("pixels outside [0, 1]", lambda r: r.update(support_x=r["support_x"] * 255.0),
     r"support_x values must lie in \[0.0, 1.0\]"),
    ("empty support", lambda r: r.update(support_x=tf.zeros([0, 28, 28, 1]), support_y=tf.zeros([0], tf.int32)),
     r"support_x is empty"),
    ("empty query", lambda r: r.update(query_x=tf.zeros([0, 28, 28, 1])), r"query_x is empty"),
]


@pytest.mark.parametrize("name", ["maml-second-order-meta-sgd", "protonet"])
@pytest.mark.parametrize("case, change, message", BAD_REQUESTS, ids=[case for case, *_ in BAD_REQUESTS])
def test_bad_requests_fail_inside_the_loaded_graph_with_a_named_problem(exported, loaded, name, case, change,
                                                                     message):
    _, episodes = exported
    serve = loaded[name].signatures["serving_default"]
    request = single_task_request(episodes)
    change(request)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(**request)


@pytest.mark.parametrize("name", ["protonet", "maml-first-order"])
def test_a_class_without_support_examples_is_refused(exported, loaded, name):
    _, episodes = exported
    request = single_task_request(episodes)
    request["support_y"] = tf.constant([0, 1, 2, 2, 4])
    with pytest.raises(tf.errors.InvalidArgumentError, match="a class has no support example"):
        loaded[name].signatures["serving_default"](**request)


def rest_request_code(page):
    text = (REPO / page).read_text()
    match = re.search(r"<!-- rest-request-body -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"{page} lacks the REST request body example"
    return match.group(1)


@pytest.mark.parametrize("page", ["README.md", "docs/serving.md"])
def test_the_documented_rest_request_body_runs_through_the_signature(exported, loaded, page):
    models, episodes = exported
    model, _ = models["maml-second-order-meta-sgd"]
    namespace = {key: episodes[key][0] for key in ("support_x", "support_y", "query_x")}
    exec(rest_request_code(page), namespace)
    body = json.loads(namespace["body"])
    assert set(body) == {"inputs"} and set(body["inputs"]) == {"support_x", "support_y", "query_x"}
    # TF Serving converts each JSON input to the dtype its signature declares.
    serve = loaded["maml-second-order-meta-sgd"].signatures["serving_default"]
    dtypes = {spec.name: spec.dtype for spec in serve.structured_input_signature[1].values()}
    outputs = serve(**{key: tf.constant(value, dtypes[key]) for key, value in body["inputs"].items()})
    np.testing.assert_allclose(outputs["probabilities"].numpy(), in_process_probabilities(model, episodes)[0],
                               atol=1e-5)


def test_model_card_and_layout(exported):
    models, _ = exported
    _, path = models["maml-second-order-meta-sgd"]
    assert path.name == "1" and (path / "saved_model.pb").is_file()
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no staging leftovers
    card = json.loads((path.parent / "model.json").read_text())
    assert card["algorithm"] == "MAML" and card["ways"] == 5 and card["shots"] == 1
    assert card["input_shape"] == [28, 28, 1] and card["input_range"] == [0.0, 1.0]
    assert card["maml"]["inner_steps"] == 2 and card["maml"]["learned_inner_lr"] is True
    assert card["maml"]["adapts"] == "all weights but the normalization layers' scales and offsets"
    assert card["maml"]["per_step_batch_norm"] is False
    plus_plus = json.loads((models["maml-plus-plus"][1].parent / "model.json").read_text())["maml"]
    assert plus_plus["learned_per_step_inner_lr"] is True and plus_plus["per_step_batch_norm"] is True
    anil = json.loads((models["anil"][1].parent / "model.json").read_text())["maml"]
    assert anil["adapts"] == ["logits/kernel", "logits/bias"]
    protonet = json.loads((models["protonet"][1].parent / "model.json").read_text())
    assert protonet["ways"] is None and protonet["distance"] == "squared_euclidean"
    for name, algorithm in (("anil", "ANIL"), ("reptile", "Reptile")):
        other = json.loads((models[name][1].parent / "model.json").read_text())
        assert other["algorithm"] == algorithm and other["class"] == f"tfmeta.{algorithm}" and other["ways"] == 5
    assert json.loads((path / "assets.extra" / "model.json").read_text()) == card  # the version's own copy


@pytest.mark.parametrize("learning", ["learn_inner_lr", "learn_per_step_inner_lr"])
def test_model_cards_record_the_learned_inner_rates(learning):
    def trained(seed):
        maml = tfmeta.MAML(mlp(seed=seed), inner_lr=0.4, inner_steps=2, **{learning: True})
        rates = maml.inner_lrs if learning == "learn_inner_lr" else maml.per_step_inner_lrs
        rng = np.random.default_rng(seed)
        for rate in rates:  # as meta-training leaves them: apart, away from inner_lr
            rate.assign(rng.uniform(0.1, 0.9, size=rate.shape))
        return maml, [rate.numpy() for rate in rates]

    maml, rates = trained(0)
    card = tfmeta.serving.model_card(maml, 1)["maml"]
    paths = [v.path for v in maml.backbone.trainable_variables]
    assert [entry["parameter"] for entry in card["learned_inner_lrs"]] == paths
    if learning == "learn_inner_lr":
        recorded = [[entry[key] for key in ("mean", "min", "max")] for entry in card["learned_inner_lrs"]]
        expected = [[rate.mean(), rate.min(), rate.max()] for rate in rates]
    else:
        recorded = [entry["per_step"] for entry in card["learned_inner_lrs"]]
        expected = rates
    np.testing.assert_allclose(recorded, expected, rtol=1e-6)
    json.dumps(card)  # plain numbers, for model.json
    # An ensemble: each member's own.
    other, other_rates = trained(1)
    ensemble_card = tfmeta.serving.model_card(tfmeta.Ensemble([maml, other]), 1)["maml"]
    assert len(ensemble_card["learned_inner_lrs"]) == 2
    assert ensemble_card["learned_inner_lrs"][0] == card["learned_inner_lrs"]
    assert ensemble_card["learned_inner_lrs"][1] == tfmeta.serving.model_card(other, 1)["maml"]["learned_inner_lrs"]
    assert "learned_inner_lrs" not in tfmeta.serving.model_card(tfmeta.MAML(mlp()), 1)["maml"]


def test_a_crash_after_the_rename_leaves_the_version_with_its_card(tmp_path, monkeypatch):
    model = tfmeta.PrototypicalNetwork(tfmeta.models.dense_embedding(4))
    model(random_episodes((4,), queries=4))
    replace = os.replace

    def crash_on_the_card(source, destination):
        if pathlib.Path(destination).name == "model.json":
            raise OSError("simulated crash")
        replace(source, destination)

    monkeypatch.setattr(os, "replace", crash_on_the_card)
    with pytest.raises(OSError, match="simulated crash"):
        export_saved_model(model, tmp_path / "served")
    assert (tmp_path / "served" / "1" / "saved_model.pb").is_file()
    assert json.loads((tmp_path / "served" / "1" / "assets.extra" / "model.json").read_text())["version"] == 1
    assert not (tmp_path / "served" / "model.json").exists()


def test_export_refuses_bad_arguments(exported, tmp_path):
    models, _ = exported
    model, path = models["protonet"]
    with pytest.raises(FileExistsError, match="overwrite"):
        export_saved_model(model, path.parent)
    with pytest.raises(ValueError, match="inner_steps.*MAML models only"):
        export_saved_model(model, tmp_path, inner_steps=3)
    with pytest.raises(ValueError, match="version.*received version=0"):
        export_saved_model(model, tmp_path, version=0)
    with pytest.raises(ValueError, match=r"input_range.*received input_range=\(1, 0\)"):
        export_saved_model(model, tmp_path, input_range=(1, 0))
    with pytest.raises(ValueError, match="Only tfmeta models.*Sequential"):
        export_saved_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), tmp_path)


def test_cli_exports_a_saved_keras_model_with_its_results(exported, tmp_path):
    models, episodes = exported
    model, _ = models["maml-first-order"]
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    results = {"algorithm": "MAML", "dataset": "omniglot", "split": "vinyals", "ways": 5, "shots": 1,
               "accuracy": 0.9, "ci95": 0.01, "test_episodes": 1000, "config": {"meta_batch": 32},
               "command": "python examples/maml_omniglot.py --iterations 1"}
    (run / "results.json").write_text(json.dumps(results))
    output = tmp_path / "savedmodels" / "maml"
    assert cli.main(["export", str(run / "model.keras"), str(output), "--inner-steps", "2"]) == 0
    card = json.loads((output / "model.json").read_text())
    assert card["training_command"] == results["command"] and card["accuracy"] == 0.9
    assert card["meta_batch"] == 32 and card["maml"]["inner_steps"] == 2
    assert card["input_convention"].startswith("pixels float32 in [0, 1]") and card["input_range"] == [0.0, 1.0]
    serve = tf.saved_model.load(str(output / "1")).signatures["serving_default"]
    expected = tf.nn.softmax(model({k: tf.constant(v[:1]) for k, v in episodes.items()}, inner_steps=2))[0]
    np.testing.assert_allclose(serve(**single_task_request(episodes))["probabilities"], expected, atol=1e-5)
    with pytest.raises(SystemExit, match="no model file at"):
        cli.main(["export", str(tmp_path / "missing.keras"), str(output)])
    with pytest.raises(SystemExit, match="exists; pass overwrite"):
        cli.main(["export", str(run / "model.keras"), str(output)])


def test_maml_regressor_serves_predictions_and_refuses_non_finite_targets(tmp_path):
    maml = tfmeta.MAML(tfmeta.models.sinusoid_mlp(), inner_lr=0.01, inner_steps=1, eval_inner_steps=5,
                       loss=keras.losses.MeanSquaredError())
    tasks = next(iter(tfmeta.data.sinusoid_tasks(shots=10, queries=7, seed=0, meta_batch_size=1)))
    tasks = {key: tasks[key] for key in ("support_x", "support_y", "query_x")}
    path = export_saved_model(maml, tmp_path / "sinusoid", input_range=(-5.0, 5.0))
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    request = {key: value[0] for key, value in tasks.items()}
    assert serve.structured_input_signature[1]["support_y"].shape.as_list() == [None, 1]
    np.testing.assert_allclose(serve(**request)["predictions"], maml.predict(tasks, verbose=0)[0], atol=1e-5)
    request["support_y"] = tf.tensor_scatter_nd_update(request["support_y"], [[0, 0]], [float("nan")])
    with pytest.raises(tf.errors.InvalidArgumentError, match="support_y holds NaN or infinite values"):
        serve(**request)
    assert json.loads((path.parent / "model.json").read_text())["task"] == "regression"


COMMITTED_CARDS = sorted((REPO / "savedmodels").glob("*/model.json"))


def _serving_kind(card):
    record = json.loads(card.read_text())
    return record["algorithm"], record["task"], record["input_dtype"]


# Loading a SavedModel takes up to half a minute, so every committed model's files are read (graph, signatures,
# weights, card), and one model of each kind (algorithm, task, input type), whose graphs the others share, is
# loaded and served.
SERVED_CARDS = list({_serving_kind(card): card for card in reversed(COMMITTED_CARDS)}.values())


@pytest.mark.parametrize("card", COMMITTED_CARDS, ids=lambda path: path.parent.name)
def test_committed_savedmodels_carry_their_card_signatures_and_finite_weights(card):
    record = json.loads(card.read_text())
    version = card.parent / str(record["version"])
    assert json.loads((version / "assets.extra" / "model.json").read_text()) == record
    graph = saved_model_pb2.SavedModel.FromString((version / "saved_model.pb").read_bytes()).meta_graphs[0]
    assert {"serving_default", "serving_tasks"} <= set(graph.signature_def)
    support_x = graph.signature_def["serving_default"].inputs["support_x"].tensor_shape
    assert [dim.size for dim in support_x.dim] == [-1, *record["input_shape"]]
    weights = tf.train.load_checkpoint(str(version / "variables" / "variables"))
    shapes = weights.get_variable_to_shape_map()
    assert shapes and all(np.isfinite(weights.get_tensor(name)).all() for name in shapes
                          if weights.get_variable_to_dtype_map()[name].is_floating)
    assert record["training_command"]
    if record["task"] == "classification":
        assert 0 < record["accuracy"] <= 1 and (record["test_episodes"] >= 1000 or record["split"] == "lake")
    else:
        assert np.isfinite(record["mse_1_steps"]) and record["test_tasks"] >= 1000


@pytest.mark.parametrize("card", SERVED_CARDS, ids=lambda path: path.parent.name)
def test_committed_savedmodels_serve_requests_of_their_card(card):
    record = json.loads(card.read_text())
    serve = tf.saved_model.load(str(card.parent / str(record["version"]))).signatures["serving_default"]
    assert serve.structured_input_signature[1]["support_x"].shape.as_list() == [None, *record["input_shape"]]
    rng = np.random.default_rng(0)

    def examples(count):  # random inputs of the card's kind: strings for text models, else numbers in range
        if record["input_dtype"] == "string":
            return tf.constant([" ".join(rng.choice(["audio", "player", "web", "browser", "chess"], 3))
                                for _ in range(count)])
        low, high = record["input_range"]
        return tf.constant(rng.uniform(low, high, [count, *record["input_shape"]]), tf.float32)

    query_x = examples(7)
    if record["task"] == "regression":
        support_x = examples(record["shots"])
        predictions = serve(support_x=support_x, support_y=tf.sin(support_x), query_x=query_x)["predictions"]
        assert predictions.shape == (7, 1) and np.isfinite(predictions.numpy()).all()
        return
    ways, shots = record["ways"], record["shots"]
    outputs = serve(support_x=examples(ways * shots),
                    support_y=tf.constant(np.repeat(np.arange(ways, dtype=np.int32), shots)), query_x=query_x)
    assert outputs["probabilities"].shape == (7, ways)
    np.testing.assert_allclose(outputs["probabilities"].numpy().sum(-1), 1.0, rtol=1e-5)


AUTO_JIT_CLIENT = """
import sys
import numpy as np
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
request = {"support_x": tf.constant([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), "support_y": tf.constant([0, 1, 2]),
           "query_x": tf.constant([[0.5, 0.5]])}
assert serve(**request)["probabilities"].shape == (1, 3)
for key, value in (("query_x", tf.constant([[float("nan"), 0.5]])), ("support_y", tf.constant([0, 1, -1]))):
    try:
        serve(**{**request, key: value})
    except tf.errors.InvalidArgumentError as error:
        print([line for line in error.message.splitlines() if "assertion failed" in line][0])
    else:
        print("served a bad request")
"""


def test_the_export_is_not_xla_compiled_and_keeps_its_checks_under_xla_auto_clustering(tmp_path):
    """A model compiled with jit_compile=True exports its signatures without XLA; auto-clustering keeps the checks."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,))
    model = tfmeta.PrototypicalNetwork(keras.Model(inputs, keras.layers.Dense(4)(inputs)))
    model.compile(jit_compile=True)
    assert model.jit_compile is True
    path = export_saved_model(model, tmp_path / "protonet")
    # XLA compiles a function of a SavedModel when it carries _XlaMustCompile (tf.function(jit_compile=True)).
    assert b"_XlaMustCompile" not in (path / "saved_model.pb").read_bytes()
    # TF_XLA_FLAGS auto-clustering (which TF Serving can turn on) compiles what it can around the checks.
    completed = subprocess.run(
        [sys.executable, "-c", AUTO_JIT_CLIENT, str(path)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"})
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Compiled cluster using XLA" in completed.stderr  # auto-clustering did run
    refusals = completed.stdout.strip().splitlines()
    assert len(refusals) == 2 and "query_x holds NaN or infinite values" in refusals[0], refusals
    assert "support_y holds a negative label" in refusals[1], refusals
