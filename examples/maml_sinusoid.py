"""MAML on sinusoid regression (Finn et al. 2017, section 5.1), with the paper's figure.

    python examples/maml_sinusoid.py --shots 10

Meta-trains the 40-40 ReLU MLP on K-shot sinusoid tasks, prints the query mean
squared error ± 95% interval over 1,000 fixed test tasks after 0, 1 and 10
inner steps, and saves a PNG of one test task: the true function, its K
support points, and the model's fit before and after adaptation.
Needs matplotlib for the figure (`pip install ".[examples]"`).
"""

import argparse
import json
import pathlib
import sys
import time

import keras
import numpy as np
import tensorflow as tf

import tfmeta
from tfmeta.evaluation import mean_confidence_interval


def parse_config(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=10, help="support points per task (K)")
    parser.add_argument("--queries", type=int, default=10, help="query points per task")
    parser.add_argument("--meta-batch", type=int, default=25, help="tasks per meta-iteration")
    parser.add_argument("--iterations", type=int, default=10000, help="meta-iterations")
    parser.add_argument("--inner-lr", type=float, default=0.01)
    parser.add_argument("--inner-steps", type=int, default=1, help="inner steps in meta-training")
    parser.add_argument("--first-order", action="store_true")
    parser.add_argument("--learn-inner-lr", action="store_true", help="Meta-SGD")
    parser.add_argument("--meta-lr", type=float, default=1e-3)
    parser.add_argument("--test-tasks", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="runs/maml_sinusoid")
    return parser.parse_args(argv)


def query_errors(maml, tasks):
    """Per-task query mean squared error of the adapted model."""
    predictions = maml.predict(tasks, verbose=0)
    query_y = np.concatenate([batch["query_y"] for batch in tasks.as_numpy_iterator()])
    return np.mean((predictions - query_y) ** 2, axis=(1, 2))


def plot_adaptation(maml, task, path, steps=(0, 1, 10)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.linspace(-5, 5, 200, dtype=np.float32)[:, None]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(x, task["amplitude"] * np.sin(x - task["phase"]), color="black", label="true function")
    axes.scatter(task["support_x"], task["support_y"], color="black", marker="^", zorder=3,
                 label=f"{len(task['support_x'])} support points")
    for step in steps:
        maml.eval_inner_steps = step
        episode = {"support_x": task["support_x"][None], "support_y": task["support_y"][None],
                   "query_x": x[None]}
        axes.plot(x, maml(episode)[0], linestyle="--" if step == 0 else "-",
                  label="meta-learned initialisation" if step == 0 else f"after {step} inner step(s)")
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.set_title("MAML, K-shot sinusoid regression")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def train_and_evaluate(config):
    keras.utils.set_random_seed(config.seed)
    maml = tfmeta.MAML(tfmeta.models.sinusoid_mlp(), inner_lr=config.inner_lr,
                       inner_steps=config.inner_steps, first_order=config.first_order,
                       learn_inner_lr=config.learn_inner_lr, loss=keras.losses.MeanSquaredError())
    maml.compile(optimizer=keras.optimizers.Adam(config.meta_lr))
    train_tasks = tfmeta.data.sinusoid_tasks(config.shots, config.queries, seed=config.seed,
                                             meta_batch_size=config.meta_batch)
    per_epoch = min(1000, config.iterations)
    start = time.time()
    maml.fit(train_tasks, steps_per_epoch=per_epoch, epochs=max(1, config.iterations // per_epoch),
             verbose=1 if sys.stdout.isatty() else 2)
    train_seconds = time.time() - start

    # Test tasks come from another seed: fixed, and never seen in training.
    test_tasks = tfmeta.data.sinusoid_tasks(config.shots, config.queries, seed=10**6 + config.seed,
                                            num_tasks=config.test_tasks, meta_batch_size=100)
    results = {"algorithm": "MAML", "dataset": "sinusoid", "shots": config.shots,
               "iterations": max(1, config.iterations // per_epoch) * per_epoch,
               "train_seconds": round(train_seconds, 1), "test_tasks": config.test_tasks,
               "config": vars(config), "command": " ".join(["python", *sys.argv])}
    for steps in (0, 1, 10):
        maml.eval_inner_steps = steps
        mean, half_width = mean_confidence_interval(query_errors(maml, test_tasks))
        results[f"mse_{steps}_steps"], results[f"ci95_{steps}_steps"] = mean, half_width
        print(f"{config.shots}-shot sinusoid, {steps:2d} inner step(s): query MSE {mean:.3f} ± "
              f"{half_width:.3f} over {config.test_tasks} test tasks")

    output = pathlib.Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    task = next(tfmeta.data.sinusoid_tasks(config.shots, 1, seed=10**6 + config.seed,
                                           num_tasks=1).as_numpy_iterator())
    try:
        plot_adaptation(maml, task, output / "adaptation.png")
        print(f"wrote {output / 'results.json'} and {output / 'adaptation.png'}")
    except ImportError:
        print(f"wrote {output / 'results.json'}; install matplotlib for the figure")
    return results


if __name__ == "__main__":
    tf.get_logger().setLevel("ERROR")
    train_and_evaluate(parse_config())
