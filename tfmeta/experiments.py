"""Omniglot meta-training runs: the shared driver behind the example scripts."""

import argparse
import json
import pathlib
import sys
import time

import keras
import tensorflow as tf

import tfmeta
from tfmeta.evaluation import episode_accuracies, mean_confidence_interval, model_predictor


def omniglot_parser(description, **defaults):
    """An argument parser with the flags every Omniglot run takes.

    Keyword arguments override flag defaults (by destination name, e.g.
    `meta_batch=1`). Scripts add their algorithm's own flags.
    """
    parser = argparse.ArgumentParser(description=description)
    add = parser.add_argument
    add("--data-dir", help="the official Omniglot release (zips or folders); "
                           "default: download through tensorflow-datasets")
    add("--ways", type=int, default=5, help="classes per test (and validation) episode")
    add("--train-ways", type=int, help="classes per training episode (default: --ways)")
    add("--shots", type=int, default=1, help="support examples per class")
    add("--queries", type=int, default=15, help="query examples per class in test episodes")
    add("--train-queries", type=int, help="query examples per class in training (default: --queries)")
    add("--meta-batch", type=int, default=32, help="episodes per meta-iteration")
    add("--iterations", type=int, default=2000, help="meta-iterations")
    add("--iterations-per-epoch", type=int, default=100, help="meta-iterations between validations")
    add("--meta-lr", type=float, default=1e-3, help="Adam learning rate")
    add("--val-episodes", type=int, default=100, help="validation episodes after each epoch")
    add("--test-episodes", type=int, default=1000, help="fixed test episodes")
    add("--seed", type=int, default=0)
    add("--intra-op-threads", type=int, default=0,
        help="TensorFlow intra-op threads; 0 keeps TensorFlow's default. On a CPU, 1 is faster for "
             "MAML, whose task loop already keeps every core busy")
    add("--output-dir", help="where to write the model and results.json")
    parser.set_defaults(**defaults)
    return parser


def parse_config(parser, argv=None):
    """Parses the flags and applies the process-wide ones (threads, seed).

    Call it before building a model: TensorFlow fixes its thread pools when
    it first runs an op.
    """
    config = parser.parse_args(argv)
    if config.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(config.intra_op_threads)
    keras.utils.set_random_seed(config.seed)
    return config


def train_and_evaluate_omniglot(model, config, name):
    """Meta-trains `model` on the Vinyals training classes and tests it.

    Validation uses fixed episodes of the Vinyals validation classes after
    each epoch; the test uses `config.test_episodes` fixed, seeded episodes
    of the test classes. Writes `model.keras` and `results.json` to
    `config.output_dir` and returns the results.
    """
    start = time.time()
    splits = {split: tfmeta.data.load_omniglot(f"vinyals-{split}", config.data_dir)
              for split in ("train", "val", "test")}
    print(f"Omniglot (Vinyals split) train/val/test: "
          f"{'/'.join(str(d.num_classes) for d in splits.values())} classes, read in "
          f"{time.time() - start:.1f} s")

    test_shape = (config.ways, config.shots, config.queries)
    train_shape = (config.train_ways or config.ways, config.shots, config.train_queries or config.queries)
    train = tfmeta.data.episodes(splits["train"], *train_shape, seed=config.seed,
                                 meta_batch_size=config.meta_batch)
    val = tfmeta.data.evaluation_episodes(splits["val"], *test_shape, config.val_episodes,
                                          meta_batch_size=min(config.val_episodes, 25))
    model.compile(optimizer=keras.optimizers.Adam(config.meta_lr))
    per_epoch = min(config.iterations_per_epoch, config.iterations)
    epochs = max(1, config.iterations // per_epoch)
    train_start = time.time()
    history = model.fit(train, steps_per_epoch=per_epoch, epochs=epochs, validation_data=val,
                        verbose=1 if sys.stdout.isatty() else 2)
    train_seconds = time.time() - train_start

    print(f"Testing on {config.test_episodes} fixed episodes of the test classes:")
    test = tfmeta.data.evaluation_episodes(splits["test"], *test_shape, config.test_episodes,
                                           meta_batch_size=min(config.test_episodes, 25))
    accuracies = episode_accuracies(model_predictor(model), test, config.test_episodes)
    mean, half_width = mean_confidence_interval(accuracies)
    results = {
        "algorithm": name, "dataset": "omniglot", "split": "vinyals",
        "ways": config.ways, "shots": config.shots, "accuracy": mean, "ci95": half_width,
        "test_episodes": len(accuracies), "iterations": epochs * per_epoch,
        "episodes_seen": epochs * per_epoch * config.meta_batch,
        "train_seconds": round(train_seconds, 1),
        "val_accuracy": [round(float(a), 4) for a in history.history.get("val_accuracy", [])],
        "config": vars(config), "command": " ".join(["python", *sys.argv]),
    }
    if config.output_dir:
        output = pathlib.Path(config.output_dir)
        output.mkdir(parents=True, exist_ok=True)
        model.save(output / "model.keras")
        (output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {output / 'model.keras'} and {output / 'results.json'}")
    print(f"{name} {config.ways}-way {config.shots}-shot Omniglot (Vinyals test classes): accuracy "
          f"{100 * mean:.2f} ± {100 * half_width:.2f}% over {len(accuracies)} episodes, after "
          f"{epochs * per_epoch} meta-iterations in {train_seconds / 60:.1f} min")
    return results
