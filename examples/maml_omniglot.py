"""MAML on N-way K-shot Omniglot (Finn et al. 2017, section 5.2).

    python examples/maml_omniglot.py --data-dir ../shared/omniglot --ways 5 --shots 1

Meta-trains on the Vinyals training classes (rotations as extra classes) with
Keras progress bars and a validation score per epoch, then prints the mean
query accuracy ± 95% interval over fixed, seeded test episodes, and writes the
model (`maml.keras`) and the results (`results.json`) to --output-dir.
"""

import argparse
import json
import pathlib
import sys
import time

import keras
import tensorflow as tf

import tfmeta
from tfmeta.evaluation import episode_accuracies, mean_confidence_interval


def parse_config(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="official Omniglot release; default: tensorflow-datasets")
    parser.add_argument("--ways", type=int, default=5, help="classes per task")
    parser.add_argument("--shots", type=int, default=1, help="support examples per class")
    parser.add_argument("--queries", type=int, default=15, help="query examples per class")
    parser.add_argument("--meta-batch", type=int, default=32, help="tasks per meta-iteration")
    parser.add_argument("--iterations", type=int, default=2000, help="meta-iterations")
    parser.add_argument("--iterations-per-epoch", type=int, default=100,
                        help="meta-iterations between validations")
    parser.add_argument("--inner-lr", type=float, default=0.4, help="inner-loop step size")
    parser.add_argument("--inner-steps", type=int, default=1, help="inner steps in meta-training")
    parser.add_argument("--eval-inner-steps", type=int, default=3, help="inner steps at test time")
    parser.add_argument("--first-order", action="store_true", help="first-order MAML")
    parser.add_argument("--learn-inner-lr", action="store_true", help="Meta-SGD per-parameter rates")
    parser.add_argument("--meta-lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--pooling", default="stride", choices=tfmeta.models.backbones.POOLINGS)
    parser.add_argument("--val-episodes", type=int, default=100)
    parser.add_argument("--test-episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--intra-op-threads", type=int, default=0,
                        help="TensorFlow intra-op threads; 0 keeps TensorFlow's default. On CPU, 1 is "
                             "faster: the task loop already keeps every core busy")
    parser.add_argument("--output-dir", default="runs/maml_omniglot", help="where to write results")
    return parser.parse_args(argv)


def train_and_evaluate(config):
    """Meta-trains MAML on Omniglot and returns the test results as a dict."""
    if config.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(config.intra_op_threads)
    keras.utils.set_random_seed(config.seed)
    start = time.time()
    train = tfmeta.data.load_omniglot("vinyals-train", config.data_dir)
    val = tfmeta.data.load_omniglot("vinyals-val", config.data_dir)
    test = tfmeta.data.load_omniglot("vinyals-test", config.data_dir)
    print(f"Omniglot train/val/test: {train.num_classes}/{val.num_classes}/{test.num_classes} classes "
          f"({time.time() - start:.1f} s)")

    episode_shape = (config.ways, config.shots, config.queries)
    train_tasks = tfmeta.data.episodes(train, *episode_shape, seed=config.seed,
                                       meta_batch_size=config.meta_batch)
    val_tasks = tfmeta.data.evaluation_episodes(val, *episode_shape, config.val_episodes,
                                                meta_batch_size=min(config.val_episodes, 25))
    maml = tfmeta.MAML(
        tfmeta.models.omniglot_cnn(config.ways, pooling=config.pooling),
        inner_lr=config.inner_lr, inner_steps=config.inner_steps,
        eval_inner_steps=config.eval_inner_steps, first_order=config.first_order,
        learn_inner_lr=config.learn_inner_lr,
    )
    maml.compile(optimizer=keras.optimizers.Adam(config.meta_lr))
    per_epoch = min(config.iterations_per_epoch, config.iterations)
    train_start = time.time()
    maml.fit(train_tasks, steps_per_epoch=per_epoch, epochs=max(1, config.iterations // per_epoch),
             validation_data=val_tasks, verbose=1 if sys.stdout.isatty() else 2)
    train_seconds = time.time() - train_start

    print(f"Testing on {config.test_episodes} fixed episodes of the Vinyals test classes:")
    test_tasks = tfmeta.data.evaluation_episodes(test, *episode_shape, config.test_episodes)

    def predict(support_x, support_y, query_x):
        batch = {"support_x": support_x[None], "support_y": support_y[None], "query_x": query_x[None]}
        return maml(batch)[0]

    mean, half_width = mean_confidence_interval(
        episode_accuracies(predict, test_tasks, config.test_episodes))
    results = {
        "algorithm": "MAML (first order)" if config.first_order else "MAML",
        "dataset": "omniglot", "split": "vinyals", "ways": config.ways, "shots": config.shots,
        "accuracy": mean, "ci95": half_width, "test_episodes": config.test_episodes,
        "iterations": max(1, config.iterations // per_epoch) * per_epoch,
        "train_seconds": round(train_seconds, 1), "config": vars(config),
        "command": " ".join(["python", *sys.argv]),
    }
    output = pathlib.Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    maml.save(output / "maml.keras")
    (output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"MAML {config.ways}-way {config.shots}-shot Omniglot (Vinyals test split): accuracy "
          f"{100 * mean:.2f} ± {100 * half_width:.2f}% over {config.test_episodes} episodes, after "
          f"{results['iterations']} meta-iterations in {train_seconds / 60:.1f} min; wrote {output}")
    return results


if __name__ == "__main__":
    train_and_evaluate(parse_config())
