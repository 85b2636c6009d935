"""Export to a SavedModel that TF Serving serves, with adaptation and prediction inside the graph.

The served graph takes a task (support set and query set) and returns
predictions: for MAML, ANIL and Reptile the inner-loop adaptation runs in it;
for metric models the embedding and the attention or prototypes do. Nobody serving the model
needs Python, tfmeta or Keras.

The serving contract of a classifier, signature `serving_default`, one task:

- inputs: `support_x` float32 `[S, *example_shape]`, `support_y` int32 `[S]`,
  `query_x` float32 `[Q, *example_shape]`;
- outputs: `probabilities` float32 `[Q, N]`, `classes` int64 `[Q]`.

Every answer depends only on the support set and that query, never on the
other queries of the request: the MAML family normalizes the queries with
the support set's batch statistics (per-query inference, see
`tfmeta.algorithms.predict_queries`), and metric models embed each query
alone. The MAML family also exports `serving_transductive` and
`serving_tasks_transductive`, the same contract with the queries normalized
by their own batch's statistics (Finn et al.'s evaluation), where an answer
changes with the other queries sent beside it.

N is fixed by the head for MAML, ANIL and Reptile (support labels exactly `0..N-1`, each present) and is
`max(support_y) + 1` for metric models (labels exactly `0..N-1`, each
present). `serving_tasks` takes and returns the same with a leading task axis
`[T, ...]`. Metric models also export `embed` (`x` -> `embeddings`). A MAML
regressor (e.g. sinusoid) takes float32 targets `support_y [S, *outputs]` and
returns `predictions` instead.

Every request is checked inside the graph before anything is computed: ranks,
example shape, empty sets, non-finite inputs, inputs outside the model's
declared range, and labels. A bad request fails with an
`InvalidArgumentError` whose message names the problem.

Text models (an embedding whose input is raw strings, e.g.
`tfmeta.models.text_conv_embedding`) take `support_x` and `query_x` as
string `[S]` and `[Q]`, tokenized inside the graph with the vocabulary the
SavedModel carries; an empty or blank string is refused (it holds no token:
its embedding would say nothing about it).
"""

import json
import os
import pathlib
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

import tfmeta
from tfmeta.algorithms import MAML, Ensemble, MetricLearner, keras_internals
from tfmeta.algorithms.maml import (INFERENCE_MODES, _check_inference, _check_steps, normalization_weights,
                                    normalizes_with_batch_statistics)
from tfmeta.layers.batch_normalization import MetaBatchNormalization

MODEL_CARD = "model.json"
VERSION_CARD = pathlib.Path("assets.extra", MODEL_CARD)


def _assert(condition, message, *values):
    return tf.debugging.Assert(condition, [message, *values], summarize=16)


def _checked_examples(key, x, leading, example_shape, input_range):
    """`x` with `leading` leading (batch) axes, after assertions on its shape and values."""
    # EnsureShape runs on what the client actually sent, whatever the
    # signature declares: TF Serving feeds tensors of any shape to the graph.
    x = tf.ensure_shape(x, [None] * leading + list(example_shape), name=f"{key}_shape")
    shape = tf.shape(x)
    if x.dtype == tf.string:  # a blank text holds no token: its embedding would say nothing about it
        values = _assert(tf.reduce_all(tf.strings.length(tf.strings.strip(x)) > 0),
                         f"{key} holds an empty or blank string: every text needs at least one word")
    else:
        values = _assert(tf.reduce_all(tf.math.is_finite(x)), f"{key} holds NaN or infinite values")
    checks = [
        _assert(tf.reduce_all(shape[:leading] > 0),
                f"{key} is empty: every request needs at least one example; received shape", shape),
        values,
    ]
    if input_range is not None:
        low, high = input_range
        checks.append(_assert(tf.reduce_all(tf.logical_and(x >= low, x <= high)),
                              f"{key} values must lie in [{low}, {high}]; received values in",
                              tf.reduce_min(x), tf.reduce_max(x)))
    with tf.control_dependencies(checks):
        return tf.identity(x)


def _checked_labels(support_y, support_x, leading, label_shape, integer_labels):
    """`support_y` after assertions that it holds one label per support example."""
    support_y = tf.ensure_shape(support_y, [None] * leading + list(label_shape), name="support_y_shape")
    labels_shape, examples_shape = tf.shape(support_y), tf.shape(support_x)
    checks = [_assert(tf.reduce_all(tf.equal(labels_shape[:leading], examples_shape[:leading])),
                      "support_y must hold one label per support_x example; received shapes",
                      labels_shape, examples_shape)]
    if not integer_labels:
        checks.append(_assert(tf.reduce_all(tf.math.is_finite(support_y)),
                              "support_y holds NaN or infinite values"))
    with tf.control_dependencies(checks):
        return tf.identity(support_y)


def _checked_episodes(model, request, batched, input_range):
    """The request as model episodes `[T, ...]`, computed only after every check passed."""
    leading = 2 if batched else 1
    support_x = _checked_examples("support_x", request["support_x"], leading, model.example_shape,
                                  input_range)
    query_x = _checked_examples("query_x", request["query_x"], leading, model.example_shape, input_range)
    support_y = _checked_labels(request["support_y"], support_x, leading, _label_shape(model),
                                model.is_classifier)
    episodes = {"support_x": support_x, "support_y": support_y, "query_x": query_x}
    if batched:
        tasks = tf.shape(support_x)[0], tf.shape(query_x)[0]
        same_tasks = _assert(tf.equal(*tasks), "support_x and query_x must hold the same number of "
                                               "tasks; received", *tasks)
        with tf.control_dependencies([same_tasks]):
            episodes = {key: tf.identity(value) for key, value in episodes.items()}
    else:
        episodes = {key: value[tf.newaxis] for key, value in episodes.items()}
    # The model's call checks its own label rules next: 0..N-1, each
    # present, with N the head's width for MAML and max(support_y) + 1 for
    # metric models.
    return episodes


def _label_shape(model):
    return () if model.is_classifier else tuple(model.backbone.output_shape[1:])


def _scores_function(model, call_kwargs):
    """The model's scores on checked episodes `[T, ...]`, as one `tf.function` with a task axis of any size.

    A mode's one-task and batched signatures both call it, so the model (a MAML
    family model's inner loop above all) is traced and stored once per
    mode, not once per signature.
    """
    spec = dict(zip(("support_x", "support_y", "query_x"), _input_signature(model, batched=True)))
    return tf.function(lambda episodes: tf.cast(model(episodes, training=False, **call_kwargs), tf.float32),
                       input_signature=[spec])


def _outputs(model, scores, batched):
    if not batched:
        scores = scores[0]
    if not model.is_classifier:
        return {"predictions": scores}
    # Matching Networks give log-probabilities, the others logits: softmax serves both.
    probabilities = tf.nn.softmax(scores, axis=-1)
    return {"probabilities": probabilities, "classes": tf.argmax(probabilities, axis=-1)}


def _input_signature(model, batched):
    leading = [None, None] if batched else [None]
    example = tf.TensorSpec([*leading, *model.example_shape], model.example_dtype)
    labels = tf.TensorSpec([*leading, *_label_shape(model)],
                           tf.int32 if model.is_classifier else tf.float32)
    return [example, labels, example]


def adapts_by_gradient(model):
    """Whether `model` is of the MAML family (MAML, ANIL, Reptile, or an Ensemble of them)."""
    return isinstance(model, MAML) or isinstance(model, Ensemble) and model.adapts_by_gradient


def _other_inference(inference):
    """The MAML family's other inference mode, and the names of its one-task and batched signatures."""
    other, = (mode for mode in INFERENCE_MODES if mode != inference)
    suffix = other.replace("-", "_")
    return other, f"serving_{suffix}", f"serving_tasks_{suffix}"


def _serving_signatures(model, inference):
    """`{name: (batched, call_kwargs)}`: the default signatures in `inference`, and the MAML family's
    other mode under its own names."""
    if not adapts_by_gradient(model):
        return {"serving_default": (False, {}), "serving_tasks": (True, {})}
    other, one_task, batched = _other_inference(inference)
    return {"serving_default": (False, {"inference": inference}), "serving_tasks": (True, {"inference": inference}),
            one_task: (False, {"inference": other}), batched: (True, {"inference": other})}


def _check_arguments(model, version, inner_steps, input_range, inference):
    if not isinstance(model, (MAML, MetricLearner, Ensemble)):
        raise ValueError(
            "Only tfmeta models export for serving (MAML, ANIL, Reptile, MatchingNetwork, PrototypicalNetwork, "
            f"Ensemble); received {type(model).__name__}."
        )
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"`version` must be a positive integer (TF Serving's version directory); "
                         f"received version={version!r}.")
    _check_inference(inference)
    if inner_steps is not None:
        if not adapts_by_gradient(model):
            kind = "an Ensemble of metric models" if isinstance(model, Ensemble) else f"a {type(model).__name__}"
            raise ValueError(f"`inner_steps` applies to MAML models only; received inner_steps={inner_steps!r} "
                             f"for {kind}.")
        _check_steps("inner_steps", inner_steps)
    if input_range is not None:
        if len(input_range) != 2 or not float(input_range[0]) < float(input_range[1]):
            raise ValueError(f"`input_range` must be (low, high) with low < high; received "
                             f"input_range={input_range!r}.")
        if model.example_dtype == tf.string:
            raise ValueError(f"`input_range` applies to numeric inputs; {type(model).__name__}'s embedding takes "
                             f"strings; received input_range={input_range!r}.")


def export_saved_model(model, base_dir, version=1, *, inner_steps=None, input_range=None,
                       metadata=None, overwrite=False, inference="per-query"):
    """Exports a trained model as a SavedModel in TF Serving's layout.

    Writes `base_dir/<version>/` (the SavedModel) and `base_dir/model.json`
    (what the model is: algorithm, ways, input shape and range, signatures,
    plus `metadata` such as shots, training command and measured accuracy).
    The version directory appears in one rename once complete, so a TF
    Serving instance watching `base_dir` never loads half a model.

    Args:
        model: a `tfmeta.MAML` (or its subclasses `ANIL` and `Reptile`), `MatchingNetwork`,
            `PrototypicalNetwork`, or an `Ensemble` of them.
        base_dir: the model's directory, TF Serving's `--model_base_path`.
        version: the version number (a positive integer).
        inner_steps: MAML only: inner steps baked into the served graph
            (default: the model's `eval_inner_steps`).
        input_range: `(low, high)`: requests with inputs outside it are
            refused (Omniglot models: `(0.0, 1.0)`). Default: no range check.
        metadata: a dict merged into `model.json`.
        overwrite: replace an existing version directory.
        inference: MAML family: how `serving_default` and `serving_tasks`
            normalize the queries, `"per-query"` (each answer depends only
            on the support set and that query) or `"transductive"`; the
            other mode is exported as `serving_<mode>` and
            `serving_tasks_<mode>` (`serving_transductive`, ...).

    Returns:
        The version directory, a `pathlib.Path`.

    Example:
        >>> export_saved_model(maml, "savedmodels/maml-omniglot-5w1s", input_range=(0.0, 1.0),
        ...                    metadata={"shots": 1, "accuracy": 0.967})
    """
    _check_arguments(model, version, inner_steps, input_range, inference)
    base_dir = pathlib.Path(base_dir)
    target = base_dir / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it, "
                              "or export a new version.")
    call_kwargs = {"inner_steps": inner_steps} if inner_steps is not None else {}
    if input_range is not None:
        input_range = (float(input_range[0]), float(input_range[1]))

    archive = keras.export.ExportArchive()
    archive.track(model)
    signatures = _serving_signatures(model, inference)
    scores_of_mode = {}

    def endpoint(batched, scores):
        def serve(support_x, support_y, query_x):
            request = {"support_x": support_x, "support_y": support_y, "query_x": query_x}
            return _outputs(model, scores(_checked_episodes(model, request, batched, input_range)), batched)
        return serve

    for name, (batched, mode) in signatures.items():
        key = mode.get("inference")
        if key not in scores_of_mode:
            scores_of_mode[key] = _scores_function(model, {**call_kwargs, **mode})
        archive.add_endpoint(name, endpoint(batched, scores_of_mode[key]),
                             input_signature=_input_signature(model, batched))
    if isinstance(model, MetricLearner):
        def embed(x):
            x = _checked_examples("x", x, 1, model.example_shape, input_range)
            return {"embeddings": tf.cast(model.embed(x, training=False), tf.float32)}

        archive.add_endpoint("embed", embed,
                             input_signature=[tf.TensorSpec([None, *model.example_shape], model.example_dtype)])

    card = json.dumps(model_card(model, version, inner_steps, input_range, metadata, inference), indent=2) + "\n"
    base_dir.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{version}-", dir=base_dir))
    try:
        archive.write_out(str(staging / "model"), verbose=False)
        # The version carries its own card (assets.extra/ is where TF Serving expects extra files), written
        # before the rename: a crash never leaves a version without its card.
        (staging / "model" / VERSION_CARD).parent.mkdir(exist_ok=True)
        (staging / "model" / VERSION_CARD).write_text(card)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging / "model", target)
        (staging / MODEL_CARD).write_text(card)
        os.replace(staging / MODEL_CARD, base_dir / MODEL_CARD)  # the newest version's, beside the versions
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _adapted_weights(model):
    """What the inner loop of a MAML model adapts, for its card."""
    weights = model.backbone.trainable_variables
    if all(model._adapted):
        return "all weights"
    left_out = [v for v, adapted in zip(weights, model._adapted) if not adapted]
    normalization = normalization_weights(model.backbone)
    if all(any(v is w for w in normalization) for v in left_out):
        return "all weights but the normalization layers' scales and offsets"
    return [v.path for v, adapted in zip(weights, model._adapted) if adapted]


def _learned_inner_lrs(model):
    """The inner rates a MAML model learned, per adapted parameter tensor, or None if they are fixed.

    Meta-SGD (one rate per parameter entry): their mean, min and max per
    tensor; MAML++'s LSLR (one rate per tensor and inner step): the rate of
    each step.
    """
    adapted = [v.path for v, is_adapted in zip(model.backbone.trainable_variables, model._adapted) if is_adapted]
    if model.learn_inner_lr:
        return [{"parameter": path, "mean": float(np.mean(rates)), "min": float(np.min(rates)),
                 "max": float(np.max(rates))}
                for path, rates in zip(adapted, (lr.numpy() for lr in model.inner_lrs))]
    if model.learn_per_step_inner_lr:
        return [{"parameter": path, "per_step": [float(rate) for rate in lr.numpy()]}
                for path, lr in zip(adapted, model.per_step_inner_lrs)]
    return None


def model_card(model, version, inner_steps=None, input_range=None, metadata=None, inference="per-query"):
    """The `model.json` record of an exported model."""
    if isinstance(model, Ensemble):  # described by its first member (with --ensemble, all are one run's)
        card = model_card(model.members[0], version, inner_steps, input_range, metadata, inference)
        if "algorithm" not in (metadata or {}):  # tfmeta train names it, e.g. "MAML, ensemble of 5 checkpoints"
            card["algorithm"] += f", ensemble of {len(model.members)}"
        card["class"] = "tfmeta.Ensemble"
        card["signatures"].pop("embed", None)
        card["ensemble"] = {"members": len(model.members), "member_class": f"tfmeta.{type(model.members[0]).__name__}",
                            "combination": "the mean of the members' class probabilities"}
        if "learned_inner_lrs" in card.get("maml", {}):  # each member learned its own
            card["maml"]["learned_inner_lrs"] = [_learned_inner_lrs(member) for member in model.members]
        return card
    classifier = model.is_classifier
    card = {
        "algorithm": type(model).__name__,  # metadata may name it more precisely, e.g. "first-order MAML"
        "class": f"tfmeta.{type(model).__name__}",
        "version": version,
        "task": "classification" if classifier else "regression",
        "ways": model.ways if isinstance(model, MAML) and classifier else None,
        "ways_rule": (
            "fixed by the head: support labels exactly 0..ways-1, each present" if isinstance(model, MAML)
            else "max(support_y) + 1: labels exactly 0..ways-1, each present"
        ) if classifier else None,
        "input_shape": list(model.example_shape),
        "input_dtype": model.example_dtype.name,
        "input_range": list(input_range) if input_range is not None else None,
        "signatures": {
            "serving_default": "support_x [S, *input_shape], support_y [S], query_x [Q, *input_shape] -> "
                               + ("probabilities [Q, N], classes [Q]" if classifier else "predictions"),
            "serving_tasks": "the same with a leading task axis T",
        },
        # How serving_default and serving_tasks answer a query: from the support set and that query alone, or
        # (MAML family, transductive) with statistics of every query of the request.
        "inference": inference if isinstance(model, MAML) else "per-query",
        "tfmeta_version": tfmeta.__version__,
        "tensorflow_version": tf.__version__,
    }
    if isinstance(model, MAML):
        other, one_task, batched = _other_inference(inference)
        card["signatures"][one_task] = f"serving_default's contract, {other} inference"
        card["signatures"][batched] = f"serving_tasks's contract, {other} inference"
        card["maml"] = {
            "inner_steps": model.eval_inner_steps if inner_steps is None else inner_steps,
            # With learned rates, inner_lr is only where they started; learned_inner_lrs holds them as trained.
            "inner_lr": model.inner_lr,
            "learned_inner_lr": model.learn_inner_lr,
            "learned_per_step_inner_lr": model.learn_per_step_inner_lr,
            "first_order_training": model.first_order,
            "training_inference": model.inference,
            "training_inner_steps": model.inner_steps,
            # Reptile's inner steps may each take a slice of the task (None: the whole task every step).
            "training_inner_batch_size": getattr(model, "inner_batch_size", None),
            # What the inner loop adapts: every weight, every weight but the normalization layers', or (ANIL) the
            # named ones.
            "adapts": _adapted_weights(model),
            "per_step_batch_norm": any(isinstance(layer, MetaBatchNormalization) and layer.steps is not None
                                       for layer in keras_internals.flatten_layers(model.backbone)),
            # True: a query is normalized with batch moments, the support set's (per-query) or the request's
            # queries' (transductive). False (moving per-step statistics, or no batch norm): both modes answer alike.
            "inference_uses_batch_statistics": normalizes_with_batch_statistics(model.backbone, training=False),
        }
        learned = _learned_inner_lrs(model)
        if learned is not None:
            card["maml"]["learned_inner_lrs"] = learned
    else:
        card["signatures"]["embed"] = "x [B, *input_shape] -> embeddings [B, features]"
        if hasattr(model, "distance"):  # Prototypical Networks: how a query is compared with a class mean
            card["distance"] = model.distance
    # What a client does (metadata's "preprocessing", e.g. resizing) and what the graph does (normalization).
    preprocessing = dict((metadata or {}).get("preprocessing", {}))
    network = model.backbone if isinstance(model, MAML) else model.embedding
    normalization = tfmeta.models.pixel_normalization_record(network)
    if normalization is not None:
        preprocessing["pixel_normalization"] = {
            **normalization, "applied": "inside the served graph, after the input checks: (x - mean) / std per "
                                        "channel; clients send the unnormalized inputs"}
    card.update(metadata or {})
    if preprocessing:
        card["preprocessing"] = preprocessing
    return card
