"""The `tfmeta` command line (also `python -m tfmeta`)."""

import argparse
import json
import pathlib

from tfmeta.omniglot_names import DATA_DIR_HELP

# The inputs of the datasets tfmeta trains on, by results.json "dataset": the
# range a served model accepts, and the convention model.json states.
DATASET_INPUTS = {
    "omniglot": ((0.0, 1.0), "pixels float32 in [0, 1]: ink 1.0, background 0.0, 28x28 downsampled from 105x105 by "
                             "area averaging (tf.image.resize method='area'); other resizing costs accuracy "
                             "(docs/serving.md)"),
    "sinusoid": ((-5.0, 5.0), "x float32 in [-5, 5]; support_y = A sin(x - phase), A in [0.1, 5], phase in [0, pi]"),
}
OMNIGLOT_AUGMENTED_INPUTS = ("pixels float32 in [0, 1]: ink 1.0, background 0.0, 28x28 downsampled from 105x105 "
                             "by area, bilinear or bicubic antialiased resizing (trained on all three, shifted by "
                             "up to 1 pixel: tfmeta train --augment)")

# What model.json takes over from a training run's results.json.
RESULTS_KEYS = ("algorithm", "dataset", "split", "classes", "ways", "shots", "accuracy", "ci95", "test_episodes",
                "iterations", "selected_iteration", "ensemble_iterations", "selected_by", "episodes_seen",
                "train_seconds", "baseline", "baseline_accuracy", "baseline_ci95", "minus_baseline",
                "minus_baseline_ci95", "tokenize")


# What model.json keeps of each `tfmeta evaluate --output` file given to export.
EVALUATION_KEYS = ("split", "ways", "shots", "queries", "seed", "accuracy", "ci95", "test_episodes", "command")


def _evaluations(paths, results):
    """The `evaluations` of model.json: further tests of the same trained model (e.g. on 20-way episodes)."""
    evaluations = []
    for path in map(pathlib.Path, paths):
        if not path.is_file():
            raise SystemExit(f"tfmeta export: no evaluation file at {path}")
        record = json.loads(path.read_text())
        if "evaluation" not in record:
            raise SystemExit(f"tfmeta export: {path} is not the output of tfmeta evaluate --output")
        trained = record["trained"]
        trained_by = trained.get("training_command") or trained.get("command")
        if trained_by != results.get("command"):
            raise SystemExit(f"tfmeta export: {path} evaluates the model trained by {trained_by!r}, not this one "
                             f"(trained by {results.get('command')!r})")
        evaluations.append({key: record["evaluation"][key] for key in EVALUATION_KEYS})
        if record["evaluation"].get("resize", "area") != "area":  # drawings downsampled another way
            evaluations[-1]["resize"] = record["evaluation"]["resize"]
        if "inference" in record["evaluation"]:  # MAML family: per-query or transductive
            evaluations[-1]["inference"] = record["evaluation"]["inference"]
    return evaluations


def _export_metadata(results):
    metadata = {key: value for key, value in results.items()
                if key in RESULTS_KEYS or key.startswith(("mse_", "ci95_")) or key == "test_tasks"}
    config = results.get("config", {})
    for key in ("queries", "train_ways", "train_queries", "meta_batch"):
        if config.get(key) is not None:
            metadata[key] = config[key]
    if "command" in results:
        metadata["training_command"] = results["command"]
    if config.get("augment"):
        metadata["input_convention"] = OMNIGLOT_AUGMENTED_INPUTS
    elif results.get("dataset") in DATASET_INPUTS:
        metadata["input_convention"] = DATASET_INPUTS[results["dataset"]][1]
    elif "image_shape" in results:  # --dataset images:DIR or tfds:NAME
        from tfmeta.experiments.images import client_preprocessing, input_convention

        metadata["input_convention"] = input_convention(results)
        metadata["preprocessing"] = client_preprocessing(results)
    return metadata


def export(args):
    """`tfmeta export`: a trained `.keras` model -> SavedModel for TF Serving."""
    model_path = pathlib.Path(args.model)
    if not model_path.is_file():
        raise SystemExit(f"tfmeta export: no model file at {model_path}")
    results_path = pathlib.Path(args.results) if args.results else model_path.with_name("results.json")
    if args.results and not results_path.is_file():
        raise SystemExit(f"tfmeta export: no results file at {results_path}")
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    input_range = args.input_range
    if input_range is None and results.get("dataset") in DATASET_INPUTS:
        input_range = DATASET_INPUTS[results["dataset"]][0]
    if input_range is None and "image_shape" in results:
        input_range = (0.0, 1.0)  # pixels in [0, 1]: a client sending 0..255 is refused

    metadata = _export_metadata(results)
    if args.evaluation:
        metadata["evaluations"] = _evaluations(args.evaluation, results)

    import keras

    import tfmeta.models  # noqa: F401  (with tfmeta.serving: registers tfmeta's Keras classes for loading)
    import tfmeta.serving

    model = keras.models.load_model(model_path)
    try:
        version_dir = tfmeta.serving.export_saved_model(
            model, args.output, args.version, inner_steps=args.inner_steps, input_range=input_range,
            metadata=metadata, overwrite=args.overwrite, inference=args.inference)
    except (ValueError, FileExistsError) as error:
        raise SystemExit(f"tfmeta export: {error}") from error
    print(f"exported {type(model).__name__} to {version_dir} (model card: "
          f"{version_dir.parent / tfmeta.serving.MODEL_CARD})")
    if input_range is None and model.example_dtype.name != "string":
        print("no input range known (no results.json of a tfmeta train run beside the model): requests are not "
              "checked against one; pass --input-range LOW HIGH, e.g. 0 1 for Omniglot's pixels")
    print(f"serve it with: tensorflow_model_server --rest_api_port=8501 "
          f"--model_name={version_dir.parent.name} --model_base_path={version_dir.parent.resolve()}")
    return version_dir


def train(args):
    """`tfmeta train`: meta-train, test, and write the run's files."""
    from tfmeta import experiments

    settings = {key: value for key, value in vars(args).items() if key not in ("command", "run")}
    config = experiments.config.apply_process_settings(experiments.config.resolve(argparse.Namespace(**settings)))
    return experiments.train(config)


def evaluate(args):
    """`tfmeta evaluate`: accuracy of a checkpoint or SavedModel on fixed episodes."""
    import tfmeta.models  # noqa: F401  (registers tfmeta's Keras layers for loading)
    from tfmeta.experiments import evaluate as evaluation

    return evaluation.evaluate(args)


def parser():
    from tfmeta.experiments import config
    from tfmeta.omniglot_names import LAKE_RUNS, RESIZE_METHODS
    from tfmeta.omniglot_names import SPLITS as OMNIGLOT_SPLITS

    main = config.ArgumentParser(prog="tfmeta", description="Meta-learning for TensorFlow and Keras.")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train_parser = commands.add_parser("train", help="meta-train a learner and test it",
                                       description=config.DESCRIPTION, usage=config.TRAIN_USAGE)
    config.add_train_flags(train_parser)
    train_parser.set_defaults(run=train)

    evaluate_parser = commands.add_parser(
        "evaluate", help="accuracy of a trained model on fixed episodes (Omniglot, its image dataset or its text "
                         "corpus)",
        description="Prints the mean query accuracy ± 95% interval of a model (a .keras checkpoint or an "
                    "exported SavedModel) over fixed, seeded episodes; the defaults repeat the test of "
                    "tfmeta train, so a model's recorded accuracy is reproduced.")
    evaluate_parser.add_argument("model", help="a .keras file, a SavedModel version directory, or a "
                                               "savedmodels/<name> directory (its newest version)")
    evaluate_parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    evaluate_parser.add_argument("--split", default="vinyals-test", choices=(*OMNIGLOT_SPLITS, LAKE_RUNS),
                                 help="classes to draw episodes from, or lake-runs for Lake's 20 within-alphabet "
                                      "20-way one-shot runs (default: %(default)s)")
    evaluate_parser.add_argument("--ways", type=int, help="classes per episode (default: the model's record, "
                                                          "else 5)")
    evaluate_parser.add_argument("--shots", type=int, help="support examples per class (default: the "
                                                           "model's record, else 1)")
    evaluate_parser.add_argument("--queries", type=int, default=15, help="queries per class (default: 15)")
    evaluate_parser.add_argument("--episodes", type=int, default=1000, help="episodes (default: 1000)")
    evaluate_parser.add_argument("--seed", type=int, default=0, help="seed of the episodes (default: 0, "
                                                                     "tfmeta train's test episodes)")
    evaluate_parser.add_argument("--resize", default="area", choices=RESIZE_METHODS,
                                 help="how the 105x105 drawings are downsampled: area (as in training; the "
                                      "default), or a client's common choices, to measure how much that matters")
    evaluate_parser.add_argument("--in-class-order", action="store_true",
                                 help="list each episode's examples class by class instead of in random order "
                                      "(order-aware models such as Matching Networks with FCE score differently)")
    evaluate_parser.add_argument("--dataset", metavar="DATASET",
                                 help="evaluate on an image dataset: images:DIR or tfds:NAME[/CONFIG], resized "
                                      "to the model's input, with a raw-pixel nearest-prototype baseline on the "
                                      "same episodes (docs/images.md); a text model: the test classes of text:DIR, "
                                      "with the TF-IDF baseline (docs/text.md) (default: the dataset the model's "
                                      "record names, on its test classes; else Omniglot)")
    evaluate_parser.add_argument("--class-split", metavar="FILE",
                                 help="with --dataset: only the test classes of this class-split file or shipped "
                                      "split (cifar-fs, fc100, cub; default: all the dataset's classes)")
    evaluate_parser.add_argument("--inference", choices=config.INFERENCE_MODES,
                                 help="MAML family: answer each query from the support set and that query alone "
                                      "(per-query), or normalize the queries with the statistics of every query of "
                                      "the episode (transductive, as Finn et al. evaluate); default: the model's "
                                      "default (per-query; a SavedModel's serving_tasks signature)")
    evaluate_parser.add_argument("--output", help="also write the result, with the model's record, to this "
                                                  "JSON file")
    evaluate_parser.set_defaults(run=evaluate)

    export_parser = commands.add_parser(
        "export", help="export a trained model as a SavedModel for TF Serving",
        description="Writes OUTPUT/<version>/ (a SavedModel whose serving_default signature adapts to "
                    "a support set and predicts the queries) and OUTPUT/model.json.")
    export_parser.add_argument("model", help="a trained model saved as .keras (e.g. runs/.../model.keras)")
    export_parser.add_argument("output", help="the model's base directory, e.g. savedmodels/maml-omniglot-5w1s "
                                              "(TF Serving's --model_base_path)")
    export_parser.add_argument("--version", type=int, default=1, help="version number (default: 1)")
    export_parser.add_argument("--results", help="the training run's results.json, recorded in model.json "
                                                 "(default: results.json next to the model, if any)")
    export_parser.add_argument("--evaluation", nargs="+", action="extend", metavar="FILE",
                               help="results of tfmeta evaluate --output on the same trained model (e.g. on "
                                    "20-way episodes), recorded in model.json's evaluations")
    export_parser.add_argument("--inner-steps", type=int,
                               help="MAML: inner steps in the served graph (default: the model's "
                                    "eval_inner_steps)")
    export_parser.add_argument("--input-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                               help="refuse requests with inputs outside [LOW, HIGH] (default: the "
                                    "dataset's: [0, 1] for Omniglot, [-5, 5] for sinusoid; none if unknown)")
    export_parser.add_argument("--inference", choices=config.INFERENCE_MODES, default="per-query",
                               help="MAML family: the inference of the serving_default and serving_tasks "
                                    "signatures; the other mode is exported as serving_<mode> and "
                                    "serving_tasks_<mode> (default: %(default)s)")
    export_parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    export_parser.set_defaults(run=export)
    return main


def main(argv=None):
    args = parser().parse_args(argv)
    args.run(args)
    return 0
