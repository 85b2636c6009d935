"""Evaluation of a trained model — a `.keras` checkpoint or an exported SavedModel — on fixed episodes."""

import json
import pathlib

import keras
import tensorflow as tf

from tfmeta.algorithms import Ensemble
from tfmeta.data.locations import OmniglotNotFoundError
from tfmeta.evaluation import episode_accuracies, mean_confidence_interval, model_predictor
from tfmeta.experiments.omniglot import LAKE_RUNS, fixed_episodes
from tfmeta.experiments.reporting import command_line, portable_path
from tfmeta.experiments.config import check_omniglot_ways, is_text_dataset
from tfmeta.experiments.text import evaluate_on_text
from tfmeta.serving import MODEL_CARD, adapts_by_gradient


OMNIGLOT_SHAPE = (28, 28, 1)


def _saved_model_dir(path):
    """The SavedModel version directory `path` names: itself, or the newest version of a base dir."""
    if (path / "saved_model.pb").is_file():
        return path
    versions = sorted((p for p in path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()),
                      key=lambda p: int(p.name))
    if not versions:
        raise SystemExit(f"tfmeta evaluate: {path} holds no SavedModel (no saved_model.pb in it or in a "
                         "numbered version directory)")
    return versions[-1]


def _refuse_inference(path, kind):
    raise SystemExit(f"tfmeta evaluate: --inference applies to the MAML family; {path} is a {kind}, which answers "
                     "each query alone")


def load_predictor(path, inference=None):
    """`(predict, record)` for a `.keras` file or a SavedModel directory.

    `predict(support_x, support_y, query_x)` takes meta-batches and returns
    class scores; `record` is what the model's results.json or model.json
    says about it (empty if neither exists), with the MAML family's
    `"inference"`: how `predict` normalizes the queries, `inference`
    ("per-query" or "transductive") if given, else the model's default (a
    SavedModel's `serving_tasks`).
    """
    path = pathlib.Path(path)
    if path.is_file() and path.suffix == ".keras":
        results = path.with_name("results.json")
        record = json.loads(results.read_text()) if results.is_file() else {}
        model = keras.models.load_model(path)
        if not model.is_classifier:
            raise SystemExit(f"tfmeta evaluate: {path} is a regressor; evaluate classifies Omniglot episodes")
        if inference is not None and not adapts_by_gradient(model):
            _refuse_inference(path, type(model).__name__)
        record = {"input_shape": list(model.example_shape), **record}
        if not adapts_by_gradient(model):
            return model_predictor(model), record
        inference = inference or (model.members[0] if isinstance(model, Ensemble) else model).inference
        return model_predictor(model, inference=inference), {**record, "inference": inference}
    if not path.is_dir():
        raise SystemExit(f"tfmeta evaluate: no .keras file or SavedModel directory at {path}")
    version_dir = _saved_model_dir(path)
    card = version_dir.parent / MODEL_CARD
    record = json.loads(card.read_text()) if card.is_file() else {}
    loaded = tf.saved_model.load(str(version_dir))
    signatures = loaded.signatures
    if "serving_tasks" not in signatures:
        raise SystemExit(f"tfmeta evaluate: {version_dir} is not a tfmeta export (no serving_tasks signature)")
    serve, record = _tasks_signature(version_dir, record, signatures, inference)
    if "probabilities" not in serve.structured_outputs:
        raise SystemExit(f"tfmeta evaluate: {version_dir} is a regressor; evaluate classifies Omniglot episodes")

    input_dtype = serve.structured_input_signature[1]["support_x"].dtype  # float32, or string for text

    def predict(support_x, support_y, query_x, loaded=loaded):  # keeps the variables alive
        return serve(support_x=tf.cast(support_x, input_dtype), support_y=tf.cast(support_y, tf.int32),
                     query_x=tf.cast(query_x, input_dtype))["probabilities"]

    return predict, record


def _tasks_signature(version_dir, record, signatures, inference):
    """`(signature, record)`: the batched signature of a SavedModel that answers in `inference` (None: its
    default), and its card with the MAML family's inference mode set to that signature's."""
    if "maml" not in record:
        if inference is not None:
            _refuse_inference(version_dir, record.get("class", "metric model"))
        return signatures["serving_tasks"], record
    # Exports whose card records no inference predate per-query inference: their signatures are transductive.
    default = record.get("inference", "transductive")
    if inference is None or inference == default:
        return signatures["serving_tasks"], {**record, "inference": default}
    name = f"serving_tasks_{inference.replace('-', '_')}"
    if name not in signatures:
        raise SystemExit(f"tfmeta evaluate: {version_dir} answers {default} only (it has no {name} signature); "
                         f"export the model again with tfmeta export to get both")
    return signatures[name], {**record, "inference": inference}


def evaluate(args):
    """Accuracy ± 95% interval of the model at `args.model` on fixed, seeded Omniglot episodes."""
    inference = getattr(args, "inference", None)
    predict, record = load_predictor(args.model, inference)
    if record.get("input_dtype") == "string" or is_text_dataset(getattr(args, "dataset", None)):
        return evaluate_on_text(args, predict, record)
    from tfmeta.experiments.images import evaluate_on_images, is_image_dataset

    if getattr(args, "dataset", None) or is_image_dataset(record.get("dataset")):  # by default, its own dataset
        return evaluate_on_images(args, predict, record)
    if record.get("input_shape") not in (None, list(OMNIGLOT_SHAPE)):
        raise SystemExit(f"tfmeta evaluate: {args.model} takes inputs of shape {tuple(record['input_shape'])}, but "
                         f"Omniglot's are {OMNIGLOT_SHAPE}; name its data with --dataset")
    if args.split == LAKE_RUNS:
        ways, shots = 20, 1
        print(f"Evaluating {args.model} on Lake's within-alphabet 20-way one-shot runs:")
    else:
        ways = args.ways or record.get("ways") or 5
        shots = args.shots or record.get("shots") or 1
        check_omniglot_ways("evaluate", args.split, ways, "evaluation")
        print(f"Evaluating {args.model} on {args.episodes} fixed {ways}-way {shots}-shot episodes of Omniglot "
              f"{args.split} ({args.queries} queries per class, seed {args.seed}):")
    try:
        episodes, num_episodes = fixed_episodes(args.split, args.data_dir, ways, shots, args.queries,
                                                args.episodes, args.seed, shuffle=not args.in_class_order,
                                                resize=args.resize)
    except OmniglotNotFoundError as error:
        raise SystemExit(f"tfmeta evaluate: {error}") from None
    accuracies = episode_accuracies(predict, episodes, num_episodes)
    mean, half_width = mean_confidence_interval(accuracies)
    print(f"accuracy {100 * mean:.2f} ± {100 * half_width:.2f}% over {len(accuracies)} episodes")
    evaluation = {"model": portable_path(args.model), "split": args.split, "ways": ways, "shots": shots,
                  "queries": args.queries, "seed": args.seed, "in_class_order": args.in_class_order, "resize": args.resize,
                  "accuracy": mean, "ci95": half_width, "test_episodes": len(accuracies), "command": command_line()}
    if "inference" in record:
        evaluation["inference"] = record["inference"]
    write_evaluation(args.output, evaluation, record)
    return evaluation


def write_evaluation(path, evaluation, record):
    """Writes `--output`, if given: the evaluation and the evaluated model's record."""
    if path:
        output = pathlib.Path(path)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({"evaluation": evaluation, "trained": record}, indent=2) + "\n")
        print(f"wrote {output}")
